"""Log lines: JSON objects carrying the record's extras, or text with the extras as key=value."""

from __future__ import annotations

import io
import logging
import sys
from decimal import Decimal

import msgspec
import pytest

from k2.ops.logs import JsonLinesFormatter, TextFormatter, configure_logging


def _record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("k2.storage.writer")
    return logger.makeRecord(
        "k2.storage.writer", logging.INFO, __file__, 1, "committed %s", ("trades",), None, extra=extra
    )


def test_a_json_line_carries_the_extras_that_trace_offsets_to_a_snapshot():
    record = _record(table="trades", rows=3, offsets={"market.trades/0": 6}, snapshot_id=42, price=Decimal("0.1"))
    line = JsonLinesFormatter().format(record)
    assert "\n" not in line
    decoded = msgspec.json.decode(line)
    assert decoded["message"] == "committed trades"
    assert (decoded["level"], decoded["logger"]) == ("info", "k2.storage.writer")
    assert decoded["time"].endswith("Z") and len(decoded["time"]) == len("2026-01-05T14:30:00.000000Z")
    assert decoded["offsets"] == {"market.trades/0": 6}
    assert (decoded["table"], decoded["rows"], decoded["snapshot_id"], decoded["price"]) == ("trades", 3, 42, "0.1")


def test_an_extra_never_hides_a_standard_field_and_odd_values_become_text():
    line = msgspec.json.decode(JsonLinesFormatter().format(_record(level="loud", thing=object())))
    assert line["level"] == "info"
    assert line["thing"].startswith("<object object")


def test_an_exception_travels_inside_the_line():
    try:
        raise ValueError("broken commit")
    except ValueError:
        record = logging.getLogger("k2").makeRecord("k2", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonLinesFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: broken commit" in msgspec.json.decode(line)["exception"]


def test_text_lines_put_the_extras_after_the_message():
    text = TextFormatter().format(_record(table="trades", rows=3))
    assert text.endswith("INFO k2.storage.writer: committed trades table=trades rows=3")


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_routes_every_logger_to_one_json_stream():
    own = logging.getLogger("test_logs.library_with_its_own_handler")  # as Litestar sets up `litestar`
    own.addHandler(logging.StreamHandler(io.StringIO()))
    own.propagate = False
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream)
    own.warning("from a library", extra={"path": "/v1/trades"})
    logging.getLogger("k2.flow.steps").debug("batch", extra={"topic": "market.trades", "partition": 0})
    lines = [msgspec.json.decode(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("test_logs.library_with_its_own_handler", "from a library"),
        ("k2.flow.steps", "batch"),
    ]
    assert lines[0]["path"] == "/v1/trades" and lines[1]["topic"] == "market.trades"
    assert own.propagate and not own.handlers
