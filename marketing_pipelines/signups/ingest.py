"""Load landed event files: good lines appended once per `event_id`, bad lines to `ops.quarantine`, and each
file version (path + SHA-256) recorded in `ops.ingested_files`.

No file content can make `ingest_file` raise: an entry that is not a regular file is refused unread, every line
is loaded or quarantined with a reason, and anything unexpected fails that file only (recorded, retried by the
next catch-up). The one exception is `IncompleteFile`: a last line still being written, within the wait.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from marketing_pipelines.pii import mask_email
from marketing_pipelines.signups.landing import (
    NAME_NOT_UTF8,
    LandedFile,
    RefusedFile,
    entry_shown_as,
    is_utf8_name,
    open_regular,
    refused_version,
    scan,
    sha256_of,
    shown,
)
from marketing_pipelines.signups.tables import (
    EVENT_TABLES,
    INGESTED_FILES,
    INGESTED_FILES_COLUMNS,
    QUARANTINE,
    QUARANTINE_COLUMNS,
    RAW_SCHEMA,
    create_tables_sql,
    event_column_types,
)
from marketing_pipelines.signups.validation import MAX_LINE_BYTES, safe_text, validate_line
from marketing_pipelines.warehouse import Warehouse

logger = logging.getLogger(__name__)

#: Default wait for a last line without a newline that is not complete JSON (env SIGNUPS_INCOMPLETE_LINE_SECONDS).
INCOMPLETE_LINE_SECONDS = 120
#: Quarantined raw text is cut to this many characters (the reason says how long the line was).
MAX_RAW_TEXT_CHARS = 65_536
_READ_LIMIT = MAX_LINE_BYTES + 2  # a line of MAX_LINE_BYTES plus "\r\n"
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
#: Byte order marks of the encodings that are not UTF-8 (UTF-32 first: its LE mark starts like UTF-16's).
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 text (byte order mark FF FE 00 00)"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (byte order mark 00 00 FE FF)"),
    (b"\xff\xfe", "UTF-16 text (byte order mark FF FE)"),
    (b"\xfe\xff", "UTF-16 text (byte order mark FE FF)"),
)
#: A file whose first ``_SNIFF_BYTES`` are more than this share NUL bytes is UTF-16/32 without a mark (or binary).
_NUL_SHARE = 0.2
_SNIFF_BYTES = 64 * 1024
#: Ledger outcomes that mean "this version is handled": the catch-up skips it. `failed` versions are retried.
DONE_OUTCOMES = ("loaded", "duplicate", "refused")
_PARSE_FAILURES = ("not JSON", "not UTF-8")
#: The catch-up writes this many files (or lines) per transaction.
BATCH_FILES = 250
BATCH_LINES = 200_000


class IncompleteFile(Exception):
    """The file's last line has no newline and is not valid JSON yet, and the file changed within the wait."""


@dataclass
class IngestReport:
    file: str
    table: str
    file_sha256: str = ""
    outcome: str = "loaded"
    reason: str | None = None
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
            "outcome": self.outcome,
            "reason": self.reason,
            "already_ingested": self.already_ingested,
            "lines_read": self.lines_read,
            "loaded": self.loaded,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
        }


@dataclass
class Ledger:
    """What `ops.ingested_files` says is handled: (path, version) pairs, and per kind the path of each content."""

    done: set[tuple[str, str]] = field(default_factory=set)
    content: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def load(cls, warehouse: Warehouse, sha256: str | None = None) -> Ledger:
        """The ledger (only rows of content ``sha256``, when given: what one file needs)."""
        outcomes = ", ".join(f"'{outcome}'" for outcome in DONE_OUTCOMES)
        sql = f"select file, file_sha256, kind, coalesce(outcome, 'loaded') from {INGESTED_FILES}"
        sql += f" where coalesce(outcome, 'loaded') in ({outcomes})"
        if sha256 is not None:
            sql += f" and file_sha256 = '{int(sha256, 16):064x}'"  # a hex digest: never text to escape
        ledger = cls()
        for file, version, kind, outcome in warehouse.query(sql):
            ledger.add(file, version, kind, outcome)
        return ledger

    def add(self, file: str, version: str, kind: str, outcome: str) -> None:
        self.done.add((file, version))
        if outcome == "loaded":
            self.content.setdefault((kind, version), file)


def ensure_tables(warehouse: Warehouse) -> None:
    """Create the raw event tables, the quarantine and the ledger (idempotent)."""
    warehouse.execute(create_tables_sql())


