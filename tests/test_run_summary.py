"""`make run`'s daily run (`run_daily`): terse progress, the log file, the checks summary and the exit status.

Two real runs of the refresh job on copies of the sample warehouse, on an in-memory Dagster instance: one as
generated (its seeded upstream problems fail WARN checks only), one where a GitLab user's e-mail is not an e-mail,
so the blocking check `audience_payload_valid` fails and holds the Iterable users push.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from marketing_pipelines import run_daily
from marketing_pipelines.sample_data.generator import VIOLATIONS_PER_KIND
from tests.support.warehouses import copy_warehouse

UI = "http://dagster.example:3000"


@dataclass(frozen=True)
class DailyRun:
    """One `run_daily.execute` and its summary: what each printed, the exit status, the log file."""

    progress: str
    summary: str
    status: int
    log_file: Path
    run_id: str
    instance: dg.DagsterInstance


def daily_run(sample: Path, root: Path, *, break_a_blocking_rule: bool) -> Iterator[DailyRun]:
    """The refresh job run by `run_daily` on a copy of the sample warehouse, then its summary."""
    warehouse = copy_warehouse(sample, root / "warehouse.duckdb")
    if break_a_blocking_rule:
        ((user_id,),) = warehouse.query("select user_id from audiences.iterable_user_audience order by 1 limit 1")
        warehouse.execute(f"update raw.gitlab_users set email = 'not an email' where user_id = {user_id}")
    with pytest.MonkeyPatch.context() as patch, dg.DagsterInstance.ephemeral() as instance:
        patch.setenv("DUCKDB_PATH", str(warehouse.path))
        progress, summary = io.StringIO(), io.StringIO()
        log_file = root / "logs" / "run.log"
        result = run_daily.execute(instance, log_file, console=progress)
        descriptions = run_daily.check_descriptions(run_daily.daily_job_definitions())
        status = run_daily.summarize(instance, result.run_id, descriptions, UI, out=summary)
        yield DailyRun(progress.getvalue(), summary.getvalue(), status, log_file, result.run_id, instance)


@pytest.fixture(scope="module")
def clean_run(sample_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DailyRun]:
    yield from daily_run(sample_warehouse, tmp_path_factory.mktemp("clean"), break_a_blocking_rule=False)


@pytest.fixture(scope="module")
def held_run(sample_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DailyRun]:
    yield from daily_run(sample_warehouse, tmp_path_factory.mktemp("held"), break_a_blocking_rule=True)


def test_a_run_without_blocking_failures_exits_0_and_lists_its_warn_failures(clean_run: DailyRun) -> None:
    assert clean_run.status == 0
    assert clean_run.summary.rstrip().endswith(f"Run {clean_run.run_id} succeeded; no blocking check failed.")
    assert "  ERROR passed" in clean_run.summary
    assert "failed   0" in clean_run.summary.split("  WARN")[0]
    # the sample data seeds six CRM records with an Initial Source outside dim_initial_source
    assert (
        f"  FAILED WARN  staging/stg_crm__persons: crm_initial_source_unknown - {VIOLATIONS_PER_KIND} failing records"
    ) in clean_run.summary
    assert "check: GitLab Marketing Operations handbook, Initial Source: only the values of dim_initial_source" in (
        clean_run.summary
    )
    assert f"see {UI}/assets/staging/stg_crm__persons?view=checks" in clean_run.summary
    assert "BLOCKING" not in clean_run.summary


def test_progress_is_one_line_per_asset_step_start_and_finish_and_per_failed_check(clean_run: DailyRun) -> None:
    lines = clean_run.progress.splitlines()
    assert any(line.endswith("start  staging_dbt_models") for line in lines)
    assert any("done   staging_dbt_models  " in line and " checks, 1 failed)" in line for line in lines)
    unknown_source = (
        f"WARN   staging/stg_crm__persons: crm_initial_source_unknown failed ({VIOLATIONS_PER_KIND} records)"
    )
    assert any(line.endswith(unknown_source) for line in lines)
    assert lines[-1].endswith("run succeeded")
    assert not any("DEBUG" in line or "STEP_START" in line or "Running with dbt" in line for line in lines)
    # check-only steps print nothing when they pass: far fewer lines than the run's events
    asset_steps = {line.split("start  ")[1] for line in lines if "  start  " in line}
    failed_checks = [line for line in lines if "  WARN   " in line or "  ERROR  " in line]
    assert len(lines) == 2 * len(asset_steps) + len(failed_checks) + 1


def test_the_full_log_goes_to_the_file_dbt_output_included(clean_run: DailyRun) -> None:
    log = clean_run.log_file.read_text(encoding="utf-8")
    assert " DEBUG   refresh_marketing_data_job - " in log and " - STEP_START - " in log
    assert "Running with dbt=" in log  # what dbt prints goes to the file, not the console
    assert clean_run.run_id in log


def test_a_failed_blocking_check_exits_1_naming_it_and_the_held_push(held_run: DailyRun) -> None:
    assert held_run.status == 1
    summary = held_run.summary
    assert (
        "  FAILED ERROR, blocking  audiences/iterable_user_audience: audience_payload_valid - 1 failing records"
    ) in summary
    assert "    1 audience rows are not valid bulkUpdate users | check: Iterable API, users/bulkUpdate: " in summary
    assert f"see {UI}/assets/audiences/iterable_user_audience?view=checks" in summary
    held = (
        "BLOCKING CHECK FAILED (audiences/iterable_user_audience: audience_payload_valid): these pushes and steps "
        "were held, not run:\n  iterable_user_sync, iterable_user_sync_iterable_user_sync_health\n"
    )
    assert held in summary  # only the Iterable users push and its check: the other pushes went out
    assert summary.rstrip().endswith(f"Run {held_run.run_id} FAILURE: exit status 1.")
    assert "FAILED step" not in summary  # the only failed step is the blocking check's own


def test_the_held_run_still_lists_its_warn_failures_and_tallies_severities(held_run: DailyRun) -> None:
    summary = held_run.summary
    assert (
        f"  FAILED WARN  staging/stg_crm__persons: crm_initial_source_unknown - {VIOLATIONS_PER_KIND} failing records"
    ) in summary
    error_line = next(line for line in summary.splitlines() if line.startswith("  ERROR passed"))
    assert error_line.endswith("failed   1")
    assert summary.index("FAILED ERROR") < summary.index("FAILED WARN")  # errors first


def test_progress_shows_the_failed_check_step_and_the_held_push(held_run: DailyRun) -> None:
    progress = held_run.progress
    assert "ERROR  audiences/iterable_user_audience: audience_payload_valid failed (1 records)" in progress
    assert "FAILED audiences__iterable_user_audience_audience_payload_valid  " in progress
    assert ": DagsterAssetCheckFailedError: 1 blocking asset check failed with ERROR severity:" in progress
    assert "held   iterable_user_sync: not run, a step it depends on failed" in progress
    assert progress.splitlines()[-1].endswith("run FAILED")


def test_the_summary_of_a_past_run_is_read_back_by_run_id(held_run: DailyRun) -> None:
    """`--run-id`: the same summary from the instance's event log, no run in memory."""
    summary = run_daily.read_run(held_run.instance, held_run.run_id)
    assert summary.status == "FAILURE"
    assert [check.name for check in summary.held_by_checks] == ["audience_payload_valid"]
    assert "iterable_user_sync" in summary.held_steps
    failed = {check.name: check for check in summary.checks if not check.passed}
    assert failed["audience_payload_valid"].blocking and failed["audience_payload_valid"].records == 1
    assert not failed["crm_initial_source_unknown"].blocking
    assert failed["crm_initial_source_unknown"].records == VIOLATIONS_PER_KIND
    assert summary.failed_steps == {
        "audiences__iterable_user_audience_audience_payload_valid": (
            "DagsterAssetCheckFailedError: 1 blocking asset check failed with ERROR severity:"
        )
    }
    with pytest.raises(ValueError, match="no run"):
        run_daily.read_run(held_run.instance, "not-a-run")
