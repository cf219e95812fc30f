"""End to end: generated sample data, then every asset materialized in-process on a temporary DuckDB."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from marketing_pipelines.sample_data import generate, write_sample_data
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.metadata import sample_records


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("pipeline")
    warehouse = DuckDBWarehouse(root / "warehouse.duckdb")
    write_sample_data(generate(users=600, seed=7), warehouse, root / "landing")
    from marketing_pipelines.definitions import build_definitions
    from marketing_pipelines.resources import WarehouseResource, build_resources

    resources = build_resources({}, warehouse=WarehouseResource(kind="duckdb", duckdb_path=str(warehouse.path)))
    job = build_definitions(resources).resolve_job_def("refresh_marketing_data_job")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    return result, warehouse


def test_full_materialization_succeeds(pipeline):
    result, _ = pipeline
    assert result.success


def test_every_dbt_table_and_seed_is_materialized_with_a_row_count(pipeline):
    """Tables, seeds and ingestion assets carry `dagster/row_count`; views do not (counting one runs it)."""
    result, warehouse = pipeline
    materializations = result.get_asset_materialization_events()
    by_key = {event.asset_key.to_user_string(): event for event in materializations}
    assert {"marts/marketing_contacts", "marts/marketing_contact_namespace_detail", "marts/dim_initial_source"} <= set(
        by_key
    )
    views = {"staging/stg_crm__persons", "audiences/iterable_trial_events"}
    assert views <= set(by_key)
    tables_in_staging = {"staging/int_crm_persons_merged", "staging/int_cs_program_accounts"}  # intermediate models
    for key, event in by_key.items():
        metadata = event.materialization.metadata
        is_view = key in views or (key.startswith("staging/") and key not in tables_in_staging)
        assert ("dagster/row_count" in metadata) == (not is_view), key
    assert by_key["marts/dim_initial_source"].materialization.metadata["dagster/row_count"].value == 55
    assert by_key["marts/dim_lead_status"].materialization.metadata["dagster/row_count"].value == 10
    (contacts,) = warehouse.query("select count(*) from marts.marketing_contacts")[0]
    assert by_key["marts/marketing_contacts"].materialization.metadata["dagster/row_count"].value == contacts > 0


def test_blocking_checks_pass_and_seeded_upstream_problems_only_warn(pipeline):
    result, _ = pipeline
    evaluations = [
        event.event_specific_data for event in result.all_events if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert evaluations, "dbt tests should report asset check evaluations"
    failed_errors = [e.check_name for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    assert failed_errors == []
    failed_warnings = {e.check_name for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.WARN}
    assert {
        "crm_initial_source_unknown",
        "crm_lead_status_unknown",
        "crm_initial_source_overwritten",
    } <= failed_warnings


def test_two_month_window_applies_to_generated_users(pipeline):
    _, warehouse = pipeline
    (too_old,) = warehouse.query(
        "select count(*) from marts.marketing_contact_namespace_detail "
        "where user_created_at < current_date - interval 2 month"
    )[0]
    (kept,) = warehouse.query("select count(*) from marts.marketing_contact_namespace_detail")[0]
    assert too_old == 0
    assert kept > 0


def test_iterable_sync_runs_in_dry_run_without_a_key(pipeline):
    result, warehouse = pipeline
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "iterable_user_sync"
    ]
    metadata = event.materialization.metadata
    assert metadata["mode"].value == "dry-run"
    (audience,) = warehouse.query("select count(*) from audiences.iterable_user_audience")[0]
    assert metadata["considered"].value == metadata["sent"].value == audience > 0
    (outboxed,) = warehouse.query("select sum(record_count) from ops.outbox where destination = 'iterable_users'")[0]
    assert outboxed == audience
    assert warehouse.query("select count(*) from ops.sync_state") == [(0,)]


def test_iterable_unsubscribe_sync_runs_in_dry_run_for_every_unsubscribe_event(pipeline):
    from marketing_pipelines.pii import EMAIL_PATTERN

    result, warehouse = pipeline
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "iterable_unsubscribe_sync"
    ]
    metadata = event.materialization.metadata
    events = warehouse.query("select event_id, email from staging.stg_marketo__unsubscribes")
    valid = sum(1 for _, email in events if isinstance(email, str) and EMAIL_PATTERN.match(email))
    assert metadata["mode"].value == "dry-run"
    assert metadata["considered"].value == len(events)
    assert metadata["sent"].value == valid > 0
    (outboxed,) = warehouse.query(
        "select sum(record_count) from ops.outbox where destination = 'iterable_unsubscribes'"
    )[0]
    assert outboxed == valid


def test_gainsight_syncs_run_in_dry_run_and_seeded_bad_input_lands_in_the_rejections(pipeline):
    result, warehouse = pipeline
    events = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    for sync, table in (("gainsight_company_sync", "companies"), ("gainsight_person_sync", "recipients")):
        metadata = events[sync].materialization.metadata
        sql = f"select count(*), count(skip_reason) from audiences.gainsight_program_{table}"
        (rows, skipped) = warehouse.query(sql)[0]
        assert metadata["mode"].value == "dry-run"
        assert (metadata["considered"].value, metadata["sent"].value, metadata["rejected"].value) == (
            rows,
            rows - skipped,
            skipped,
        )
        assert set(metadata["by_program"].value) <= {"onboarding", "enablement", "retention"}
        assert set(metadata["by_segment"].value) == {"Tech Touch", "Scale", "CSM-Managed"}
    reasons = {reason for (reason,) in warehouse.query("select reason from ops.sync_rejections")}
    assert reasons == {"invalid record: unknown deployment type: Dedicated",
                       "invalid record: contact has no e-mail address"}  # fmt: skip


def test_every_customer_is_served_and_seeded_cs_problems_are_named_by_warn_checks(pipeline):
    result, warehouse = pipeline
    (accounts,) = warehouse.query("select count(*) from staging.stg_cs__accounts")[0]
    (companies, tam) = warehouse.query(
        "select count(*), count(technical_account_manager) from audiences.gainsight_program_companies"
    )[0]
    assert companies == accounts and tam > 0, "TAM accounts are served too (CSM-Managed)"
    evaluations = {
        event.event_specific_data.check_name: event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    for name in ("every_customer_account_in_a_program", "company_carr_matches_source"):
        assert evaluations[name].passed, name
    carr = evaluations["account_carr_not_an_amount"]
    assert not carr.passed and carr.severity == dg.AssetCheckSeverity.WARN
    assert {r["value"] for r in sample_records(carr)} == {"-1250.00", "n/a"}
    several = evaluations["account_has_several_sold_to_contacts"]
    assert not several.passed and several.metadata["failing_records"].value >= 1