def kind_of(path: str | Path) -> str | None:
    """The event kind of a landed file: its folder name (`trial_signups` or `free_registrations`), else None."""
    kind = Path(path).parent.name
    return kind if kind in EVENT_TABLES else None


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes, int, bool]]:
    """(line number, bytes without the line end, size in bytes when longer than the limit else 0, ends in "\\n").

    Reads at most ``_READ_LIMIT`` bytes a line into memory; the rest of a longer line is skipped and counted.
    """
    number = 0
    while chunk := handle.readline(_READ_LIMIT):
        number += 1
        if number == 1:
            chunk = chunk.removeprefix(_BOM)
        complete = chunk.endswith(b"\n")
        if not complete and len(chunk) >= _READ_LIMIT:
            size = len(chunk)
            while more := handle.readline(1 << 20):
                size += len(more)
                if more.endswith(b"\n"):
                    complete = True
                    break
            yield number, chunk[:MAX_RAW_TEXT_CHARS], size, complete
            continue
        yield number, chunk.removesuffix(b"\n").removesuffix(b"\r"), 0, complete


def _quarantine_row(path: str, version: str, number: int, raw_text: str | None, reason: str, now: dt.datetime) -> dict:
    if raw_text is not None and len(raw_text) > MAX_RAW_TEXT_CHARS:
        raw_text = raw_text[:MAX_RAW_TEXT_CHARS] + "…"
    return {
        "file": path,
        "file_sha256": version,
        "line_number": number,
        "raw_text": raw_text,
        "reason": safe_text(reason),
        "quarantined_at": now,
    }


@dataclass
class ParsedFile:
    """One file read and validated, not yet written: its report, good rows, quarantine rows and ledger row."""

    report: IngestReport
    kind: str
    good: list[dict[str, Any]] = field(default_factory=list)
    bad: list[dict[str, Any]] = field(default_factory=list)
    record: bool = True  # False: nothing to write (already handled, vanished)

    def ledger_row(self, now: dt.datetime) -> dict[str, Any]:
        report = self.report
        return {
            "file": report.file,
            "file_sha256": report.file_sha256,
            "kind": self.kind,
            "lines_read": report.lines_read,
            "loaded": 0,  # counted by the insert itself (see `commit`)
            "duplicates": 0,
            "quarantined": len(self.bad),
            "ingested_at": now,
            "outcome": report.outcome,
            "reason": None if report.reason is None else safe_text(report.reason),
        }


def _file_outcome(parsed: ParsedFile, outcome: str, reason: str, *, quarantine: bool, now: dt.datetime) -> ParsedFile:
    """A file handled as a whole (refused, duplicate, failed): a ledger row and, unless a duplicate, one quarantine
    row (line 0, no text) with the reason, so `ops.quarantine` lists it next to the bad lines."""
    report = parsed.report
    report.outcome, report.reason = outcome, reason
    report.lines_read = report.loaded = report.duplicates = 0
    report.reasons, report.preview, parsed.good = {}, [], []
    parsed.bad = []
    if quarantine:
        parsed.bad = [_quarantine_row(report.file, report.file_sha256, 0, None, f"file {outcome}: {reason}", now)]
        report.reasons = {f"file {outcome}": 1}
    report.quarantined = len(parsed.bad)
    return parsed


