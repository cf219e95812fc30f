"""Freshness: the daily assets carry the daily window, and observing the raw tables reports their size and newest
landing (a missing table is observed as missing)."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from marketing_pipelines.defs.constants import DAILY_FRESHNESS_POLICY, DAILY_FRESHNESS_WINDOW
from marketing_pipelines.defs.transform.sources import LAST_UPDATED, raw_freshness_check, raw_sources
from marketing_pipelines.paths import PROJECT_ROOT
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.warehouse import DuckDBWarehouse

DAILY_GROUPS = {"marts", "audiences", "iterable", "gainsight", "signups"}


@pytest.fixture(scope="module")
def graph() -> dg.AssetGraph:
    from marketing_pipelines.definitions import defs

    return defs().get_repository_def().asset_graph


def test_every_daily_asset_has_the_daily_freshness_window(graph):
    daily = [node for node in graph.asset_nodes if node.group_name in DAILY_GROUPS]
    assert {node.group_name for node in daily} == DAILY_GROUPS
    assert len(daily) >= 15  # the reference seeds are not daily: they change with the code
    for node in daily:
        policy = node.freshness_policy
        assert policy is not None, node.key.to_user_string()
        window = policy.fail_window.to_timedelta()  # type: ignore[attr-defined]
        assert window == DAILY_FRESHNESS_WINDOW == timedelta(hours=36), node.key.to_user_string()
        assert policy == DAILY_FRESHNESS_POLICY, node.key.to_user_string()


def test_staging_has_no_freshness_policy_and_raw_sources_are_observable(graph):
    raw = [node for node in graph.asset_nodes if node.group_name == "raw"]
    assert len(raw) == 7
    for node in raw:
        assert node.is_observable and not node.is_materializable, node.key.to_user_string()
    assert all(node.freshness_policy is None for node in graph.asset_nodes if node.group_name == "staging")


def test_the_daily_job_observes_the_raw_sources_first():
    from marketing_pipelines.definitions import defs

    job = defs().get_repository_def().get_job("refresh_marketing_data_job")
    upstream = job.graph.dependency_structure.input_to_upstream_outputs_for_node("staging_dbt_models")
    feeding = {out.node_name for handle, outs in upstream.items() for out in outs if "crm_persons" in handle.input_name}
    assert feeding == {"observe_raw_sources"}
    assert job.graph.node_dict["observe_raw_sources"].definition.pool == "warehouse"


def test_the_instance_settings_enable_freshness():
    settings = yaml.safe_load((PROJECT_ROOT / "instance" / "dagster.yaml").read_text())
    assert settings["freshness"] == {"enabled": True}


def observe(path: Path) -> dict[str, dg.AssetObservation]:
    """Observe every raw source of the code location against the DuckDB file at ``path``."""
    sources = raw_sources()
    job = dg.define_asset_job("observe_raw", selection=dg.AssetSelection.assets(sources))
    definitions = dg.Definitions(
        assets=[sources],
        jobs=[job],
        resources={"warehouse": WarehouseResource(kind="duckdb", duckdb_path=str(path))},
    )
    result = definitions.resolve_job_def("observe_raw").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    observations = [event.asset_observation_data.asset_observation for event in result.get_asset_observation_events()]
    return {observation.asset_key.to_user_string(): observation for observation in observations}


def test_observing_the_sample_warehouse_reports_counts_and_newest_landing(built_sample: Path):
    observations = observe(built_sample)
    assert len(observations) == 7
    db = DuckDBWarehouse(built_sample)
    (count,) = db.query("select count(*) from raw.crm_persons")[0]
    (newest,) = db.query("select max(updated_at) from raw.crm_persons")[0]
    crm = observations["raw/crm_persons"]
    assert crm.metadata["dagster/row_count"].value == count > 0
    assert crm.metadata[LAST_UPDATED].value == newest.replace(tzinfo=UTC).timestamp()
    assert crm.tags["dagster/data_version"] == f"{count}:{newest.replace(tzinfo=UTC).isoformat()}"
    for name, column in (("marketo_unsubscribes", "unsubscribed_at"), ("gitlab_users", "created_at")):
        (n, latest) = db.query(f"select count(*), max({column}) from raw.{name}")[0]
        observed = observations[f"raw/{name}"].metadata
        assert observed["dagster/row_count"].value == n
        assert observed[LAST_UPDATED].value == latest.replace(tzinfo=UTC).timestamp(), name
    (members,) = db.query("select count(*) from raw.gitlab_members")[0]
    assert observations["raw/gitlab_members"].metadata["dagster/row_count"].value == members
    assert LAST_UPDATED not in observations["raw/gitlab_members"].metadata  # no landing column declared


def test_a_missing_table_is_observed_as_missing_and_the_others_still_are(built_sample: Path):
    DuckDBWarehouse(built_sample).execute("drop table raw.cs_contacts")
    observations = observe(built_sample)
    missing = observations["raw/cs_contacts"]
    assert missing.metadata["table_exists"].value is False
    assert "raw.cs_contacts does not exist" in missing.metadata["note"].value
    assert missing.tags["dagster/data_version"] == "missing"
    assert "dagster/row_count" not in missing.metadata
    assert observations["raw/cs_accounts"].metadata["dagster/row_count"].value > 0
    assert len(observations) == 7


def observe_and_check(path: Path, instance: dg.DagsterInstance) -> dict[str, dg.AssetCheckEvaluation]:
    """Observe the raw sources at ``path``, then run their arrival checks, both recorded on ``instance``."""
    sources = raw_sources()
    check = raw_freshness_check(sources)
    job = dg.define_asset_job(
        "observe_and_check", selection=dg.AssetSelection.assets(sources) | dg.AssetSelection.checks(check)
    )
    definitions = dg.Definitions(
        assets=[sources],
        asset_checks=[check],
        jobs=[job],
        resources={"warehouse": WarehouseResource(kind="duckdb", duckdb_path=str(path))},
    )
    result = definitions.resolve_job_def(job.name).execute_in_process(instance=instance)
    assert result.success
    evaluations = [
        event.event_specific_data for event in result.all_events if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    return {evaluation.asset_key.to_user_string(): evaluation for evaluation in evaluations}


def test_a_source_that_stopped_arriving_fails_its_arrival_check(built_sample: Path):
    instance = dg.DagsterInstance.ephemeral()
    fresh = observe_and_check(built_sample, instance)
    # only the tables whose dbt source declares a landing column and a freshness window are checked
    assert set(fresh) == {"raw/crm_persons", "raw/gitlab_users", "raw/gitlab_namespaces"}
    assert all(evaluation.passed for evaluation in fresh.values()), {k: e.description for k, e in fresh.items()}
    assert fresh["raw/crm_persons"].metadata["newest_row_age_hours"].value <= 36

    # the CRM export stops: its newest row is now three days older than it was
    DuckDBWarehouse(built_sample).execute("update raw.crm_persons set updated_at = updated_at - interval 3 day")
    stale = observe_and_check(built_sample, instance)
    crm = stale["raw/crm_persons"]
    assert not crm.passed and crm.severity == dg.AssetCheckSeverity.WARN
    assert crm.metadata["newest_row_age_hours"].value > 72
    assert "hours before this check (at most 36 allowed)" in (crm.description or "")
    assert all(stale[key].passed for key in stale if key != "raw/crm_persons")


def test_a_source_never_observed_fails_its_arrival_check(built_sample: Path):
    sources = raw_sources()
    check = raw_freshness_check(sources)
    result = dg.materialize([check], instance=dg.DagsterInstance.ephemeral(), selection=dg.AssetSelection.checks(check))
    evaluations = [
        event.event_specific_data for event in result.all_events if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert len(evaluations) == 3
    assert not any(evaluation.passed for evaluation in evaluations)
    assert all("Never observed" in (evaluation.description or "") for evaluation in evaluations)
