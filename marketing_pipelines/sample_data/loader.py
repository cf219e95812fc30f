"""Write generated sample data into the warehouse (schema ``raw``, bulk loads) and landing JSONL files."""

from __future__ import annotations

from pathlib import Path

from marketing_pipelines.sample_data.generator import EVENT_KINDS, TABLE_NAMES, SampleData
from marketing_pipelines.warehouse import Warehouse

RAW_SCHEMA = "raw"


def warehouse_is_empty(warehouse: Warehouse) -> bool:
    """True if the warehouse has no ``raw.crm_persons`` table."""
    return not warehouse.table_exists(RAW_SCHEMA, "crm_persons")


def write_sample_data(
    data: SampleData, warehouse: Warehouse, landing_dir: Path, *, replace: bool = False
) -> dict[str, int]:
    """Bulk-load every raw table into ``raw.<table>`` and write the landing JSONL files.

    Without ``replace`` an existing raw table or landing file is an error (``FileExistsError``); with it,
    tables are replaced and existing ``*.jsonl`` files in the event sub-directories are removed first.
    Returns the row count per table (as read back from the warehouse).
    """
    landing_dir = Path(landing_dir)
    event_dirs = {kind: landing_dir / kind for kind in EVENT_KINDS}
    if not replace:
        clash = [name for name in TABLE_NAMES if warehouse.table_exists(RAW_SCHEMA, name)]
        if clash:
            raise FileExistsError(f"{warehouse.describe()} already has raw tables {clash}; pass replace=True")
        stale = [p for d in event_dirs.values() if d.exists() for p in sorted(d.glob("*.jsonl"))]
        if stale:
            raise FileExistsError(f"landing files already exist (e.g. {stale[0]}); pass replace=True")
    tables = data.tables()
    for name, frame in tables.items():
        warehouse.write_frame(RAW_SCHEMA, name, frame, replace=True)
    loaded = warehouse.row_counts((RAW_SCHEMA, name) for name in tables)
    counts = {name: loaded[(RAW_SCHEMA, name)] for name in tables}

    for kind, files in data.event_files().items():
        directory = event_dirs[kind]
        directory.mkdir(parents=True, exist_ok=True)
        if replace:
            for old in directory.glob("*.jsonl"):
                old.unlink()
        for event_file in files:
            text = "".join(line + "\n" for line in event_file.lines)
            with open(directory / event_file.name, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        counts[kind] = sum(len(f.lines) for f in files)
    return counts