def parse_file(
    path: str | Path,
    *,
    ledger: Ledger,
    now: dt.datetime,
    today: dt.date | None = None,
    landing_root: str | Path | None = None,
    incomplete_line_seconds: float = INCOMPLETE_LINE_SECONDS,
    give_up_waiting: bool = False,
) -> ParsedFile:
    """Read and validate one landed file (no writes); ``ledger`` is updated as if it were committed.

    Never raises for file content; raises IncompleteFile for a last line still being written within the wait.
    """
    given = str(path)
    path = Path(shown(given))  # a name that is not UTF-8 is only ever recorded, logged or shown escaped
    kind = kind_of(path) or "unknown"
    report = IngestReport(file=str(path), table=f"{RAW_SCHEMA}.{EVENT_TABLES.get(kind, '?')}")
    parsed = ParsedFile(report, kind)
    try:
        if kind not in EVENT_TABLES or (
            landing_root is not None and os.path.realpath(path.parent) != os.path.realpath(Path(landing_root) / kind)
        ):
            root = shown(str(landing_root or "<LANDING_DIR>"))
            raise RefusedFile(f"not directly in {root}/{{{','.join(EVENT_TABLES)}}}/")
        if not is_utf8_name(given):
            raise RefusedFile(NAME_NOT_UTF8, _ctime_ns(Path(given)))
        if not os.path.lexists(path) and (hidden := entry_shown_as(path)) is not None:
            raise RefusedFile(NAME_NOT_UTF8, hidden.ctime_ns)  # the escaped name of a file that is not UTF-8
        fd, info = open_regular(path)
    except RefusedFile as refused:
        report.file_sha256 = refused_version(refused.ctime_ns)
        if (report.file, report.file_sha256) in ledger.done:
            report.already_ingested, parsed.record = True, False
            return parsed
        ledger.add(report.file, report.file_sha256, kind, "refused")
        return _file_outcome(parsed, "refused", refused.reason, quarantine=True, now=now)
    except FileNotFoundError:
        report.outcome, report.reason = "vanished", "the file was removed before it could be read"
        parsed.record = False  # nothing to record: it is gone (a later landing is seen by the sensor)
        return parsed
    except OSError as error:
        report.file_sha256 = f"unreadable:{_ctime_ns(path)}"
        return _file_outcome(
            parsed, "failed", f"could not be opened: {error.strerror or error}", quarantine=True, now=now
        )
    with os.fdopen(fd, "rb") as handle:
        try:
            _parse_open_file(handle, info, parsed, ledger, now, today, incomplete_line_seconds, give_up_waiting)
        except IncompleteFile:
            raise
        except Exception as error:  # anything unexpected fails this file only, with the reason recorded
            logger.exception("reading %s failed", path)
            report.file_sha256 = report.file_sha256 or f"unreadable:{info.st_ctime_ns}"
            reason = f"could not be read ({type(error).__name__}: {error}); retried by the next catch-up"
            return _file_outcome(parsed, "failed", reason[:500], quarantine=True, now=now)
    return parsed


def _parse_open_file(
    handle: IO[bytes],
    info: os.stat_result,
    parsed: ParsedFile,
    ledger: Ledger,
    now: dt.datetime,
    today: dt.date | None,
    incomplete_line_seconds: float,
    give_up_waiting: bool,
) -> None:
    report, kind = parsed.report, parsed.kind
    report.file_sha256 = sha256_of(handle)
    if (report.file, report.file_sha256) in ledger.done:
        report.already_ingested, parsed.record = True, False
        return
    first = ledger.content.get((kind, report.file_sha256))
    if info.st_size > 0 and first not in (None, report.file):
        _file_outcome(
            parsed, "duplicate", f"same content as {first}, already loaded: not loaded again", quarantine=False, now=now
        )
        ledger.add(report.file, report.file_sha256, kind, "duplicate")
        return
    handle.seek(0)
    if reason := _not_utf8_lines(handle.read(_SNIFF_BYTES)):
        _file_outcome(parsed, "refused", reason, quarantine=True, now=now)
        ledger.add(report.file, report.file_sha256, kind, "refused")
        return
    handle.seek(0)
    changed_seconds_ago = _age(info)
    pretty_printed = None
    for number, raw, oversize, complete in _lines(handle):
        report.lines_read += 1
        text = _decode(raw)
        if pretty_printed is None and text is not None and text.strip():
            pretty_printed = text.strip() in ("[", "{")
        if oversize:
            result: dict[str, Any] | str = f"line longer than {MAX_LINE_BYTES} bytes ({oversize} bytes)"
        elif text is None:
            result = "not UTF-8 text (land files encoded as UTF-8)"
        else:
            try:
                result = validate_line(text, today=today)
            except Exception as error:  # a validator bug must not lose the file: quarantine the line
                result = f"could not be validated ({type(error).__name__})"
        if isinstance(result, str) and not complete and result.startswith(_PARSE_FAILURES):
            if changed_seconds_ago < incomplete_line_seconds and not give_up_waiting:
                raise IncompleteFile(f"{report.file}: last line has no newline and is not complete JSON yet")
            result = (
                "incomplete line: the file ends in the middle of this line (no newline, not complete JSON) and "
                f"has not changed for {int(changed_seconds_ago)} s"
            )
        elif isinstance(result, str) and pretty_printed and result.startswith(("not JSON", "not a JSON object")):
            result = f"not JSON Lines: the file looks pretty-printed; land one JSON object per line ({result})"
        if isinstance(result, str):
            raw_text = safe_text(text if text is not None else raw.decode("utf-8", "backslashreplace"))
            parsed.bad.append(_quarantine_row(report.file, report.file_sha256, number, raw_text, result, now))
            reason = result.split(":")[0]
            report.reasons[reason] = report.reasons.get(reason, 0) + 1
        else:
            parsed.good.append({**result, "source_file": report.file, "line_number": number, "loaded_at": now})
    if report.lines_read == 0:
        report.reason = "empty file"
    report.quarantined = len(parsed.bad)
    ledger.add(report.file, report.file_sha256, kind, "loaded")


