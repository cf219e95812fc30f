"""Write generated sample data into the warehouse (schema ``raw``, bulk loads) and landing JSONL files."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path

from marketing_pipelines.sample_data.generator import EVENT_KINDS, TABLE_NAMES, SampleData
from marketing_pipelines.warehouse import Warehouse

RAW_SCHEMA = "raw"
LANDING_FILE_DATE = re.compile(r"_(\d{4}-\d{2}-\d{2})T\d{2}-\d{2}-\d{2}\.jsonl$")
"""The generator names each landing file after its upper time bound; the newest one is ``as_of`` at 06:00 UTC."""


def warehouse_is_empty(warehouse: Warehouse) -> bool:
    """True if the warehouse has no ``raw.crm_persons`` table."""
    return not warehouse.table_exists(RAW_SCHEMA, "crm_persons")


def empty_raw_tables(warehouse: Warehouse) -> list[str]:
    """The sample raw tables that are missing or have no rows."""
    counts = warehouse.row_counts((RAW_SCHEMA, name) for name in TABLE_NAMES)
    return [name for name in TABLE_NAMES if not counts.get((RAW_SCHEMA, name))]


def landing_files(landing_dir: Path, kinds: Iterable[str] = EVENT_KINDS) -> list[Path]:
    """The ``*.jsonl`` files in the landing sub-directories of ``kinds``."""
    return [p for kind in kinds if (landing_dir / kind).exists() for p in sorted((landing_dir / kind).glob("*.jsonl"))]


def empty_landing_kinds(landing_dir: Path) -> list[str]:
    """The event kinds whose landing sub-directory has no ``*.jsonl`` file."""
    return [kind for kind in EVENT_KINDS if not landing_files(landing_dir, [kind])]


def landing_as_of(landing_dir: Path) -> dt.date | None:
    """The reference date generated landing files were made for (from their names), if any."""
    dates = [m.group(1) for p in landing_files(landing_dir) if (m := LANDING_FILE_DATE.search(p.name))]
    return dt.date.fromisoformat(max(dates)) if dates else None


def write_sample_data(
    data: SampleData,
    warehouse: Warehouse,
    landing_dir: Path,
    *,
    replace: bool = False,
    tables: Iterable[str] = TABLE_NAMES,
    event_kinds: Iterable[str] = EVENT_KINDS,
) -> dict[str, int]:
    """Bulk-load the raw ``tables`` into ``raw.<table>`` and write the landing JSONL files of ``event_kinds``.

    Without ``replace`` a raw table that has rows, or a landing file, among those to write is an error
    (``FileExistsError``); an empty raw table is filled. With ``replace`` tables are replaced and existing ``*.jsonl``
    files in the event sub-directories are removed first. Returns the row count per table written (as read back
    from the warehouse) and the line count per event kind written.
    """
    landing_dir = Path(landing_dir)
    tables, event_kinds = list(tables), list(event_kinds)
    if not replace:
        filled = sorted(set(tables) - set(empty_raw_tables(warehouse)))
        if filled:
            raise FileExistsError(f"{warehouse.describe()} already has rows in raw tables {filled}")
        stale = landing_files(landing_dir, event_kinds)
        if stale:
            raise FileExistsError(f"landing files already exist (e.g. {stale[0]})")
    frames = {name: frame for name, frame in data.tables().items() if name in tables}
    for name, frame in frames.items():
        warehouse.write_frame(RAW_SCHEMA, name, frame, replace=True)
    loaded = warehouse.row_counts((RAW_SCHEMA, name) for name in frames)
    counts = {name: loaded[(RAW_SCHEMA, name)] for name in frames}

    for kind, files in data.event_files().items():
        if kind not in event_kinds:
            continue
        directory = landing_dir / kind
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
