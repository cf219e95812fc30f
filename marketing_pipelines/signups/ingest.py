"""Load landed event files: good lines appended once per `event_id`, bad lines to `ops.quarantine`, and each
file version (path + SHA-256) recorded in `ops.ingested_files`."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketing_pipelines.pii import mask_email
from marketing_pipelines.signups.landing import file_sha256, scan
from marketing_pipelines.signups.tables import (
    EVENT_COLUMNS,
    EVENT_TABLES,
    INGESTED_FILES,
    INGESTED_FILES_COLUMNS,
    QUARANTINE,
    QUARANTINE_COLUMNS,
    RAW_SCHEMA,
    create_tables_sql,
)
from marketing_pipelines.signups.validation import validate_line
from marketing_pipelines.warehouse import Warehouse


class IncompleteFile(Exception):
    """The file's last line has no newline and is not valid JSON yet: it is probably still being written."""


@dataclass
class IngestReport:
    file: str
    table: str
    file_sha256: str = ""
    already_ingested: bool = False
    lines_read: int = 0
    loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    preview: list[dict[str, Any]] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "table": self.table,
            "already_ingested": self.already_ingested,
            "lines_read": self.lines_read,
            "loaded": self.loaded,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
        }


def kind_of(path: str | Path) -> str:
    """The event kind of a landed file: its folder name (`trial_signups` or `free_registrations`)."""
    kind = Path(path).parent.name
    if kind not in EVENT_TABLES:
        raise ValueError(f"{path} is not in a landing folder of {sorted(EVENT_TABLES)}")
    return kind


def read_lines(path: str | Path, data: bytes) -> list[tuple[int, str | None, bytes]]:
    """(line number, text or None when not UTF-8, raw bytes) for every line of ``data`` (the content of ``path``);
    raises IncompleteFile on a half line."""
    raw_lines = data.split(b"\n")
    tail = raw_lines.pop()  # b"" when the file ends with a newline
    lines = []
    for number, raw in enumerate([*raw_lines, tail] if tail else raw_lines, start=1):
        raw = raw.removesuffix(b"\r")
        try:
            text: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        lines.append((number, text, raw))
    if tail:
        text = lines[-1][1]
        verdict = "not UTF-8" if text is None else validate_line(text)
        if isinstance(verdict, str) and verdict.startswith(("not JSON", "not UTF-8")):
            raise IncompleteFile(f"{path}: last line has no newline and is not complete JSON yet")
    return lines


def ingested_versions(warehouse: Warehouse, sha256: str | None = None) -> set[tuple[str, str]]:
    """(path, SHA-256) of every file version already loaded (only those with content ``sha256``, when given)."""
    warehouse.execute(create_tables_sql())
    sql = f"select file, file_sha256 from {INGESTED_FILES}"
    if sha256 is not None:
        sql += f" where file_sha256 = '{int(sha256, 16):064x}'"  # a hex digest: never text to escape
    return {(file, sha) for file, sha in warehouse.query(sql)}


def ingest_file(warehouse: Warehouse, path: str | Path, *, today: dt.date | None = None) -> IngestReport:
    """Validate every line of one file, append new good lines and quarantine bad ones, in one transaction.

    A file version (same path, same content) already loaded is not read again; a changed file is loaded anew
    (its events still once per `event_id`).
    """
    import pandas as pd

    path = Path(path)
    kind = kind_of(path)
    table = f"{RAW_SCHEMA}.{EVENT_TABLES[kind]}"
    data = path.read_bytes()
    report = IngestReport(file=str(path), table=table, file_sha256=hashlib.sha256(data).hexdigest())
    if (str(path), report.file_sha256) in ingested_versions(warehouse, report.file_sha256):
        report.already_ingested = True
        return report
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for number, text, raw in read_lines(path, data):
        report.lines_read += 1
        result = "not UTF-8 text" if text is None else validate_line(text, today=today)
        if isinstance(result, str):
            raw_text = text if text is not None else raw.decode("utf-8", "backslashreplace")
            bad.append(
                {
                    "file": str(path),
                    "file_sha256": report.file_sha256,
                    "line_number": number,
                    "raw_text": raw_text,
                    "reason": result,
                    "quarantined_at": now,
                }
            )
            reason = result.split(":")[0]
            report.reasons[reason] = report.reasons.get(reason, 0) + 1
        else:
            good.append({**result, "source_file": str(path), "line_number": number, "loaded_at": now})

    events = pd.DataFrame(good, columns=list(EVENT_COLUMNS))
    quarantine = pd.DataFrame(bad, columns=list(QUARANTINE_COLUMNS))
    (before,) = warehouse.query(f"select count(*) from {table}")[0]
    report.quarantined = len(bad)
    ledger = pd.DataFrame(
        [
            {
                "file": str(path),
                "file_sha256": report.file_sha256,
                "kind": kind,
                "lines_read": report.lines_read,
                "quarantined": report.quarantined,
                "ingested_at": now,
            }
        ]
    )  # loaded and duplicates are counted by the insert itself, in the same transaction
    cast_columns = ", ".join(f"cast({name} as {sql_type}) as {name}" for name, sql_type in EVENT_COLUMNS.items())
    quarantine_columns = ", ".join(QUARANTINE_COLUMNS)
    warehouse.execute(
        [
            f"""insert into {table} ({", ".join(EVENT_COLUMNS)})
            select {cast_columns} from _events as incoming
            where not exists (select 1 from {table} as loaded where loaded.event_id = incoming.event_id)
            qualify row_number() over (partition by incoming.event_id order by incoming.line_number) = 1""",
            f"""insert into {QUARANTINE} ({quarantine_columns})
            select {quarantine_columns} from _quarantine as incoming
            where not exists (
                select 1 from {QUARANTINE} as q
                where q.file_sha256 = incoming.file_sha256 and q.line_number = incoming.line_number
            )""",
            f"""insert into {INGESTED_FILES} ({", ".join(INGESTED_FILES_COLUMNS)})
            select
                file, file_sha256, kind, lines_read,
                (select count(*) from {table}) - {int(before)} as loaded,
                {len(good)} - ((select count(*) from {table}) - {int(before)}) as duplicates,
                quarantined, ingested_at
            from _ledger""",
        ],
        frames={"_events": events, "_quarantine": quarantine, "_ledger": ledger},
    )
    (after,) = warehouse.query(f"select count(*) from {table}")[0]
    report.loaded = after - before
    report.duplicates = len(good) - report.loaded
    report.preview = [
        {"event_id": row["event_id"], "email": mask_email(row["email"]), "occurred_at": str(row["occurred_at"])}
        for row in good[:5]
    ]
    return report


def pending_files(warehouse: Warehouse, landing_dir: str | Path, kind: str) -> Iterator[str]:
    """Landed ``kind`` files whose current content is not in `ops.ingested_files` yet (oldest change first)."""
    done = ingested_versions(warehouse)
    for landed in sorted(scan(landing_dir, (kind,)), key=lambda f: (f.ctime_ns, f.name)):
        try:
            sha = file_sha256(landed.path)
        except FileNotFoundError:
            continue
        if (landed.path, sha) not in done:
            yield landed.path