def commit(warehouse: Warehouse, files: list[ParsedFile], now: dt.datetime) -> None:
    """Write parsed files of one kind in one transaction: new events (once per `event_id`: a line whose id is
    loaded, or repeated in the batch, counts as a duplicate), quarantine rows and ledger rows, whose `loaded`
    is counted by the insert itself; then fill in each report's loaded / duplicates / preview."""
    import pandas as pd

    files = [parsed for parsed in files if parsed.record]
    if not files:
        return
    table = files[0].report.table if files[0].kind in EVENT_TABLES else f"{RAW_SCHEMA}.{EVENT_TABLES['trial_signups']}"
    event_columns = event_column_types()
    events = pd.DataFrame([row for parsed in files for row in parsed.good], columns=list(event_columns))
    events.insert(0, "_order", range(len(events)))
    quarantine = pd.DataFrame([row for parsed in files for row in parsed.bad], columns=list(QUARANTINE_COLUMNS))
    ledger = pd.DataFrame([parsed.ledger_row(now) for parsed in files], columns=list(INGESTED_FILES_COLUMNS))
    ledger["good"] = [len(parsed.good) for parsed in files]
    cast_columns = ", ".join(f"cast({name} as {sql_type}) as {name}" for name, sql_type in event_columns.items())
    counted = f"(select count(*) from {table} as t where t.source_file = l.file and t.loaded_at = l.ingested_at)"
    other_columns = [name for name in INGESTED_FILES_COLUMNS if name not in ("loaded", "duplicates")]
    warehouse.execute(
        [
            f"""insert into {table} ({", ".join(event_columns)})
            select {cast_columns} from _events as incoming
            where not exists (select 1 from {table} as loaded where loaded.event_id = incoming.event_id)
            qualify row_number() over (partition by incoming.event_id order by incoming._order) = 1""",
            _insert_quarantine_sql(),
            f"""insert into {INGESTED_FILES} ({", ".join(other_columns)}, loaded, duplicates)
            select {", ".join(f"l.{name}" for name in other_columns)}, {counted}, l.good - {counted}
            from _ledger as l""",
        ],
        frames={"_events": events, "_quarantine": quarantine, "_ledger": ledger},
    )
    loaded = dict(
        warehouse.query(
            f"select source_file, count(*) from {table} where loaded_at = cast('{now.isoformat(sep=' ')}' as timestamp)"
            " group by source_file"
        )
    )
    for parsed in files:
        report = parsed.report
        report.loaded = int(loaded.get(report.file, 0))
        report.duplicates = len(parsed.good) - report.loaded
        report.preview = [
            {"event_id": row["event_id"], "email": mask_email(row["email"]), "occurred_at": str(row["occurred_at"])}
            for row in parsed.good[:5]
        ]


def _insert_quarantine_sql() -> str:
    columns = ", ".join(QUARANTINE_COLUMNS)
    return f"""insert into {QUARANTINE} ({columns})
        select {columns} from _quarantine as incoming
        where not exists (
            select 1 from {QUARANTINE} as q
            where q.file = incoming.file and q.file_sha256 = incoming.file_sha256
            and q.line_number = incoming.line_number
        )"""


def ingest_files(
    warehouse: Warehouse,
    paths: Iterable[str | Path],
    *,
    ledger: Ledger | None = None,
    batch_files: int = BATCH_FILES,
    batch_lines: int = BATCH_LINES,
    waiting: list[str] | None = None,
    **options: Any,
) -> Iterator[IngestReport]:
    """Ingest files (all of one kind) in batches of one transaction each; yields a report per file.

    ``ledger``: what is already handled (None: looked up per file, as the sensor's one-file runs do). ``waiting``:
    when given, a file whose last line is still being written is appended to it and skipped, instead of raising
    IncompleteFile. A batch the warehouse refuses is written again file by file, so only the file at fault fails
    (recorded as failed). ``options`` go to `parse_file`.
    """
    batch: list[ParsedFile] = []
    lines = 0
    now = _now()
    for path in paths:
        file_ledger = ledger if ledger is not None else Ledger.load(warehouse, _sha_or_none(path))
        try:
            parsed = parse_file(path, ledger=file_ledger, now=now, **options)
        except IncompleteFile as error:
            if waiting is None:
                yield from _commit_batch(warehouse, batch, now)
                raise
            logger.warning("%s", error)
            waiting.append(shown(str(path)))
            continue
        batch.append(parsed)
        lines += parsed.report.lines_read
        if len(batch) >= batch_files or lines >= batch_lines or ledger is None:
            yield from _commit_batch(warehouse, batch, now)
            batch, lines, now = [], 0, _now()
    yield from _commit_batch(warehouse, batch, now)


