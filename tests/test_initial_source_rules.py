"""Initial Source and lead status rules across real Dagster runs on a dbt-built DuckDB."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from marketing_pipelines.defs.transform import checks
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.dbt import run_dbt
from tests.support.jobs import check_result, duckdb_resources, materialized, run_refresh
from tests.support.metadata import sample_records
from tests.support.raw import crm_person, load_raw_rows

AUDIENCE = "audiences/iterable_user_audience"


def version(person_id: int, updated_at: str, initial_source: str | None, **fields: object) -> dict[str, object]:
    """One CRM record version of a lead with 10 points (as a number), created at the start of 2025."""
    defaults = {"person_score": 10, "created_at": datetime.fromisoformat("2025-01-01")}
    return crm_person(
        person_id, datetime.fromisoformat(updated_at), **{**defaults, "initial_source": initial_source, **fields}
    )


FIRST_LOAD = [
    version(1, "2025-01-01", "Trial - GitLab.com"),
    version(2, "2025-01-01", None),
    version(3, "2025-01-01", "Webcast", merged_into_person_id=4),
    version(4, "2025-06-01", "Demo"),
    version(5, "2025-01-01", "Linkedin Ads"),
    version(6, "2025-01-01", " trial - gitlab.com "),
    version(7, "2025-01-01", "Demo", status="Recycled"),
]
SECOND_LOAD = [
    version(1, "2025-02-01", "Webcast"),
    version(2, "2025-02-01", "Demo"),
    version(2, "2025-03-01", "Webcast"),
]


class Pipeline:
    """Runs the daily job in-process against one DuckDB file, like the schedule would."""

    def __init__(self, path: Path) -> None:
        self.warehouse = DuckDBWarehouse(path)

    def run(self) -> dg.ExecuteInProcessResult:
        return run_refresh(duckdb_resources(self.warehouse.path))

    def source(self, table: str, person_id: int) -> str | None:
        rows = self.warehouse.query(f"select initial_source from marts.{table} where person_id = ?", [person_id])
        assert len(rows) == 1, f"{table} should hold one row for person {person_id}"
        return rows[0][0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    pipeline = Pipeline(tmp_path_factory.mktemp("rules") / "warehouse.duckdb")
    load_raw_rows(pipeline.warehouse, {"crm_persons": FIRST_LOAD})
    first = pipeline.run()
    pipeline.warehouse.write_frame("raw", "crm_persons", pd.DataFrame(SECOND_LOAD))
    second = pipeline.run()
    return pipeline, first, second


def test_both_runs_succeed_and_build_the_audience(runs):
    _, first, second = runs
    assert first.success and second.success
    assert AUDIENCE in materialized(first)
    assert AUDIENCE in materialized(second), "upstream WARN checks must not stop downstream assets"


def test_changed_initial_source_keeps_first_value(runs):
    pipeline, _, second = runs
    assert pipeline.source("initial_source_history", 1) == "Trial - GitLab.com"
    assert pipeline.source("marketing_contacts", 1) == "Trial - GitLab.com"
    overwritten = check_result(second, checks.CRM_INITIAL_SOURCE_OVERWRITTEN)
    assert not overwritten.passed
    assert overwritten.severity == dg.AssetCheckSeverity.WARN
    samples = sample_records(overwritten)
    assert {"person_id": 1, "email": "p***@example.com", "value": "Trial - GitLab.com -> Webcast"} in samples


def test_empty_initial_source_is_filled_once_and_a_later_change_is_flagged(runs):
    pipeline, first, second = runs
    assert pipeline.source("marketing_contacts", 2) == "Demo"
    samples = sample_records(check_result(second, checks.CRM_INITIAL_SOURCE_OVERWRITTEN))
    assert {"person_id": 2, "email": "p***@example.com", "value": "Demo -> Webcast"} in samples
    assert check_result(first, checks.CRM_INITIAL_SOURCE_OVERWRITTEN).passed


def test_merged_persons_keep_the_oldest_initial_source(runs):
    pipeline, _, second = runs
    assert pipeline.source("marketing_contacts", 4) == "Webcast"
    assert check_result(second, checks.MERGE_KEEPS_OLDEST_INITIAL_SOURCE).passed


def test_unknown_initial_source_is_reported_and_never_reaches_the_mart(runs):
    pipeline, _, second = runs
    assert pipeline.source("marketing_contacts", 5) is None
    unknown = check_result(second, checks.CRM_INITIAL_SOURCE_UNKNOWN)
    assert not unknown.passed
    assert unknown.metadata["values"].value == {"Linkedin Ads": 1}
    assert unknown.metadata["failing_records"].value == 1


def test_case_and_whitespace_variant_maps_to_canonical_value(runs):
    pipeline, _, _ = runs
    assert pipeline.source("marketing_contacts", 6) == "Trial - GitLab.com"


def test_unknown_lead_status_warns_with_the_value(runs):
    _, _, second = runs
    unknown = check_result(second, checks.CRM_LEAD_STATUS_UNKNOWN)
    assert not unknown.passed and unknown.severity == dg.AssetCheckSeverity.WARN
    assert unknown.metadata["values"].value == {"Recycled": 1}


def test_output_rules_pass_on_clean_output(runs):
    _, _, second = runs
    for name in (
        checks.INITIAL_SOURCE_IMMUTABLE,
        checks.INITIAL_SOURCE_ALLOWED,
        checks.LEAD_STATUS_ALLOWED,
        checks.MQL_MATCHES_SCORE,
    ):
        assert check_result(second, name).passed, name


def test_full_refresh_leaves_the_history_untouched(runs):
    pipeline, _, _ = runs
    before = pipeline.warehouse.query("select * from marts.initial_source_history order by person_id")
    run_dbt(["build", "--full-refresh"], pipeline.warehouse.path)
    after = pipeline.warehouse.query("select * from marts.initial_source_history order by person_id")
    assert after == before


def test_edited_history_fails_immutability_and_never_reaches_the_contacts(runs):
    pipeline, _, _ = runs
    pipeline.warehouse.execute("update marts.initial_source_history set initial_source = 'Demo' where person_id = 1")
    third = pipeline.run()
    immutable = check_result(third, checks.INITIAL_SOURCE_IMMUTABLE)
    assert not immutable.passed
    assert immutable.severity == dg.AssetCheckSeverity.ERROR
    assert sample_records(immutable) == [{"person_id": 1, "email": None, "value": "Trial - GitLab.com -> Demo"}]
    assert pipeline.source("marketing_contacts", 1) == "Trial - GitLab.com", "the contact keeps the audited value"
    built = materialized(third)
    assert "marts/initial_source_history" in built
    assert {"marts/marketing_contacts", AUDIENCE} & built == set()
    step_events = {(event.step_key, event.event_type_value) for event in third.all_events}
    for step in ("mart_dbt_models", "audience_dbt_models", "iterable_user_sync"):
        assert (step, "STEP_START") not in step_events, f"{step} must not run"
    assert ("marts__initial_source_history_initial_source_immutable", "STEP_FAILURE") in step_events
    assert not third.success


def test_rule_checks_are_registered_with_their_severity_contract():
    from marketing_pipelines.definitions import defs

    graph = defs().get_repository_def().asset_graph
    specs = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    for name in (
        checks.INITIAL_SOURCE_IMMUTABLE,
        checks.INITIAL_SOURCE_ALLOWED,
        checks.MERGE_KEEPS_OLDEST_INITIAL_SOURCE,
        checks.LEAD_STATUS_ALLOWED,
    ):
        assert specs[name].blocking, f"{name} must block downstream syncs"
    for name in (
        checks.CRM_INITIAL_SOURCE_OVERWRITTEN,
        checks.CRM_INITIAL_SOURCE_UNKNOWN,
        checks.CRM_LEAD_STATUS_UNKNOWN,
        checks.MQL_MATCHES_SCORE,
    ):
        assert not specs[name].blocking, f"{name} only warns"
