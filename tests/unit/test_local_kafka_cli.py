"""The CLI's `start`: a detached broker (the dev broker runs until `stop`) unless K2_KAFKA_OWNER names its owner."""

from __future__ import annotations

from pathlib import Path

import pytest

import scripts.local_kafka.cli as cli
from scripts.local_kafka import Broker

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("owner", "expected"), [("", (True, None)), ("4242", (False, 4242))])
def test_start_detaches_the_broker_unless_an_owner_is_named(tmp_path, monkeypatch, capsys, owner, expected):
    started: list[dict[str, object]] = []

    def start_broker(data_dir: Path, **options: object) -> Broker:
        started.append(options)
        return Broker(pid=1234, bootstrap="127.0.0.1:9092", data_dir=data_dir, log=data_dir / "broker.log")

    monkeypatch.setattr(cli, "start_broker", start_broker)
    monkeypatch.setenv("K2_KAFKA_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("K2_KAFKA_OWNER", owner)
    assert cli.main(["start"]) == 0
    assert (started[0]["detached"], started[0]["owner"]) == expected
    assert capsys.readouterr().out.strip() == "127.0.0.1:9092"
    state = cli.load_state()
    assert state is not None and (state.pid, state.bootstrap) == (1234, "127.0.0.1:9092")