def _commit_batch(warehouse: Warehouse, batch: list[ParsedFile], now: dt.datetime) -> Iterator[IngestReport]:
    try:
        commit(warehouse, batch, now)
    except Exception:
        if len(batch) <= 1:
            if not batch or not batch[0].record:
                raise
            parsed = batch[0]
            logger.exception("writing %s failed", parsed.report.file)
            reason = "could not be written to the warehouse; retried by the next catch-up"
            commit(warehouse, [_file_outcome(parsed, "failed", reason, quarantine=True, now=now)], now)
        else:
            for parsed in batch:  # only the file at fault fails
                yield from _commit_batch(warehouse, [parsed], now)
            return
    yield from (parsed.report for parsed in batch)


def ingest_file(warehouse: Warehouse, path: str | Path, **options: Any) -> IngestReport:
    """Ingest one file in one transaction (see `ingest_files`); raises IncompleteFile for a half-written last
    line within the wait. Tables must exist (`ensure_tables`)."""
    (report,) = ingest_files(warehouse, [path], **options)
    return report


def _sha_or_none(path: str | Path) -> str | None:
    """The file's SHA-256 to narrow the ledger lookup; None (whole ledger) when it cannot be read as a file."""
    try:
        fd, _ = open_regular(path)
    except (RefusedFile, OSError):
        return None
    with os.fdopen(fd, "rb") as handle:
        return sha256_of(handle)


def _not_utf8_lines(head: bytes) -> str | None:
    """Why a file starting with ``head`` is refused as a whole (gzip, UTF-16/32 text); None to read its lines."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip-compressed content: compressed files are not read, land plain JSON Lines (.jsonl)"
    for mark, what in _OTHER_BOMS:
        if head.startswith(mark):
            return f"{what}: only UTF-8 is read, land the file encoded as UTF-8"
    nuls = head.count(0)
    if head and nuls / len(head) > _NUL_SHARE:
        return (
            f"{nuls} of the first {len(head)} bytes are NUL: UTF-16/UTF-32 text without a byte order mark, or "
            "binary; only UTF-8 text is read, land the file encoded as UTF-8"
        )
    return None


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _age(info: os.stat_result) -> float:
    """Seconds since the file last changed (content or arrival: the later of mtime and ctime)."""
    return dt.datetime.now(dt.UTC).timestamp() - max(info.st_mtime, info.st_ctime)


def _ctime_ns(path: Path) -> int:
    try:
        return os.lstat(path).st_ctime_ns
    except OSError:
        return 0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def pending_files(warehouse: Warehouse, landing_dir: str | Path, kind: str, ledger: Ledger) -> Iterator[str]:
    """Landed ``kind`` entries whose current version is not handled in ``ledger`` yet (oldest change first).

    Refused entries (symlinks, directories, FIFOs...) are versioned by their change time and never opened.
    """
    for landed in sorted(scan(landing_dir, (kind,)), key=lambda f: (f.ctime_ns, f.name)):
        try:
            version = landed_version(landed)
        except FileNotFoundError:
            continue
        except OSError:
            yield landed.path  # unreadable: ingest_file records why
            continue
        if (landed.path, version) not in ledger.done:
            yield landed.path


def landed_version(landed: LandedFile) -> str:
    """The version `ops.ingested_files` records for a landed entry: the SHA-256 of a regular file's content, or
    ``refused:<change time>`` for an entry that is never opened. Raises OSError (FileNotFoundError: it vanished)."""
    if landed.refusal is not None:
        return refused_version(landed.ctime_ns)
    try:
        fd, _ = open_regular(landed.path)
    except RefusedFile as refused:
        return refused_version(refused.ctime_ns)
    with os.fdopen(fd, "rb") as handle:
        return sha256_of(handle)
