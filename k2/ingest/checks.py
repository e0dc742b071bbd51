"""The exact path's checks: the reference verdict on a decoded trade or quote, and the reason when it is rejected.

Decimals are `Decimal`s here and must fit decimal(18,8) exactly; times must lie within the `Rules` bounds; the
reason strings are the ones `k2.ingest.validate` documents. The compiled path (`k2_native`) accepts exactly what
these accept (property tests compare them: tests/unit/test_native_validate.py).
"""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec

from k2.model.schemas import Quote, Record, Trade
from k2.ops.config import Settings

PRICE_SCALE = 8
PRICE_PRECISION = 18
QUANTUM = Decimal(1).scaleb(-PRICE_SCALE)
_LIMIT = Decimal(10) ** (PRICE_PRECISION - PRICE_SCALE)
# Sequence columns are longs, and a gap/reset event records the expected next number (the highest seen + 1):
# anything larger would fail the Arrow cast after validation, so it is rejected here.
MAX_SEQUENCE = 2**63 - 2
_ENUM_REASONS = {"side": "unknown_side", "asset_class": "unknown_asset_class"}
DECIMAL_FIELDS = {"price", "quantity", "bid_price", "bid_quantity", "ask_price", "ask_quantity"}
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
    if field in DECIMAL_FIELDS:
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
    if record.source_sequence is not None and record.source_sequence > MAX_SEQUENCE:
        return Rejection(
            "invalid_field:source_sequence",
            f"source_sequence {record.source_sequence} does not fit a long (with its successor)",
        )
    return None


def _decimal_problem(field: str, value: Decimal, *, price: bool, positive: bool = False) -> Rejection | None:
    """Why a decimal field is unacceptable, or None. Called on every decimal, so the common case is short."""
    if value.is_finite() and -_LIMIT < value < _LIMIT and value == value.quantize(QUANTUM):
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
        and (seq is None or 0 <= seq <= MAX_SEQUENCE)
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
        and p == p.quantize(QUANTUM)
        and q == q.quantize(QUANTUM)
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
    return value is None or (value.is_finite() and 0 <= value < _LIMIT and value == value.quantize(QUANTUM))


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
