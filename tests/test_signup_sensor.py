"""The landing-folder sensor: one run per new file, never twice, never skipping a late or back-dated file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from marketing_pipelines.resources import warehouse_resource_from
from marketing_pipelines.signups.landing import file_run_key, new_files
from tests.support.jobs import signup_sensor_tick

LINE = '{"event_id":"e-1","email":"a@example.com"}\n'


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "landing"
    (root / "trial_signups").mkdir(parents=True)
    (root / "free_registrations").mkdir()
    monkeypatch.setenv("LANDING_DIR", str(root))
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))  # the ledger the sensor reads
    return root


def tick(cursor: str | None) -> dg.SensorResult:
    """One sensor tick, on the warehouse DUCKDB_PATH names."""
    result = signup_sensor_tick(warehouse_resource_from(os.environ), cursor=cursor)
    assert isinstance(result, dg.SensorResult)
    return result


def land(root: Path, kind: str, name: str, text: str = LINE) -> Path:
    """Write under a temporary name, then rename into place (how upstream tools land files atomically)."""
    path = root / kind / name
    temp = path.with_name(f".{name}.tmp")
    temp.write_text(text)
    temp.rename(path)
    return path


def test_new_file_gives_one_run_request_with_the_file_in_tags_and_a_content_key(landing):
    path = land(landing, "trial_signups", "a.jsonl")
    result = tick(None)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.tags["signups/file"] == "trial_signups/a.jsonl"
    assert request.run_key == file_run_key(path)
    assert request.run_config == {
        "ops": {
            "raw__trial_signup_events": {"config": {"files": [str(path)]}},
            "raw__free_registration_events": {"config": {"files": []}},  # not a catch-up of every pending file
        }
    }


def test_a_file_landing_during_the_daily_run_is_tagged_with_the_run_it_waits_for(landing):
    """The daily run holds the `warehouse` pool step by step: the UI shows which run a signup run waits for."""
    from marketing_pipelines.defs.signups.sensors import WAITS_FOR_TAG

    land(landing, "trial_signups", "a.jsonl")
    with dg.DagsterInstance.ephemeral() as instance:
        ran = instance.add_run(dg.DagsterRun(job_name="refresh_marketing_data_job", status=dg.DagsterRunStatus.SUCCESS))
        quiet = signup_sensor_tick(warehouse_resource_from(os.environ), instance=instance)
        assert WAITS_FOR_TAG not in quiet.run_requests[0].tags, "a finished daily run holds nothing"
        started = instance.add_run(
            dg.DagsterRun(job_name="refresh_marketing_data_job", status=dg.DagsterRunStatus.STARTED)
        )
        busy = signup_sensor_tick(warehouse_resource_from(os.environ), instance=instance)
    assert ran.run_id != started.run_id
    assert busy.run_requests[0].tags[WAITS_FOR_TAG] == f"daily run {started.run_id}"
    assert busy.run_requests[0].tags["signups/file"] == "trial_signups/a.jsonl"


def test_same_tick_again_requests_nothing_and_says_why(landing):
    land(landing, "trial_signups", "a.jsonl")
    first = tick(None)
    second = tick(first.cursor)
    assert second.run_requests in (None, [])
    assert second.skip_reason is not None and "No new" in second.skip_reason.skip_message


def test_run_key_is_unique_to_the_content(landing):
    a = land(landing, "trial_signups", "a.jsonl")
    key_a = file_run_key(a)
    a.write_text(LINE + LINE)
    assert file_run_key(a) != key_a


def test_file_landing_late_with_an_old_mtime_is_still_picked_up(landing):
    land(landing, "trial_signups", "new.jsonl")
    first = tick(None)
    old = land(landing, "free_registrations", "old.jsonl")
    past = time.time() - 30 * 86400
    os.utime(old, (past, past))
    second = tick(first.cursor)
    assert [r.tags["signups/file"] for r in second.run_requests] == ["free_registrations/old.jsonl"]
    expected = {
        "raw__trial_signup_events": {"config": {"files": []}},
        "raw__free_registration_events": {"config": {"files": [str(old)]}},
    }
    assert second.run_requests[0].run_config["ops"] == expected


def test_file_landing_during_a_tick_is_not_skipped(landing):
    """A file whose change time is just below the new watermark (landed while the tick scanned) is seen next tick."""
    land(landing, "trial_signups", "b.jsonl")
    a_ctime = (landing / "trial_signups" / "b.jsonl").stat().st_ctime_ns
    cursor = {"watermark_ns": a_ctime + 1_000_000_000, "recent": []}  # a watermark already past b's ctime
    files, new_cursor = new_files(landing, cursor, time.time_ns())
    assert [f.name for f in files] == ["b.jsonl"]
    again, _ = new_files(landing, new_cursor, time.time_ns())
    assert again == []


def test_cursor_forgets_names_outside_the_grace_window(landing):
    land(landing, "trial_signups", "a.jsonl")
    ctime = (landing / "trial_signups" / "a.jsonl").stat().st_ctime_ns
    files, cursor = new_files(landing, {"watermark_ns": 0, "recent": []}, time.time_ns(), grace_ns=0)
    assert len(files) == 1 and cursor == {"watermark_ns": ctime, "recent": ["trial_signups/a.jsonl"]}
    land(landing, "trial_signups", "b.jsonl")
    files, cursor = new_files(landing, cursor, time.time_ns() + 10**9, grace_ns=0)
    assert [f.name for f in files] == ["b.jsonl"]
    assert "trial_signups/a.jsonl" not in cursor["recent"] or cursor["watermark_ns"] == ctime


def test_tick_with_10000_seen_files_is_correct(landing):
    for i in range(10_000):
        (landing / "trial_signups" / f"f{i:05d}.jsonl").write_text(LINE)
    started = time.perf_counter()
    first = tick(None)
    first_seconds = time.perf_counter() - started
    assert len(first.run_requests) == 10_000
    started = time.perf_counter()
    second = tick(first.cursor)
    seen_seconds = time.perf_counter() - started
    assert not second.run_requests
    land(landing, "trial_signups", "late.jsonl")
    started = time.perf_counter()
    third = tick(second.cursor)
    one_new_seconds = time.perf_counter() - started
    assert [r.tags["signups/file"] for r in third.run_requests] == ["trial_signups/late.jsonl"]
    # steady state: the 10,000 files are older than the grace window, so the cursor holds no names
    newest = max(entry.stat().st_ctime_ns for entry in os.scandir(landing / "trial_signups"))
    started = time.perf_counter()
    files, steady_cursor = new_files(landing, {"watermark_ns": newest + 1, "recent": []}, time.time_ns(), grace_ns=0)
    steady_seconds = time.perf_counter() - started
    assert files == [] and steady_cursor["recent"] == []
    print(
        f"\nsteady-state scan of 10,001 old files {steady_seconds:.3f}s, cursor {len(json.dumps(steady_cursor))} bytes"
    )
    print(
        f"10,000 files: first tick (10,000 requests) {first_seconds:.3f}s; "
        f"tick with all seen {seen_seconds:.3f}s; tick with one new {one_new_seconds:.3f}s; "
        f"cursor {len(json.dumps(json.loads(second.cursor)))} bytes"
    )


def catch_up(landing: Path) -> None:
    """The daily job's catch-up: every landed file not in `ops.ingested_files` loaded into the warehouse."""
    from marketing_pipelines.defs.signups.assets import free_registration_events, trial_signup_events

    resources = {"warehouse": warehouse_resource_from(os.environ)}
    assert dg.materialize([trial_signup_events, free_registration_events], resources=resources).success


