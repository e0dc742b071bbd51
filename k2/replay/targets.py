"""Where a replay goes: NDJSON lines, an Arrow IPC stream, or Kafka topics."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from k2.model.schemas import KINDS
from k2.query.engine import to_datetime
from k2.replay.pacing import Pacer, paced
from k2.replay.read import REPLAY_SCHEMA, Replay

# --- targets ---------------------------------------------------------------------------------------------------


def ndjson_stream(replay: Replay, pacer: Pacer | None = None) -> Iterator[bytes]:
    """NDJSON: one wire message per line, in replay order; a block of lines per chunk (or per due group)."""
    if pacer is None or pacer.speed is None:
        for chunk in replay.chunks(wire=True):
            yield b"\n".join(chunk.column("value").to_pylist()) + b"\n"
        return
    for group in paced(replay.messages(), pacer):
        yield b"".join(m.value + b"\n" for m in group)


def arrow_stream(replay: Replay, pacer: Pacer | None = None) -> Iterator[bytes]:
    """An Arrow IPC stream of the rows in `REPLAY_SCHEMA` (exact decimals, µs UTC times), a batch per chunk (or
    per group of rows due together when paced). The schema goes first, even for an empty replay."""
    sink = io.BytesIO()
    writer = pa.ipc.new_stream(sink, REPLAY_SCHEMA)

    def take() -> bytes:
        data = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        return data

    yield take()
    for chunk in replay.chunks():
        if pacer is None or pacer.speed is None:
            for batch in chunk.to_batches():
                writer.write_batch(batch)
            yield take()
            continue
        times = chunk.column("timestamp").cast(pa.int64()).to_pylist()
        first = 0
        for i, event_us in enumerate(times):
            if pacer.delay(event_us) > 0:
                if i > first:
                    writer.write_table(chunk.slice(first, i - first))
                    yield take()
                    first = i
                pacer.wait(event_us)
        if first < len(times):
            writer.write_table(chunk.slice(first))
            yield take()
    writer.close()
    yield take()


@dataclass
class ReplayResult:
    rows: int
    seconds: float
    topics: dict[str, str]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def topics_for(
    prefix: str = "replay", trades_topic: str | None = None, quotes_topic: str | None = None, topic: str | None = None
) -> dict[str, str]:
    """Kind -> topic: one `topic` for both, else `<prefix>.trades` / `<prefix>.quotes` unless named."""
    if topic:
        return {"trade": topic, "quote": topic}
    return {"trade": trades_topic or f"{prefix}.trades", "quote": quotes_topic or f"{prefix}.quotes"}


def replay_to_kafka(
    replay: Replay,
    bootstrap: str,
    topics: dict[str, str],
    *,
    speed: float | None = None,
    progress: Callable[[int], None] | None = None,
    create_topics: bool = True,
    partitions: int = 4,
    producer_config: dict[str, object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Produce the replay keyed `EXCHANGE:SYMBOL` (one instrument, one partition, in order) with an idempotent,
    acks=all producer; returns once the broker confirmed every message (else `k2.kafka.producer.DeliveryError`).

    When trades and quotes share one topic, each message carries a `k2.kind` header.
    """
    from k2.kafka.admin import ensure_topics
    from k2.kafka.producer import CheckedProducer, make_producer

    wanted = {kind: topics[kind] for kind in replay.request.kinds}
    if create_topics:
        ensure_topics(bootstrap, sorted(set(wanted.values())), partitions)
    shared = len(set(wanted.values())) < len(wanted)
    headers = {kind: [("k2.kind", kind.encode())] for kind in KINDS} if shared else dict.fromkeys(KINDS)
    producer = CheckedProducer(make_producer(bootstrap, **(producer_config or {})))
    pacer = Pacer(speed, clock=clock, sleep=sleep)
    produce, poll = producer.produce, producer.producer.poll
    started = clock()
    sent = 0
    for chunk in replay.chunks(wire=True):
        kinds, keys, values = (chunk.column(name).to_pylist() for name in ("kind", "key", "value"))
        times = chunk.column("timestamp").to_pylist() if pacer.speed is not None else None
        for i, kind in enumerate(kinds):
            if times is not None:
                pacer.wait(times[i])
            produce(wanted[kind], values[i], keys[i], headers[kind])
            sent += 1
            if sent % 10_000 == 0:
                poll(0)
                if progress:
                    progress(sent)
        poll(0)
        if progress:
            progress(sent)
    delivered = producer.flush()
    return ReplayResult(delivered, clock() - started, wanted)


def describe(replay: Replay) -> str:
    request = replay.request
    span = " .. ".join(to_datetime(t).isoformat() if t is not None else "open" for t in (request.start, request.end))
    return f"replay {','.join(request.kinds)} [{span}) snapshots {replay.snapshot_ids}"
