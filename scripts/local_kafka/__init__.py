"""Run a real single-node Apache Kafka broker locally, without Docker.

The broker jars come from Maven Central (scripts/kafka/pom.xml) and are cached
in an ignored folder, so only the first ``fetch`` needs Maven and the network.
The broker runs as one KRaft node (broker + controller), bound to loopback only,
on free ports, sized for dev machines and CI (-Xmx512m).

CLI (from the repository root)::

    uv run python -m scripts.local_kafka fetch
    uv run python -m scripts.local_kafka start [--data-dir DIR] [--port N] [--advertised-port N]
    uv run python -m scripts.local_kafka status
    uv run python -m scripts.local_kafka env [--export]
    uv run python -m scripts.local_kafka stop

``start`` prints the bootstrap address (``127.0.0.1:PORT``) as its last stdout
line; progress goes to stderr. That broker is detached: it keeps running after
the command, until ``stop``.

Library (tests/fixtures/kafka.py, benchmarks)::

    with start_broker() as broker:   # private broker in a fresh temp dir
        use(broker.bootstrap)

A broker started this way belongs to the calling process: it dies with it,
even when that process is killed (``watchdog.py``).

Environment:
    K2_KAFKA_CACHE      jar cache root (default .cache/kafka); jars go to <root>/<version>/lib
    K2_KAFKA_STATE_DIR  where the CLI keeps broker.json (default .k2/kafka)
    K2_KAFKA_JVM_OPTS   extra JVM options for the broker, appended to the defaults
    K2_KAFKA_OWNER      pid the CLI's broker dies with (a test driving the CLI); unset: it runs until ``stop``

Modules: ``common`` (paths, limits, errors, file lock), ``jars`` (fetch and
cache), ``processes`` (pids, groups, ports, the watchdog's start), ``watchdog``
(kills an owned broker when its owner exits), ``broker`` (a running broker),
``start`` (starting one), ``cli`` (the command line and its state file).

Only the standard library is used, except confluent-kafka for the readiness
check (an admin ``list_topics()``), imported lazily.
"""

from scripts.local_kafka.broker import Broker, broker_answers, log_tail
from scripts.local_kafka.common import BrokerError, file_lock
from scripts.local_kafka.jars import fetch, is_fetched, kafka_version
from scripts.local_kafka.processes import free_ports, pid_alive, proc_cmdline
from scripts.local_kafka.start import server_properties, start_broker

__all__ = [
    "Broker",
    "BrokerError",
    "broker_answers",
    "fetch",
    "file_lock",
    "free_ports",
    "is_fetched",
    "kafka_version",
    "log_tail",
    "pid_alive",
    "proc_cmdline",
    "server_properties",
    "start_broker",
]
