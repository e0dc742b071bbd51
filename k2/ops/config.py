"""K2 configuration: one typed object, read from `K2_*` environment variables and validated at start.

Every setting has a default that works on a fresh machine (an embedded SQLite catalog and a local warehouse under
`K2_DATA_DIR`). A bad value stops the process with a message naming the variable, never a traceback deep inside.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

ENV_PREFIX = "K2_"

SourceName = Literal["auto", "synthetic", "file", "kafka"]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Storage
    data_dir: str = "./.k2"
    namespace: str = "market_data"
    catalog_name: str = "k2"
    catalog_uri: str = ""  # default: sqlite under data_dir
    warehouse: str = ""  # default: file:// folder under data_dir
    # S3-compatible storage for an s3:// warehouse (else pyiceberg's own PYICEBERG_CATALOG__K2__S3__* settings)
    s3_endpoint: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_region: str = ""

    # Sources
    source: SourceName = "auto"  # auto: Kafka when K2_KAFKA_BOOTSTRAP is set, else the synthetic feed
    input_file: str = ""  # one message per line, for source=file
    input_kind: Literal["trade", "quote"] = "trade"  # what the file's messages are
    mapping: str = ""  # a mapping file (YAML or JSON) for topics in another JSON shape (k2.ingest.mapping)
    # Avro/Protobuf in the Confluent wire format (k2.formats): schemas by id from this registry, and/or offline from
    # files named <id>.avsc / <id>.desc / <id>.json in this directory (looked at first)
    schema_registry_url: str = ""
    schema_dir: str = ""
    kafka_bootstrap: str = ""
    kafka_tail: bool = True  # false: stop at the end of each partition as seen at start (bounded runs, tests)
    kafka_partitions: int = 4  # for topics K2 creates
    resume_warmup_messages: int = 100_000  # per partition, re-read below the seam to rebuild state (no recovery)
    trades_topic: str = "market.trades"
    quotes_topic: str = "market.quotes"
    dlq_topic: str = "market.dlq"
    synthetic_messages: int = 200_000
    synthetic_symbols: int = 50
    synthetic_seed: int = 7
    batch_size: int = 5_000

    # Flow
    epoch_seconds: float = 1.0  # the commit interval: sets produce -> committed latency
    # Bytewax recovery snapshots (`bytewax.run -s`, scripts/ingest.sh), whole seconds: how far a restart replays
    # from Kafka. A snapshot carries the rows of a commit in flight, so fewer snapshots are faster (see
    # k2.flow.recovery) but the soak's RSS crept with 10 s in CI (unexplained): 1 by default.
    snapshot_seconds: int = 1
    # Commit before the epoch ends once this many rows are buffered. This bounds the flow's memory while it catches
    # up: a row costs ~0.7 KiB at peak while buffered and committing (sorted, written, held in the recovery state),
    # and at 50,000 the flow stays under 400 MiB at full speed; raise it for fewer, larger commits where a commit
    # is slow (a remote catalog) and memory is plentiful (figures: benchmarks/report.md,
    # "Design measurements: Compiled Kafka reader").
    commit_max_rows: int = 50_000
    # SIGTERM / Ctrl-C: the sources end and the sinks commit what they hold (k2.ops.stopping); a drain longer than this
    # (a store that is down) ends the process at once, as a crash would: exact all the same, resumed later.
    stop_timeout_seconds: float = 30.0
    seam_heartbeat_seconds: float = 30.0  # an idle table still records the positions it has covered this often
    # A failed commit is retried with the same data (circuit breaker): after this many failures in a row the
    # breaker opens and retries back off up to the maximum; 0 = wait for as long as the outage lasts, else exit
    # after that many seconds (a restart resumes from the seams).
    commit_failure_threshold: int = 3
    commit_max_backoff_seconds: float = 30.0
    commit_give_up_seconds: float = 0.0
    # Degradation (k2.ops.degrade): slow down under pressure, never drop. The memory budget sets the RSS thresholds
    # (60/80/95 %); low-priority topics are paused first (default: the quotes topic).
    degradation: bool = True
    memory_limit_mb: int = 4096
    degrade_cool_down_seconds: float = 10.0
    low_priority_topics: str = ""  # comma-separated; empty: K2_QUOTES_TOPIC
    # Table maintenance by the flow's committer (k2.storage.maintenance), every this many commits (0: off; `k2 maintain`
    # does it by hand). Time travel (`as_of`) reaches back as far as snapshots are retained.
    maintenance_every_commits: int = 300
    snapshot_retain_last: int = 20
    snapshot_retention_seconds: float = 900.0
    # Compaction reads and rewrites whole partitions: in the flow process it made RSS jump (soak; benchmarks/report.md,
    # "Design measurements: Compaction outside the flow"), so by default the flow only expires snapshots and merges
    # manifests; compact with `k2 maintain` (cron) instead.
    maintenance_compact: bool = False

    # Validation: fixed bounds, never the wall clock, so replays decide the same
    min_timestamp_us: int = 946_684_800_000_000  # 2000-01-01T00:00:00Z
    max_timestamp_us: int = 4_102_444_800_000_000  # 2100-01-01T00:00:00Z

    # Sequence check and dedupe
    reset_floor: int = 1  # a count restarting at or below this, later in event time, is a new session
    session_gap_seconds: float = 3_600.0  # any backwards sequence after this much event-time silence is a reset
    max_gap_ranges: int = 10_000  # outstanding gap ranges remembered per instrument
    dedupe_horizon_seconds: float = 900.0  # event-time window for id-keyed dedupe
    dedupe_max_keys: int = 1_000_000  # per partition

    # Query service
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keys: str = ""  # comma-separated; `sha256:<hex>` entries are stored hashed; empty: one key is made at start
    api_rate_limit: int = 100  # requests per second per API key; 0 turns the limit off
    query_refresh_seconds: float = 0.5  # how stale the served snapshot may be before the catalog is asked again
    query_max_rows: int = 100_000  # the largest page or bar count one request may ask for
    realtime_max_messages: int = 500_000  # the Kafka tail held for realtime queries (beyond it, they say incomplete)

    # Operations
    metrics_port: int = 9464  # the flow process serves Prometheus metrics here (0: off); the API uses /metrics
    log_format: Literal["json", "text"] = "json"  # JSON lines for collectors; text for a terminal
    log_level: str = "INFO"  # DEBUG, INFO, WARNING or ERROR (any case); DEBUG adds a line per source batch
    # Traces (k2.ops.tracing), a span per batch and step; off when both are empty. The collector's OTLP/HTTP base URL
    # (the standard OTEL_EXPORTER_OTLP_ENDPOINT also works), and a file taking one JSON line per finished span.
    otlp_endpoint: str = ""
    trace_file: str = ""

    def __post_init__(self) -> None:
        if self.source == "auto":
            msgspec.structs.force_setattr(self, "source", "kafka" if self.kafka_bootstrap else "synthetic")
        msgspec.structs.force_setattr(self, "log_level", self.log_level.upper())
        problems = []
        for name in (
            "batch_size",
            "commit_max_rows",
            "max_gap_ranges",
            "dedupe_max_keys",
            "synthetic_symbols",
            "query_max_rows",
            "realtime_max_messages",
            "commit_failure_threshold",
            "memory_limit_mb",
            "snapshot_retain_last",
            "snapshot_seconds",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{env_name(name)} must be positive")
        for name in (
            "epoch_seconds",
            "stop_timeout_seconds",
            "dedupe_horizon_seconds",
            "session_gap_seconds",
            "seam_heartbeat_seconds",
            "commit_max_backoff_seconds",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{env_name(name)} must be positive")
        if not 0 < self.api_port < 65536:
            problems.append(f"{env_name('api_port')} must be a TCP port")
        if not 0 <= self.metrics_port < 65536:
            problems.append(f"{env_name('metrics_port')} must be a TCP port, or 0 for off")
        if self.otlp_endpoint and not self.otlp_endpoint.startswith(("http://", "https://")):
            problems.append(f"{env_name('otlp_endpoint')} must be an http:// or https:// URL")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"{env_name('log_level')} must be one of {', '.join(LOG_LEVELS)}")
        for name in (
            "api_rate_limit",
            "query_refresh_seconds",
            "commit_give_up_seconds",
            "degrade_cool_down_seconds",
            "maintenance_every_commits",
            "snapshot_retention_seconds",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{env_name(name)} must not be negative")
        if self.synthetic_messages < 0:
            problems.append(f"{env_name('synthetic_messages')} must not be negative")
        if self.min_timestamp_us >= self.max_timestamp_us:
            problems.append("K2_MIN_TIMESTAMP_US must be below K2_MAX_TIMESTAMP_US")
        if self.source == "file" and not self.input_file:
            problems.append("K2_SOURCE=file needs K2_INPUT_FILE")
        if self.source == "kafka" and not self.kafka_bootstrap:
            problems.append("K2_SOURCE=kafka needs K2_KAFKA_BOOTSTRAP")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def resolved_catalog_uri(self) -> str:
        return self.catalog_uri or f"sqlite:///{self.data_path / 'catalog.db'}"

    @property
    def resolved_warehouse(self) -> str:
        return self.warehouse or (self.data_path / "warehouse").as_uri()

    @property
    def dedupe_horizon_us(self) -> int:
        return int(self.dedupe_horizon_seconds * 1_000_000)

    @property
    def session_gap_us(self) -> int:
        return int(self.session_gap_seconds * 1_000_000)


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from `K2_*` variables (default: the process environment), then apply keyword overrides."""
    environ = os.environ if environ is None else environ
    fields = set(Settings.__struct_fields__)
    raw: dict[str, object] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and (name := key[len(ENV_PREFIX) :].lower()) in fields:
            raw[name] = value
    raw.update(overrides)
    try:
        # strict=False converts the environment's strings to the declared int/float/literal types
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def _explain(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    marker = "at `$."
    if marker in text:
        field = text.split(marker, 1)[1].rstrip("`").split("`")[0].split(".")[0]
        return f"{env_name(field)}: {text.split(' - at ')[0]}"
    return text
