"""The tools a user would pick instead of K2, run beside it on the same broker, data and machine (issue 14):
the Apache Iceberg Kafka Connect sink (ingest) and QuestDB (queries).

- ``jars``: each peer's jars from Maven Central (``connect/pom.xml``, ``questdb/pom.xml``) into ``.cache/peers``
  (``python -m benchmarks.peers.jars fetch``; ``make peers-fetch``);
- ``connect``: Kafka Connect standalone with the Iceberg sink on K2's local broker (start, stop, SIGKILL);
- ``questdb``: a QuestDB server on loopback with its data under the cache (start, stop, SQL over HTTP);
- ``ingest`` and ``queries``: the side-by-side measurements; ``benchmarks/peers_bench.py`` runs both.
"""
