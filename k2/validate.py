"""Decode and validate raw messages; every rejection carries a machine-readable reason.

Reasons: `malformed_json`, `not_an_object`, `missing_field:<name>`, `invalid_field:<name>`, `empty_field:<name>`,
`bad_decimal:<field>` (not a number, NaN/inf, or not exact in decimal(18,8)), `negative_price`, `zero_price`,
`non_positive_quantity`, `negative_quantity`, `timestamp_out_of_range`, `unknown_side`, `unknown_asset_class`,
`negative_sequence`, `unknown_kind`.
Validation never reads the wall clock: the same bytes get the same verdict in a replay years later.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

import msgspec

from k2.batch import IngestBatch, RawBatch
from k2.config import Settings
from k2.schemas import DeadLetter, Kind, Quote, Record, Trade

PRICE_SCALE = 8
PRICE_PRECISION = 18
_QUANTUM = Decimal(1).scaleb(-PRICE_SCALE)
_LIMIT = Decimal(10) ** (PRICE_PRECISION - PRICE_SCALE)

_DECODERS: dict[str, msgspec.json.Decoder] = {
    "trade": msgspec.json.Decoder(Trade),
    "quote": msgspec.json.Decoder(Quote),
}
_ENUM_REASONS = {"side": "unknown_side", "asset_class": "unknown_asset_class"}
_DECIMAL_FIELDS = {"price", "quantity", "bid_price", "bid_quantity", "ask_price", "ask_quantity"}
_MISSING = re.compile(r"missing required field `([^`]+)`")
_PATH = re.compile(r" - at `\$\.([A-Za-z_][A-Za-z0-9_]*)")


class Rules(msgspec.Struct, frozen=True):
    """The fixed bounds validation checks against (from settings, never from the clock)."""

    min_timestamp_us: int
    max_timestamp_us: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(settings.min_timestamp_us, settings.max_timestamp_us)


class Rejection(msgspec.Struct, frozen=True):
    reason: str
    detail: str


def decode(value: bytes, kind: Kind, rules: Rules) -> Record | Rejection:
    """Decode one message of `kind` and validate it: a record, or why not."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return Rejection("unknown_kind", f"no schema for message kind {kind!r}")
    try:
        record = decoder.decode(value)
    except msgspec.ValidationError as exc:
        return Rejection(reason_for(exc), str(exc))
    except msgspec.DecodeError as exc:
        return Rejection("malformed_json", str(exc))
    problem = _CHECKS[kind](record, rules)
    return record if problem is None else problem


def validate_batch(raw: RawBatch, kind: Kind, rules: Rules) -> IngestBatch:
    """Split a raw batch into valid records and dead letters, keeping each one's source offset."""
    decoder, check = _DECODERS.get(kind), _CHECKS.get(kind)
    records: list[Record] = []
    offsets: list[int] = []
    dead: list[DeadLetter] = []
    source_ts = raw.timestamps
    kept_ts: list[int] | None = [] if source_ts is not None else None
    for i, (offset, value) in enumerate(zip(raw.offsets, raw.values, strict=True)):
        # The happy path inline (decode + check); anything unusual goes through `decode` for its reason.
        try:
            outcome = decoder.decode(value)  # type: ignore[union-attr]
        except Exception:
            outcome = decode(value, kind, rules)
        else:
            if check(outcome, rules) is not None:  # type: ignore[misc]
                outcome = decode(value, kind, rules)
        if not isinstance(outcome, Rejection):
            if source_ts is not None:
                if outcome.ingestion_timestamp is None:
                    outcome.ingestion_timestamp = source_ts[i]
                kept_ts.append(source_ts[i])  # type: ignore[union-attr]
            records.append(outcome)
            offsets.append(offset)
            continue
        dead.append(
            DeadLetter(
                source_topic=raw.topic,
                source_partition=raw.partition,
                source_offset=offset,
                kind=kind,
                reason=outcome.reason,
                detail=outcome.detail,
                raw=value,
                source_timestamp=None if source_ts is None else source_ts[i],
            )
        )
    return IngestBatch(
        topic=raw.topic,
        partition=raw.partition,
        kind=kind,
        source_offsets=raw.offsets,
        next_offset=raw.next_offset,
        records=records,
        offsets=offsets,
        source_timestamps=kept_ts,
        dead_letters=dead,
    )


def reason_for(exc: msgspec.ValidationError) -> str:
    """Turn msgspec's schema error into a stable, machine-readable reason."""
    text = str(exc)
    if missing := _MISSING.search(text):
        return f"missing_field:{missing.group(1)}"
    path = _PATH.search(text)
    if path is None:
        return "not_an_object" if text.startswith("Expected `object`") else "invalid_message"
    field = path.group(1)
    if field in _ENUM_REASONS and "Invalid enum value" in text:
        return _ENUM_REASONS[field]
    if field in _DECIMAL_FIELDS:
        return f"bad_decimal:{field}"
    return f"invalid_field:{field}"


