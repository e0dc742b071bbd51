"""Loaders: files -> wire messages (schema v2 JSON bytes), keyed by instrument, for Kafka or the file source.

Every input line yields exactly one `Loaded`: wire bytes, or (a line that cannot be converted) its raw bytes with a
`LoadError` giving file, line and reason. The raw bytes travel on and become a dead letter in the flow, so
"rows + dead letters + duplicates = lines read" holds end to end; callers count the errors with `Tally`.

- `load_asx(root)`: the ASX tick files (Sydney time, derived per-day sequences and ids), see `k2.loaders.asx`.
- `load_file(path, kind, fmt)`: NDJSON or headered CSV already in the wire model, see `k2.loaders.generic`.
- `to_batches(...)` (Kafka-shaped `RawBatch`es for any Bytewax source) and `write_ndjson(...)` (for K2_SOURCE=file).
"""

from k2.loaders.asx import asx_files, company_symbols, load_asx, load_asx_file, sydney_to_utc_us
from k2.loaders.base import Loaded, LoadError, Tally, read_lines, to_batches, write_ndjson
from k2.loaders.generic import load_csv, load_file, load_ndjson

__all__ = [
    "LoadError",
    "Loaded",
    "Tally",
    "asx_files",
    "company_symbols",
    "load_asx",
    "load_asx_file",
    "load_csv",
    "load_file",
    "load_ndjson",
    "read_lines",
    "sydney_to_utc_us",
    "to_batches",
    "write_ndjson",
]
