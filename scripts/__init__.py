"""Developer and CI tooling, run from the repository root.

A package so that tests and benchmarks import ``scripts.local_kafka`` like any other module; the shell scripts
beside it (``ingest.sh``, ``demo.sh``, ``system_deps.sh``) are run directly.
"""
