"""Apache Iceberg through pyiceberg: where K2's rows land and how they land exactly once.

`catalog` (the SQL/REST catalog, the four tables' schemas, partitioning and sort order), `writer` (`IcebergWriter`:
buffers batches and decides what to commit when), `commit` (one table commit, retried until it lands once),
`pending` (the writer's pending work as recovery state), `seams` (the Kafka position each table holds, and the
counters), `maintenance` (compaction, manifest merging, snapshot expiry), `cleanup` (deleting unreferenced files),
`backup`, and `internals`, the one module that reaches into pyiceberg's private API.
"""
