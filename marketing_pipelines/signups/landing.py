"""Find new event files in the landing folder with a small cursor (no Dagster imports).

The cursor is ``{"watermark_ns": int, "recent": [names]}``: the highest inode change time (``st_ctime_ns``) seen,
plus the names of files whose change time falls within ``GRACE_NS`` of it. ``st_ctime_ns`` is set when a file
arrives or is renamed into place and cannot be back-dated like the mtime, so a file landed with an old mtime is
still new. A file whose change time is at or after ``watermark - GRACE`` and is not in ``recent`` is new; the grace
window covers files that land while a tick is scanning (their ctime may be just below the new watermark).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENT_KINDS = ("trial_signups", "free_registrations")
GRACE_NS = 120 * 1_000_000_000
FILE_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class LandedFile:
    """One event file found in the landing folder."""

    kind: str
    path: str
    name: str
    ctime_ns: int

    @property
    def cursor_name(self) -> str:
        return f"{self.kind}/{self.name}"


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


def scan(root: str | Path, kinds: tuple[str, ...] = EVENT_KINDS) -> list[LandedFile]:
    """Every ``<root>/<kind>/*.jsonl`` file (one ``os.scandir`` per kind; missing folders are empty)."""
    found = []
    for kind in kinds:
        try:
            entries = os.scandir(Path(root) / kind)
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                if entry.name.endswith(FILE_SUFFIX) and not entry.name.startswith("."):
                    try:
                        if not entry.is_file():
                            continue
                        ctime_ns = entry.stat().st_ctime_ns
                    except FileNotFoundError:
                        continue
                    found.append(LandedFile(kind, entry.path, entry.name, ctime_ns))
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


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_run_key(path: str | Path) -> str:
    """``<kind>/<name>:<sha256 of the content>``: unique to the file's content, stable across ticks."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}:{file_sha256(path)}"
