"""Find new event files in the landing folder with a small cursor (no Dagster imports).

The cursor is ``{"watermark_ns": int, "recent": [names]}``: the highest inode change time (``st_ctime_ns``) seen,
plus the names of files whose change time falls within ``GRACE_NS`` of it. ``st_ctime_ns`` is set when a file
arrives or is renamed into place and cannot be back-dated like the mtime, so a file landed with an old mtime is
still new. A file whose change time is at or after ``watermark - GRACE`` and is not in ``recent`` is new; the grace
window covers files that land while a tick is scanning (their ctime may be just below the new watermark).
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


@dataclass(frozen=True)
class LandedFile:
    """One event file found in the landing folder."""

    kind: str
    path: str
    name: str
    ctime_ns: int
    #: Why the entry is not read (a symlink, a directory, a FIFO...); None for a regular file.
    refusal: str | None = None

    @property
    def cursor_name(self) -> str:
        return f"{self.kind}/{self.name}"


def refusal_reason(mode: int, name: str = "") -> str | None:
    """Why a landing-folder entry with ``lstat`` mode ``mode`` must not be opened; None for a regular file."""
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
    """``*.jsonl`` (and ``*.jsonl.gz``, refused with a reason) not starting with ``.`` (a file being landed)."""
    return name.endswith((FILE_SUFFIX, *REFUSED_SUFFIXES)) and not name.startswith(".")


def scan(root: str | Path, kinds: tuple[str, ...] = EVENT_KINDS) -> list[LandedFile]:
    """Every ``<root>/<kind>/*.jsonl`` entry (one ``os.scandir`` per kind; missing folders are empty).

    Entries are never followed or opened here: each is ``lstat``-ed, and one that is not a regular file (a
    symlink, a directory, a FIFO, a device) comes back with its ``refusal``, so ingestion can record it.
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
                found.append(LandedFile(kind, entry.path, entry.name, info.st_ctime_ns, refusal))
    return found


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


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a regular file's content (raises RefusedFile for anything else, never opening it)."""
    fd, _ = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        return sha256_of(handle)


def refused_version(ctime_ns: int) -> str:
    """The ledger's stand-in for the content hash of an entry that is never read (changes when the entry does)."""
    return f"refused:{ctime_ns}"


def file_run_key(path: str | Path) -> str:
    """``<kind>/<name>:<sha256 of the content>`` (``:refused:<ctime>`` for an entry that is not read): unique to
    the file's content, stable across ticks."""
    path = Path(path)
    try:
        version = file_sha256(path)
    except RefusedFile as refused:
        version = refused_version(refused.ctime_ns)
    except PermissionError:  # unreadable: the run records why; a chmod changes the ctime, so the key
        version = f"unreadable:{os.lstat(path).st_ctime_ns}"
    return f"{path.parent.name}/{path.name}:{version}"
