"""Process logging: JSON lines (one object per record, with the record's extras) or text for a terminal.

A record's `extra={...}` fields become top-level keys of its JSON line, so an operator can follow one message by
fields: the batch line says which topic/partition/offset range went through the flow, the commit line which
offsets each table's new snapshot covers (its seam) and the snapshot id.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

import msgspec

LogFormat = Literal["json", "text"]

# Everything a LogRecord carries by itself; any other attribute came in through `extra=`. uvicorn adds
# `color_message`, the message again with terminal colour codes.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}


def extras(record: logging.LogRecord) -> dict[str, object]:
    """The fields a log call added with `extra=` (in the order given)."""
    return {key: value for key, value in record.__dict__.items() if key not in _RECORD_FIELDS}


class JsonLinesFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...extras, "exception"}` on one line; time is RFC 3339 UTC (µs)."""

    def __init__(self) -> None:
        super().__init__()
        # Anything msgspec cannot encode natively (a Decimal is fine, an arbitrary object is not) goes as its str.
        self._encode = msgspec.json.Encoder(enc_hook=str, decimal_format="string").encode

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extras(record).items():
            line.setdefault(key, value)  # an extra never hides the standard fields
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return self._encode(line).decode()


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = extras(record)
        if not fields:
            return text
        head, newline, trace = text.partition("\n")  # the fields stay on the first line, before any traceback
        return head + " " + " ".join(f"{key}={value}" for key, value in fields.items()) + newline + trace


def _rfc3339(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def configure_logging(format: LogFormat = "json", level: str | int = "INFO", stream: TextIO | None = None) -> None:
    """One handler on the root logger (replacing any), so every library's records come out in one format.

    Loggers that brought their own handlers (Litestar configures `litestar` with one when an app is built) are
    routed to the root handler too; call this after such a library has set itself up.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLinesFormatter() if format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.handlers:
            for own in list(logger.handlers):
                logger.removeHandler(own)
            logger.propagate = True
