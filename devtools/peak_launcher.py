"""Run a command and write where its memory peaked: ``python devtools/peak_launcher.py OUT.json CMD ...``.

A child started by a large process inherits that process's memory high-water mark through fork and exec (Linux
keeps ``maxrss`` across exec), so the bench (which holds the emulator's received bodies) starts every measured
command from this small script. Besides the kernel's figure (``maxrss_kb``: the largest single process among the
command and its descendants), it samples every descendant's resident memory from ``/proc`` a few times a second and
writes each process's peak and the wall-clock time of it, so the bench can say which process and which step held
the memory. Imports only the standard library: its own footprint stays a few MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

SAMPLE_SECONDS = 0.2
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        parent = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(parent, []).append(int(entry))
    return tree


def _descendants(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()[:300]
    except OSError:
        return ""


def sample(root: int, peaks: dict[int, dict[str, object]], done: threading.Event) -> None:
    """Until `done`: every descendant of `root`'s peak resident memory, its time and its command line."""
    while not done.wait(SAMPLE_SECONDS):
        for pid in _descendants(root):
            rss = _rss_kb(pid)
            peak = peaks.get(pid)
            if peak is None:
                peaks[pid] = peak = {"pid": pid, "command": _command(pid), "peak_kb": 0, "at": 0.0}
            if rss > int(peak["peak_kb"]):  # type: ignore[call-overload]
                peak.update(peak_kb=rss, at=time.time())


def main(argv: list[str]) -> int:
    out, command = argv[0], argv[1:]
    child = subprocess.Popen(command)
    peaks: dict[int, dict[str, object]] = {}
    done = threading.Event()
    sampler = threading.Thread(target=sample, args=(child.pid, peaks, done), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    done.set()
    sampler.join()
    processes = sorted(peaks.values(), key=lambda p: -int(p["peak_kb"]))  # type: ignore[call-overload]
    with open(out, "w") as handle:
        json.dump({"maxrss_kb": usage.ru_maxrss, "processes": processes[:10]}, handle)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
