"""K2's Bytewax flows: `ingest` (`python -m bytewax.run flows.ingest`). Wiring only; every step lives in `k2/`.

Arrow's C++ code takes its default memory pool from `ARROW_DEFAULT_MEMORY_POOL` once, when pyarrow is first
imported, and allocates from it wherever no pool is passed (Parquet writing, Acero, compute scratch): set later, in
`k2.flow.steps.tune_process`, the pool only reached pyarrow's Python calls, and the rest went to mimalloc, which
kept ~80 MiB of a commit's freed memory (benchmarks/report.md, "Design measurements: Compiled Kafka reader").
So the flow's package chooses jemalloc before anything imports pyarrow; an explicit setting wins.

OpenBLAS (numpy's, loaded by the flow's imports though nothing in the flow does linear algebra) starts a thread per
core that spins for a while once loaded: ~0.1 s of CPU taken from every start on two cores. One thread, then.

The cyclic garbage collector is off while the flow's modules import, and what they created is frozen before it is
turned back on (the last statements of `flows.ingest`): importing them creates ~110,000 objects the collector tracks
and no garbage (a collection afterwards finds none), and walking them took ~0.15 s of every flow process's start
(benchmarks/report.md, "Design measurements: Flow start-up").
"""

import gc
import os

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
gc.disable()
