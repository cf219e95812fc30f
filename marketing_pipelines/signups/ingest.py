"""Load one landed event file: good lines appended once per `event_id`, bad lines to `ops.quarantine`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketing_pipelines.pii import mask_email
from marketing_pipelines.signups.tables import (
    EVENT_COLUMNS,
    EVENT_TABLES,
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


def read_lines(path: str | Path) -> list[tuple[int, str | None, bytes]]:
    """(line number, text or None when not UTF-8, raw bytes) for every line; raises IncompleteFile on a half line."""
    data = Path(path).read_bytes()
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


def ingest_file(warehouse: Warehouse, path: str | Path, *, today: dt.date | None = None) -> IngestReport:
    """Validate every line of one file, append new good lines and quarantine bad ones, in one transaction."""
    import pandas as pd

    path = Path(path)
    table = f"{RAW_SCHEMA}.{EVENT_TABLES[kind_of(path)]}"
    report = IngestReport(file=str(path), table=table)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for number, text, raw in read_lines(path):
        report.lines_read += 1
        result = "not UTF-8 text" if text is None else validate_line(text, today=today)
        if isinstance(result, str):
            raw_text = text if text is not None else raw.decode("utf-8", "backslashreplace")
            bad.append(
                {
                    "file": str(path),
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

    warehouse.execute(create_tables_sql())
    events = pd.DataFrame(good, columns=list(EVENT_COLUMNS))
    quarantine = pd.DataFrame(bad, columns=list(QUARANTINE_COLUMNS))
    (before,) = warehouse.query(f"select count(*) from {table}")[0]
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
                where q.file = incoming.file and q.line_number = incoming.line_number
            )""",
        ],
        frames={"_events": events, "_quarantine": quarantine},
    )
    (after,) = warehouse.query(f"select count(*) from {table}")[0]
    report.loaded = after - before
    report.duplicates = len(good) - report.loaded
    report.quarantined = len(bad)
    report.preview = [
        {"event_id": row["event_id"], "email": mask_email(row["email"]), "occurred_at": str(row["occurred_at"])}
        for row in good[:5]
    ]
    return report
