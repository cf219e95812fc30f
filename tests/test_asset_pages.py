"""What the asset pages show: kinds of the active warehouse, descriptions without SQL, serializable metadata, a
description on every check, seeds in their own group, typed columns and failing rows after a real build."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.metadata import normalize_metadata
from dagster._serdes import serialize_value

from marketing_pipelines.definitions import build_definitions
from marketing_pipelines.resources import WarehouseResource, build_resources
from marketing_pipelines.sample_data import generate, write_sample_data
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.jobs import check_result, duckdb_resources, run_refresh
from tests.support.metadata import table_records

#: dagster-dbt reads these two from each dbt spec when a step runs; the UI hides them (not data properties).
DBT_RUNTIME_KEYS = {"dagster_dbt/manifest", "dagster_dbt/dagster_dbt_translator"}
SEEDS = {"marts/dim_initial_source", "marts/dim_lead_status", "marts/dim_access_level"}
SOURCE_TEST = "source_accepted_values_cs_cs_accounts_deployment_type__SaaS__Self_Managed"


def asset_graph(resources: dict) -> dg.AssetGraph:
    return build_definitions(resources).get_repository_def().asset_graph


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory):
    return asset_graph(duckdb_resources(tmp_path_factory.mktemp("pages") / "never.duckdb"))


def dbt_keys(graph) -> list[dg.AssetKey]:
    return [key for key in graph.get_all_asset_keys() if "dbt" in graph.get(key).kinds]


def test_kinds_name_the_default_warehouse_only(graph):
    assert dbt_keys(graph), "the dbt assets should carry the dbt kind"
    for key in dbt_keys(graph):
        assert graph.get(key).kinds == {"dbt", "duckdb"}, key
        assert graph.get(key).metadata["dagster/storage_kind"] == "duckdb", key
    assert graph.get(dg.AssetKey(["raw", "crm_persons"])).kinds == {"duckdb"}


def test_kinds_name_snowflake_when_it_is_the_warehouse(monkeypatch: pytest.MonkeyPatch):
    configured = asset_graph(build_resources({}, warehouse=WarehouseResource(kind="snowflake")))
    monkeypatch.setenv("MARKETING_WAREHOUSE", "snowflake")
    bound = asset_graph(build_resources({"MARKETING_WAREHOUSE": "snowflake"}))  # an EnvVar binding, as deployed
    for graph in (configured, bound):
        for key in dbt_keys(graph):
            assert graph.get(key).kinds == {"dbt", "snowflake"}, key
        assert graph.get(dg.AssetKey(["raw", "crm_persons"])).kinds == {"snowflake"}


def test_descriptions_carry_no_raw_sql(graph):
    for key in graph.get_all_asset_keys():
        description = graph.get(key).description or ""
        assert description.strip() and "Raw SQL" not in description and "```" not in description, key
    assert graph.get(dg.AssetKey(["marts", "marketing_contacts"])).description.startswith("One row per person")


def test_metadata_is_serializable_and_carries_code_references(graph):
    for key in graph.get_all_asset_keys():
        metadata = {name: value for name, value in graph.get(key).metadata.items() if name not in DBT_RUNTIME_KEYS}
        assert "dagster_dbt/project" not in metadata, key
        serialize_value(normalize_metadata(metadata))  # raises on a value that is not serializable
    for check_key in graph.asset_check_keys:
        serialize_value(normalize_metadata(graph.get_check_spec(check_key).metadata or {}))
    for name in (["marts", "marketing_contacts"], ["iterable_user_sync"]):
        references = graph.get(dg.AssetKey(name)).metadata["dagster/code_references"].code_references
        assert references and all(Path(reference.file_path).is_file() for reference in references), name


def test_every_check_has_a_description_and_dbt_tests_say_what_they_test(graph):
    for check_key in graph.asset_check_keys:
        assert graph.get_check_spec(check_key).description, check_key.to_user_string()
    by_name = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert by_name["unique_marketing_contacts_person_id"].description.startswith(
        "dbt test `unique` on column `person_id` of `marts.marketing_contacts`."
    )


def test_seeds_have_their_own_group_upstream_of_staging(graph):
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert {groups[seed] for seed in SEEDS} == {"reference"}
    assert "reference" not in {group for key, group in groups.items() if key not in SEEDS}
    marts = {key for key, group in groups.items() if group == "marts"}
    staging = {key for key, group in groups.items() if group == "staging"}
    for key in staging:  # no edge from marts back into staging
        parents = {parent.to_user_string() for parent in graph.get(dg.AssetKey.from_user_string(key)).parent_keys}
        assert not parents & marts, key


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory: pytest.TempPathFactory) -> dg.ExecuteInProcessResult:
    """One daily refresh of the sample, one account's deployment type holding an e-mail (a raw dbt test warns)."""
    root = tmp_path_factory.mktemp("refresh")
    warehouse = DuckDBWarehouse(root / "warehouse.duckdb")
    write_sample_data(generate(users=300, seed=3), warehouse, root / "landing")
    (account,) = warehouse.query("select min(account_id) from raw.cs_accounts")[0]
    warehouse.execute(
        f"update raw.cs_accounts set deployment_type = 'jane.doe@example.com' where account_id = {account}"
    )
    return run_refresh(duckdb_resources(warehouse.path))


def test_materializations_carry_typed_column_schemas(refreshed):
    by_key = {event.asset_key.to_user_string(): event for event in refreshed.get_asset_materialization_events()}
    contacts = by_key["marts/marketing_contacts"].materialization.metadata["dagster/column_schema"].schema
    types = {column.name: column.type for column in contacts.columns}
    assert types["person_id"] and "?" not in types.values(), types
    assert types["is_mql"] == "boolean"
    assert next(c for c in contacts.columns if c.name == "person_id").description == "Surviving CRM record id."
    for key in ("staging/stg_crm__persons", "marts/dim_lead_status", "audiences/iterable_user_audience"):
        schema = by_key[key].materialization.metadata["dagster/column_schema"].schema
        assert schema.columns and all(column.type and column.type != "?" for column in schema.columns), key


def test_a_failed_dbt_test_shows_its_rows_masked(refreshed):
    evaluation = check_result(refreshed, SOURCE_TEST)
    assert not evaluation.passed
    rows = table_records(evaluation, "failing_rows")
    assert {"value_field": "j***@example.com", "n_records": 1} in rows and 0 < len(rows) <= 20
    assert "jane.doe" not in str(rows)
    passed = check_result(refreshed, "unique_marketing_contacts_person_id")
    assert passed.passed and "failing_rows" not in passed.metadata


def test_rule_check_samples_are_tables(refreshed):
    evaluation = check_result(refreshed, "crm_initial_source_unknown")
    assert not evaluation.passed
    assert isinstance(evaluation.metadata["sample_records"], dg.TableMetadataValue)
    records = table_records(evaluation)
    assert records and all("@" not in str(r["email"]) or "***@" in str(r["email"]) for r in records)
