"""Write generated sample data into DuckDB (schema ``raw``) and landing JSONL files."""

from __future__ import annotations

from pathlib import Path

import duckdb

from marketing_pipelines.sample_data.generator import EVENT_KINDS, TABLE_NAMES, SampleData

RAW_SCHEMA = "raw"


def warehouse_is_empty(duckdb_path: Path) -> bool:
    """True if the DuckDB file does not exist or has no ``raw.crm_persons`` table."""
    duckdb_path = Path(duckdb_path)
    if not duckdb_path.exists():
        return True
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        found = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [RAW_SCHEMA, "crm_persons"],
        ).fetchall()
    return not found[0][0]


def _existing_raw_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ?", [RAW_SCHEMA]
    ).fetchall()
    return {row[0] for row in rows}


def write_sample_data(
    data: SampleData, duckdb_path: Path, landing_dir: Path, *, replace: bool = False
) -> dict[str, int]:
    """Bulk-load every raw table into ``raw.<table>`` and write the landing JSONL files.

    Without ``replace`` an existing raw table or landing file is an error (``FileExistsError``); with it,
    tables are replaced and existing ``*.jsonl`` files in the event sub-directories are removed first.
    Returns the row count per table (as read back from DuckDB).
    """
    duckdb_path, landing_dir = Path(duckdb_path), Path(landing_dir)
    event_dirs = {kind: landing_dir / kind for kind in EVENT_KINDS}
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with duckdb.connect(str(duckdb_path)) as con:
        clash = _existing_raw_tables(con) & set(TABLE_NAMES)
        if clash and not replace:
            raise FileExistsError(f"{duckdb_path} already has raw tables {sorted(clash)}; pass replace=True")
        if not replace:
            stale = [p for d in event_dirs.values() if d.exists() for p in sorted(d.glob("*.jsonl"))]
            if stale:
                raise FileExistsError(f"landing files already exist (e.g. {stale[0]}); pass replace=True")
        con.execute("set enable_progress_bar = false").fetchall()
        con.execute(f"create schema if not exists {RAW_SCHEMA}").fetchall()
        for name, frame in data.tables().items():
            con.register("df", frame)
            try:
                con.execute(f"create or replace table {RAW_SCHEMA}.{name} as select * from df").fetchall()
            finally:
                con.unregister("df")
            counts[name] = int(con.execute(f"select count(*) from {RAW_SCHEMA}.{name}").fetchall()[0][0])

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