def test_files_the_daily_job_already_loaded_get_no_run(landing):
    """`make run` loads the landed files; the first tick of `make dev` afterwards requests no run for them, but
    one for a file whose content changed since."""
    land(landing, "trial_signups", "a.jsonl")
    land(landing, "free_registrations", "b.jsonl", '{"event_id":"e-2","email":"b@example.com"}\n')
    land(landing, "trial_signups", "c.jsonl", '{"event_id":"e-3","email":"c@example.com"}\n')
    catch_up(landing)
    first = tick(None)
    assert first.run_requests == []
    assert "3 already in ops.ingested_files" in first.skip_reason.skip_message
    changed = land(landing, "trial_signups", "c.jsonl", '{"event_id":"e-4","email":"d@example.com"}\n')
    second = tick(None)
    assert [r.tags["signups/file"] for r in second.run_requests] == ["trial_signups/c.jsonl"]
    assert second.run_requests[0].run_key == file_run_key(changed)


def test_a_warehouse_locked_by_a_run_leaves_the_cursor_to_decide(landing, capsys):
    """While another process holds the DuckDB file (a run writing), the tick does not wait for it: every new
    file gets its run (ingestion skips what is already loaded) and the log says why."""
    land(landing, "trial_signups", "a.jsonl")
    catch_up(landing)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, os.environ["DUCKDB_PATH"]], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        result = tick(None)
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
    assert [r.tags["signups/file"] for r in result.run_requests] == ["trial_signups/a.jsonl"]
    assert "(a run holds the DuckDB file); new files are requested by the cursor alone" in capsys.readouterr().err
    assert tick(None).run_requests == []  # the lock released: the ledger is read again


#: A process that opens the DuckDB file for writing (as a run does) and keeps it until killed.
HOLD_LOCK = "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(60)"
