"""JSON in another shape: a declarative mapping from a topic's own JSON fields to K2's wire fields.

A mapping file (`K2_MAPPING`, YAML or JSON) names, per topic, the kind of message and where each K2 field comes
from: a path in the message (`"px"`, `"data.price"`), a constant (`{const: BINANCE}`), a time (`{path: ts, time:
iso8601 | s | ms | us | ns}`), or a vocabulary (`{path: s, values: {b: BUY, s: SELL}}`). For example::

    topics:
      vendor.bbo:
        kind: quote
        fields:
          exchange: {const: COINBASE}
          asset_class: {const: crypto}
          currency: {const: USD}
          symbol: product_id
          quote_id: id
          bid_price: best_bid
          bid_quantity: best_bid_size
          ask_price: best_ask
          ask_quantity: best_ask_size
          timestamp: {path: time, time: iso8601}

Mapping only rewrites the shape, never judges: numbers keep their exact JSON text (decimals are never floats), a
time that cannot be converted and a word outside a vocabulary are passed on as they are, and a missing path leaves
the field out. Validation then gives its usual verdict in K2's field names (`missing_field:price`,
`invalid_field:timestamp`, `unknown_side`, `malformed_json`), so mapped messages validate exactly like native
ones, and a dead letter keeps the bytes the topic delivered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import msgspec

from k2.model.schemas import Kind

TimeFormat = Literal["iso8601", "s", "ms", "us", "ns"]
_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": Decimal("0.001")}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_source = msgspec.json.Decoder(float_hook=Decimal)  # a JSON number's exact text, never through float
_encode = msgspec.json.Encoder(decimal_format="string").encode


class MappingError(ValueError):
    """A mapping file that cannot be used (said at start-up, before any message is read)."""


class FieldRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where one K2 field comes from: a path in the message or a constant, and how to convert it."""

    path: str | None = None
    const: Any = None
    time: TimeFormat | None = None
    values: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.const is None):
            raise MappingError("a field takes exactly one of `path` and `const`")


class TopicMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kind: Kind
    fields: dict[str, FieldRule | str]


class MappingFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    topics: dict[str, TopicMapping]


class Mapper:
    """One topic's mapping, compiled: `apply` turns the topic's message bytes into K2 wire bytes."""

    def __init__(self, kind: Kind, fields: Mapping[str, FieldRule | str]):
        self.kind = kind
        self._rules = [
            (name, FieldRule(path=rule) if isinstance(rule, str) else rule, _split(rule))
            for name, rule in fields.items()
        ]

    def apply(self, value: bytes) -> bytes:
        """The K2 wire form of one message; what is not a JSON object is passed on unchanged (validation then
        says `malformed_json` or `not_an_object`)."""
        try:
            message = _source.decode(value)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return value
        if not isinstance(message, dict):
            return value
        out: dict[str, Any] = {}
        for name, rule, steps in self._rules:
            if rule.const is not None:
                out[name] = rule.const
                continue
            found = _lookup(message, steps)
            if found is _MISSING:
                continue
            if rule.time is not None:
                found = _micros(found, rule.time)
            elif rule.values is not None and isinstance(found, str | int):
                found = rule.values.get(str(found), found)
            out[name] = found
        return _encode(out)

    def apply_all(self, values: list[bytes]) -> list[bytes]:
        apply = self.apply
        return [apply(value) for value in values]


def load_mappings(path: str | Path) -> dict[str, Mapper]:
    """The mappers of a mapping file, by topic. Raises `MappingError` with the reason when the file is unusable."""
    import yaml  # here, not with the module: only a mapping file needs it, and the flow imports this module

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise MappingError(f"cannot read the mapping file {path}: {exc}") from exc
    try:
        document = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        parsed = msgspec.convert(document, MappingFile)
    except (ValueError, msgspec.ValidationError, yaml.YAMLError) as exc:
        raise MappingError(f"mapping file {path}: {exc}") from exc
    return {topic: Mapper(spec.kind, spec.fields) for topic, spec in parsed.topics.items()}


_MISSING = object()


def _split(rule: FieldRule | str) -> tuple[str, ...]:
    path = rule if isinstance(rule, str) else rule.path
    return tuple(path.split(".")) if path else ()


def _lookup(message: dict[str, Any], steps: tuple[str, ...]) -> Any:
    found: Any = message
    for step in steps:
        if not isinstance(found, dict) or step not in found:
            return _MISSING
        found = found[step]
    return found


def _micros(value: Any, unit: TimeFormat) -> Any:
    """µs since the epoch, UTC, exactly; a value that does not convert exactly is returned as it is."""
    if unit == "iso8601":
        if not isinstance(value, str):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # a time without an offset is read as UTC
        return (parsed - _EPOCH) // _MICROSECOND
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        return value
    try:
        micros = Decimal(value) * _PER_UNIT[unit]
    except InvalidOperation:
        return value
    if not micros.is_finite():
        return value
    if unit == "ns":
        return int(micros.to_integral_value(rounding=ROUND_FLOOR))  # K2 keeps µs: nanoseconds floor to them
    return int(micros) if micros == micros.to_integral_value() else value
