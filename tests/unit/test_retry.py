"""k2.ops.retry: races retried with doubling pauses, other errors and the last failure passed on."""

from __future__ import annotations

import pytest

from k2.ops import retry as retry_module
from k2.ops.retry import retry


class Lost(Exception):
    pass


def test_a_race_lost_twice_is_won_on_the_third_attempt(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(retry_module.time, "sleep", pauses.append)
    outcomes = iter([Lost(), Lost(), "won"])

    def attempt() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    retried: list[int] = []
    assert retry(attempt, on=(Lost,), attempts=5, before_retry=retried.append) == "won"
    assert retried == [0, 1]
    assert 0.05 <= pauses[0] < 0.1 and 0.1 <= pauses[1] < 0.2  # doubling, with jitter in [1, 2)


def test_the_last_failure_and_other_errors_propagate(monkeypatch):
    monkeypatch.setattr(retry_module.time, "sleep", lambda _: None)
    calls = []

    def always_lost() -> None:
        calls.append(1)
        raise Lost()

    with pytest.raises(Lost):
        retry(always_lost, on=(Lost,), attempts=3)
    assert len(calls) == 3

    def broken() -> None:
        calls.append(1)
        raise KeyError("not a race")

    with pytest.raises(KeyError):
        retry(broken, on=(Lost,), attempts=3)
    assert len(calls) == 4  # no retry for what is not a race


def test_the_pause_stops_doubling_at_max_doublings(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(retry_module.time, "sleep", pauses.append)

    def lost() -> None:
        raise Lost()

    with pytest.raises(Lost):
        retry(lost, on=(Lost,), attempts=7, max_doublings=2)
    assert all(0.2 <= pause < 0.4 for pause in pauses[2:]) and len(pauses) == 6
