"""Smoke test of `make bench`: the whole measurement chain runs at a tiny scale and writes every figure.

Figures are not judged here (timings on a shared CI machine mean nothing); `make bench` reports them with goals.
"""

from __future__ import annotations

import json

import pytest

from devtools import bench

pytestmark = pytest.mark.slow


def test_quick_bench_with_chaos_writes_every_figure(tmp_path):
    out = tmp_path / "results.json"
    bench.main(
        ["--quick", "--users", "1500", "--with-chaos", "--chaos-users", "3000", "--repeats", "1",
         "--out", str(out), "--workdir", str(tmp_path)]
    )  # fmt: skip
    results = json.loads(out.read_text())
    assert set(results["verdicts"]) == set(bench.GOALS)
    assert results["users"] == 1500
    # correctness figures are exact whatever the machine
    assert results["rerun_unchanged_requests"] == 0
    assert results["rerun_one_percent_sent"] == results["rerun_one_percent_changed"] > 0
    assert results["push_users_accepted"] == results["audience_users"] > 0
    assert results["chaos_records_lost"] == 0 and results["chaos_events_duplicated"] == 0
    assert results["chaos_rejection_backlog"] == 0
    assert {row["destination"] for row in results["syncs"]} >= {"iterable_users", "iterable_trial_events"}
    iterable = [row for row in results["syncs"] if row["destination"].startswith("iterable")]
    assert all(row["mode"] == "live" and row["rejected"] == 0 for row in iterable)
    assert results["changelog_users"] == 1500 and results["changelog_mb_per_1m_rows"] > 0
    assert results["sensor_seen_files"] == 10_000 and results["sensor_tick_seconds"] > 0
    assert "| orchestration_overhead_ratio |" in out.with_suffix(".md").read_text()
