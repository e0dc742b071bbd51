"""Live exchange feeds (`k2 feed`): public market-data websockets normalised to K2's v2 wire JSON and published to
the trades/quotes topics with K2's idempotent producer.

- `binance`, `coinbase`, `kraken`: one adapter per exchange (URL, subscriptions, pings, frame -> rows), on the
  shape in `exchange`.
- `normalise`: what they share: `BASE-QUOTE` symbols, exact decimal texts, µs times, the quote sequence
  (`QuoteSequencer`: how a reconnect becomes a recorded gap on streams the exchange does not number) and the wire
  encoding.
- `runner`: the connection loop (subscribe, keep alive, reconnect with backoff and jitter, count and log every
  frame, a status line); `publisher`: the bounded Kafka side that holds the socket when the broker lags;
  `command`: the CLI.

Gaps and duplicates are K2's own checks working on what the feed sends: trades carry the exchange's per-instrument
trade id as `source_sequence` (a lost trade is a gap, a re-sent one a duplicate); quotes carry the feed's number
with a hole at every reconnect.
"""
