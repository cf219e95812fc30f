"""Find new event files in the landing folder with a small cursor (no Dagster imports).

The cursor is ``{"watermark_ns": int, "recent": [names]}``: the highest inode change time (``st_ctime_ns``) seen,
plus the names of files whose change time falls within ``GRACE_NS`` of it. ``st_ctime_ns`` is set when a file
arrives or is renamed into place and cannot be back-dated like the mtime, so a file landed with an old mtime is
still new. A file whose change time is at or after ``watermark - GRACE`` and is not in ``recent`` is new; the grace
window covers files that land while a tick is scanning (their ctime may be just below the new watermark).

Every entry in a kind folder is returned, except names starting with ``.`` (a file still being landed under a
temporary name, an editor's swap file): those are skipped silently. An entry whose name is not valid UTF-8 is
returned under its name shown with ``\\xNN`` escapes (see ``shown``) and refused: a name that cannot be encoded as
text never reaches the warehouse, a run tag, a log line or metadata.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

EVENT_KINDS = ("trial_signups", "free_registrations")
GRACE_NS = 120 * 1_000_000_000
FILE_SUFFIX = ".jsonl"
#: Compressed files are refused with a reason (never decompressed): land plain JSON Lines.
REFUSED_SUFFIXES = (".jsonl.gz",)
#: Names starting with this are skipped silently (a file being landed under a temporary name, an editor's file).
HIDDEN_PREFIX = "."
#: How much of a file's start and end the sensor's run key hashes (the rest is identified by size and times).
RUN_KEY_EDGE_BYTES = 1 << 20
NAME_NOT_UTF8 = (
    "file name not UTF-8: the name holds bytes that are not UTF-8 text (shown as \\xNN); the file is not read, "
    "land it under a UTF-8 name"
)
NOT_JSONL = (
    f"not a {FILE_SUFFIX} file: only *{FILE_SUFFIX} files are read (the suffix is case-sensitive; "
    f"land JSON Lines as *{FILE_SUFFIX})"
)


def shown(text: str) -> str:
    """``text`` (a path or name) as storable text: bytes that are not UTF-8, which Python carries as surrogate
    escapes, shown as ``\\xNN``; equal to ``text`` for every name that is valid UTF-8."""
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate that is not a byte escape (e.g. from JSON run config)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def is_utf8_name(text: str) -> bool:
    return shown(text) == text


@dataclass(frozen=True)
class LandedFile:
    """One event file found in the landing folder."""

    kind: str
    #: The path and name as text (``shown``): the real ones unless the name is not UTF-8 (then it is refused).
    path: str
    name: str
    ctime_ns: int
    #: Why the entry is not read (a symlink, a directory, a FIFO...); None for a regular file.
    refusal: str | None = None

    @property
    def cursor_name(self) -> str:
        return f"{self.kind}/{self.name}"


def refusal_reason(mode: int, name: str = "") -> str | None:
    """Why a landing-folder entry with ``lstat`` mode ``mode`` and name ``name`` must not be opened; None for a
    regular ``*.jsonl`` file."""
    if not is_utf8_name(name):
        return NAME_NOT_UTF8
    if stat.S_ISLNK(mode):
        return "a symbolic link: links are never followed, land the file itself"
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a file"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if name.endswith(REFUSED_SUFFIXES):
        return "gzip-compressed (.jsonl.gz): compressed files are not read, land plain JSON Lines (.jsonl)"
    if name and not name.endswith(FILE_SUFFIX):
        return NOT_JSONL
    return None


def empty_cursor() -> dict[str, Any]:
    return {"watermark_ns": 0, "recent": []}


def parse_cursor(text: str | None) -> dict[str, Any]:
    """The cursor a sensor stored (None or garbage: start from scratch)."""
    if not text:
        return empty_cursor()
    try:
        value = json.loads(text)
        return {"watermark_ns": int(value["watermark_ns"]), "recent": list(value.get("recent", []))}
    except (ValueError, KeyError, TypeError):
        return empty_cursor()


def is_landed_name(name: str) -> bool:
    """Every name but those starting with ``.`` (a file being landed, an editor's file: skipped silently)."""
    return not name.startswith(HIDDEN_PREFIX)


def scan(root: str | Path, kinds: tuple[str, ...] = EVENT_KINDS) -> list[LandedFile]:
    """Every ``<root>/<kind>/*`` entry but hidden ones (one ``os.scandir`` per kind; missing folders are empty).

    Entries are never followed or opened here: each is ``lstat``-ed, and one that is not a regular ``*.jsonl``
    file with a UTF-8 name (a symlink, a directory, a FIFO, a device, ``x.json``, a name that is not UTF-8) comes
    back with its ``refusal``, so ingestion can record it.
    """
    found = []
    for kind in kinds:
        try:
            entries = os.scandir(Path(root) / kind)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                if not is_landed_name(entry.name):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                refusal = refusal_reason(info.st_mode, entry.name)
                found.append(LandedFile(kind, shown(entry.path), shown(entry.name), info.st_ctime_ns, refusal))
    return found


def entry_shown_as(path: str | Path) -> LandedFile | None:
    """The entry whose name is not UTF-8 and is shown as ``path`` (see ``shown``), lstat-ed, never opened; None
    when there is none. How a run finds the file a refused, escaped name in its config stands for."""
    folder = Path(path).parent
    try:
        entries = os.scandir(folder)
    except OSError:
        return None
    with entries:
        for entry in entries:
            if is_utf8_name(entry.name) or shown(entry.path) != str(path):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                return None
            return LandedFile(folder.name, str(path), shown(entry.name), info.st_ctime_ns, NAME_NOT_UTF8)
    return None


def new_files(
    root: str | Path, cursor: dict[str, Any], now_ns: int, *, grace_ns: int = GRACE_NS
) -> tuple[list[LandedFile], dict[str, Any]]:
    """Files not yet returned under ``cursor`` (oldest first), and the cursor to store after requesting them.

    ``now_ns`` bounds the watermark, so a file with a ctime in the future (clock skew) is not taken as the new
    high point that would hide files landing before it.
    """
    watermark = int(cursor.get("watermark_ns", 0))
    recent = set(cursor.get("recent", []))
    floor = watermark - grace_ns
    files = scan(root)
    fresh = sorted(
        (f for f in files if f.ctime_ns >= floor and f.cursor_name not in recent),
        key=lambda f: (f.ctime_ns, f.cursor_name),
    )
    new_watermark = max([watermark, *(min(f.ctime_ns, now_ns) for f in fresh)])
    new_floor = new_watermark - grace_ns
    seen = recent | {f.cursor_name for f in fresh}
    kept = sorted(f.cursor_name for f in files if f.ctime_ns >= new_floor and f.cursor_name in seen)
    return fresh, {"watermark_ns": new_watermark, "recent": kept}


class RefusedFile(Exception):
    """A landing path that is not a regular file (or is compressed): never read; the message says why."""

    def __init__(self, reason: str, ctime_ns: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ctime_ns = ctime_ns


def open_regular(path: str | Path) -> tuple[int, os.stat_result]:
    """A read-only descriptor of ``path`` and its ``fstat``, only if it is a regular file (not a symlink).

    ``lstat`` first, so a FIFO or device is never opened; then ``O_NOFOLLOW | O_NONBLOCK`` and ``fstat`` on the
    descriptor, so an entry swapped for a link or a FIFO in between is refused too. Raises RefusedFile.
    """
    info = os.lstat(path)
    refusal = refusal_reason(info.st_mode, Path(path).name)
    if refusal is not None:
        raise RefusedFile(refusal, info.st_ctime_ns)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:  # a symlink appeared in between
            raise RefusedFile(refusal_reason(stat.S_IFLNK), info.st_ctime_ns) from None
        raise
    opened = os.fstat(fd)
    refusal = refusal_reason(opened.st_mode, Path(path).name)
    if refusal is not None:
        os.close(fd)
        raise RefusedFile(refusal, opened.st_ctime_ns)
    return fd, opened


def sha256_of(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def refused_version(ctime_ns: int) -> str:
    """The ledger's stand-in for the content hash of an entry that is never read (changes when the entry does)."""
    return f"refused:{ctime_ns}"


def file_fingerprint(path: str | Path) -> str:
    """A cheap id of a regular file's version, read in constant time whatever its size: device, inode, size,
    mtime and ctime (ns) and a SHA-256 of at most the first and last ``RUN_KEY_EDGE_BYTES``. Any write changes the
    size or mtime, a rename into place or a ``touch`` the ctime. Raises RefusedFile for anything but a file."""
    fd, info = open_regular(path)
    try:
        digest = hashlib.sha256(os.pread(fd, RUN_KEY_EDGE_BYTES, 0))
        if info.st_size > RUN_KEY_EDGE_BYTES:
            digest.update(os.pread(fd, RUN_KEY_EDGE_BYTES, max(RUN_KEY_EDGE_BYTES, info.st_size - RUN_KEY_EDGE_BYTES)))
    finally:
        os.close(fd)
    times = f"{info.st_mtime_ns}-{info.st_ctime_ns}"
    return f"{info.st_dev}-{info.st_ino}-{info.st_size}-{times}-{digest.hexdigest()[:32]}"


def file_run_key(path: str | Path) -> str:
    """``<kind>/<name>:<file_fingerprint>`` (``:refused:<ctime>`` for an entry that is not read): unique to the
    file's version, stable across ticks, and cheap for a file of any size (the content is hashed by ingestion,
    which dedupes by it; a run for a version already loaded loads nothing)."""
    path = Path(path)
    if not is_utf8_name(path.name):
        return f"{path.parent.name}/{shown(path.name)}:{refused_version(os.lstat(path).st_ctime_ns)}"
    try:
        version = file_fingerprint(path)
    except RefusedFile as refused:
        version = refused_version(refused.ctime_ns)
    except PermissionError:  # unreadable: the run records why; a chmod changes the ctime, so the key
        version = f"unreadable:{os.lstat(path).st_ctime_ns}"
    return f"{path.parent.name}/{path.name}:{version}"
