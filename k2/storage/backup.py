"""Backup and restore of a local K2 lakehouse: the SQLite catalog and the warehouse files its tables reference.

A backup is consistent while the flow keeps committing: the catalog is copied first with SQLite's online backup
API (one transactionally consistent copy), then every file the copied catalog's metadata references is copied
(metadata files, manifest lists, manifests, data files of every snapshot). Iceberg files are immutable once
written, so those bytes are exactly what the catalog pointed at. A file deleted meanwhile (maintenance expiring
the snapshot that held it) makes the attempt start again.

What is supported: a SQLite catalog with a local warehouse folder, restored **in place** — at the same warehouse
path — e.g. onto a wiped or damaged data dir, or over a warehouse that has moved on since. Iceberg metadata holds
absolute paths, so restoring into another folder would mean rewriting every metadata file, manifest list and
manifest; that is refused (`RestoreError`). PostgreSQL catalogs and S3 warehouses: use `pg_dump` and bucket
versioning instead.

After a restore the tables' seams are those of the backup: a flow started without Bytewax recovery state resumes
there and reads the rest from Kafka again (exactly once, while the topics still hold those messages). The recovery
state is ahead of the restored tables, so `restore` moves it aside.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from pyiceberg.catalog.sql import SqlCatalog

from k2.ops.config import Settings
from k2.storage.catalog import local_path
from k2.storage.cleanup import referenced_files

CATALOG_FILE = "catalog.db"
WAREHOUSE_DIR = "warehouse"
MANIFEST_FILE = "k2-backup.json"


class BackupError(RuntimeError):
    """The lakehouse cannot be backed up as configured."""


class RestoreError(RuntimeError):
    """The backup cannot be restored here (wrong location, missing or damaged files)."""


class BackupManifest(msgspec.Struct, kw_only=True):
    created_at: str
    warehouse: str  # the absolute warehouse path the metadata points into
    catalog_name: str
    tables: dict[str, str]  # "namespace.table" -> metadata location at backup time
    files: dict[str, int]  # path relative to the warehouse -> size in bytes


def backup(settings: Settings, dest: Path, attempts: int = 5) -> BackupManifest:
    """Copy the catalog and every file it references into `dest` (which must not exist or be empty)."""
    catalog_path, warehouse = _local_layout(settings)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty")
    for attempt in range(attempts):
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        _copy_database(catalog_path, dest / CATALOG_FILE)
        try:
            return _copy_referenced(settings, dest, warehouse)
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))  # maintenance removed a file the copied catalog still named
    raise AssertionError("unreachable")


def restore(settings: Settings, src: Path, recovery_dir: Path | None = None) -> BackupManifest:
    """Put a backup back in place: its files under the warehouse, then its catalog over the live one. Files the
    warehouse holds beyond the backup are left (unreferenced: `k2 maintain --orphans-older-than` removes them)."""
    catalog_path, warehouse = _local_layout(settings)
    src = Path(src)
    manifest = msgspec.json.decode((src / MANIFEST_FILE).read_bytes(), type=BackupManifest)
    if Path(manifest.warehouse) != warehouse:
        raise RestoreError(
            f"the backup's metadata points into {manifest.warehouse}; restore it there (K2_DATA_DIR/K2_WAREHOUSE), "
            f"not into {warehouse}: Iceberg metadata holds absolute paths"
        )
    for relative, size in manifest.files.items():
        source = src / WAREHOUSE_DIR / relative
        if not source.is_file() or source.stat().st_size != size:
            raise RestoreError(f"backup file {source} is missing or has the wrong size")
    for relative in manifest.files:
        target = warehouse / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / WAREHOUSE_DIR / relative, target)  # always: a damaged file may keep its size
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    _copy_database(src / CATALOG_FILE, catalog_path)
    if recovery_dir is not None and Path(recovery_dir).exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        Path(recovery_dir).rename(Path(recovery_dir).with_name(f"{Path(recovery_dir).name}.before-restore-{stamp}"))
    return manifest


def _local_layout(settings: Settings) -> tuple[Path, Path]:
    uri, warehouse = settings.resolved_catalog_uri, settings.resolved_warehouse
    if not uri.startswith("sqlite:///") or not warehouse.startswith("file:"):
        raise BackupError(
            "backup/restore support a SQLite catalog with a local warehouse (use pg_dump / S3 versioning)"
        )
    return Path(uri.removeprefix("sqlite:///")), Path(local_path(warehouse))


def _copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while another process commits to the source."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _copy_referenced(settings: Settings, dest: Path, warehouse: Path) -> BackupManifest:
    catalog = SqlCatalog(
        settings.catalog_name, uri=f"sqlite:///{dest / CATALOG_FILE}", warehouse=settings.resolved_warehouse
    )
    tables: dict[str, str] = {}
    paths: set[str] = set()
    try:
        for namespace in catalog.list_namespaces():
            for identifier in catalog.list_tables(namespace):
                table = catalog.load_table(identifier)
                tables[".".join(identifier)] = table.metadata_location
                current = {table.metadata_location}
                # the metadata log may name files pyiceberg already deleted (delete-after-commit): not needed
                paths |= {p for p in referenced_files(table) if p in current or not p.endswith(".metadata.json")}
    finally:
        catalog.engine.dispose()
    files: dict[str, int] = {}
    for path in sorted(paths):
        local = Path(local_path(path))
        relative = local.relative_to(warehouse).as_posix()
        target = dest / WAREHOUSE_DIR / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local, target)
        files[relative] = target.stat().st_size
    manifest = BackupManifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        warehouse=str(warehouse),
        catalog_name=settings.catalog_name,
        tables=tables,
        files=files,
    )
    (dest / MANIFEST_FILE).write_bytes(json.dumps(msgspec.to_builtins(manifest), indent=1).encode())
    return manifest