def _check_common(record: Record, rules: Rules) -> Rejection | None:
    if not (record.exchange and record.symbol and record.currency):
        name = next(n for n in ("exchange", "symbol", "currency") if not getattr(record, n))
        return Rejection(f"empty_field:{name}", f"{name} is empty")
    if not rules.min_timestamp_us <= record.timestamp < rules.max_timestamp_us:
        return Rejection("timestamp_out_of_range", f"timestamp {record.timestamp} µs is outside the accepted range")
    ingested = record.ingestion_timestamp
    if ingested is not None and not rules.min_timestamp_us <= ingested < rules.max_timestamp_us:
        return Rejection("timestamp_out_of_range", f"ingestion_timestamp {ingested} µs is outside the accepted range")
    if record.source_sequence is not None and record.source_sequence < 0:
        return Rejection("negative_sequence", f"source_sequence {record.source_sequence} is negative")
    return None


def _decimal_problem(field: str, value: Decimal, *, price: bool, positive: bool = False) -> Rejection | None:
    """Why a decimal field is unacceptable, or None. Called on every decimal, so the common case is short."""
    if value.is_finite() and -_LIMIT < value < _LIMIT and value == value.quantize(_QUANTUM):
        if value > 0 or (value == 0 and not positive):
            return None
        if price:
            return (
                Rejection("zero_price", f"{field} is zero")
                if value == 0
                else Rejection("negative_price", f"{field} {value} is negative")
            )
        if positive:
            return Rejection("non_positive_quantity", f"{field} {value} is not positive")
        return Rejection("negative_quantity", f"{field} {value} is negative")
    return Rejection(
        f"bad_decimal:{field}", f"{field} {value} is not exact in decimal({PRICE_PRECISION},{PRICE_SCALE})"
    )


def exact_decimal(value: Decimal) -> bool:
    """True when `value` is finite and exactly representable as decimal(18, 8)."""
    return value.is_finite() and -_LIMIT < value < _LIMIT and value == value.quantize(_QUANTUM)


def _common_ok(record: Record, rules: Rules) -> bool:
    """The fast yes for the fields every record has; `_check_common` says why when it is no."""
    lo, hi = rules.min_timestamp_us, rules.max_timestamp_us
    ingested, seq = record.ingestion_timestamp, record.source_sequence
    return bool(
        record.exchange
        and record.symbol
        and record.currency
        and lo <= record.timestamp < hi
        and (ingested is None or lo <= ingested < hi)
        and (seq is None or seq >= 0)
    )


def check_trade(trade: Trade, rules: Rules) -> Rejection | None:
    # One expression for the common (valid) case: this runs for every trade, and calls cost more than checks.
    p, q = trade.price, trade.quantity
    if (
        _common_ok(trade, rules)
        and trade.trade_id
        and p.is_finite()
        and q.is_finite()
        and 0 < p < _LIMIT
        and 0 < q < _LIMIT
        and p == p.quantize(_QUANTUM)
        and q == q.quantize(_QUANTUM)
    ):
        return None
    return _explain_trade(trade, rules)


def _explain_trade(trade: Trade, rules: Rules) -> Rejection | None:
    if problem := _check_common(trade, rules):
        return problem
    if not trade.trade_id:
        return Rejection("empty_field:trade_id", "trade_id is empty")
    return _decimal_problem("price", trade.price, price=True, positive=True) or _decimal_problem(
        "quantity", trade.quantity, price=False, positive=True
    )


def check_quote(quote: Quote, rules: Rules) -> Rejection | None:
    """Validate a quote and derive its flags; an empty side (null or zero price) becomes null price and size."""
    if not (
        _common_ok(quote, rules)
        and quote.quote_id
        and _fine(quote.bid_price)
        and _fine(quote.ask_price)
        and _fine(quote.bid_quantity)
        and _fine(quote.ask_quantity)
    ) and (problem := _explain_quote(quote, rules)):
        return problem
    bid, ask = quote.bid_price, quote.ask_price
    if not bid:
        quote.bid_price = quote.bid_quantity = bid = None
    if not ask:
        quote.ask_price = quote.ask_quantity = ask = None
    quote.one_sided = bid is None or ask is None
    quote.crossed = not quote.one_sided and bid > ask  # type: ignore[operator]
    return None


def _fine(value: Decimal | None) -> bool:
    return value is None or (value.is_finite() and 0 <= value < _LIMIT and value == value.quantize(_QUANTUM))


def _explain_quote(quote: Quote, rules: Rules) -> Rejection | None:
    if problem := _check_common(quote, rules):
        return problem
    if not quote.quote_id:
        return Rejection("empty_field:quote_id", "quote_id is empty")
    bid, ask = quote.bid_price, quote.ask_price
    for field, value, price in (
        ("bid_price", bid, True),
        ("ask_price", ask, True),
        ("bid_quantity", quote.bid_quantity, False),
        ("ask_quantity", quote.ask_quantity, False),
    ):
        if value is not None and (problem := _decimal_problem(field, value, price=price)):
            return problem
    return None


_CHECKS: dict[str, Callable[..., Rejection | None]] = {"trade": check_trade, "quote": check_quote}
