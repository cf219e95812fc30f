"""The blocking checks on the Iterable audience fail on bad rows and name them (e-mails masked)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from marketing_pipelines.defs.iterable import checks
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.metadata import sample_records


@pytest.fixture
def resource(tmp_path) -> WarehouseResource:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    recent, old = datetime.now() - timedelta(days=3), datetime.now() - timedelta(days=90)
    audience = pd.DataFrame(
        [
            {"email": "ok@example.com", "user_id": "1", "person_id": 1, "user_created_at": recent,
             "data_fields": json.dumps({"leadStatus": "MQL"})},
            {"email": "gone@example.com", "user_id": "2", "person_id": 2, "user_created_at": recent,
             "data_fields": json.dumps({"leadStatus": "MQL"})},
            {"email": "old@example.com", "user_id": "3", "person_id": 3, "user_created_at": old,
             "data_fields": "not json"},
        ]
    )  # fmt: skip
    warehouse.write_frame("audiences", "iterable_user_audience", audience, replace=True)
    warehouse.write_frame(
        "staging",
        "stg_marketo__unsubscribes",
        pd.DataFrame([{"event_id": "u1", "email": "gone@example.com", "unsubscribed_at": recent}]),
        replace=True,
    )
    warehouse.write_frame(
        "marts", "marketing_contacts", pd.DataFrame([{"email": "ok@example.com", "is_opted_in": True}]), replace=True
    )
    return WarehouseResource(duckdb_path=str(warehouse.path))


def test_unsubscribed_person_in_the_audience_fails_and_is_named_masked(resource):
    result = checks.audience_only_opted_in(warehouse=resource)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert sample_records(result) == [{"person_id": 2, "email": "g***@example.com", "value": "unsubscribed"}]


def test_user_older_than_two_months_fails_the_window_check(resource):
    result = checks.audience_within_two_months(warehouse=resource)
    assert not result.passed
    assert result.metadata["failing_records"].value == 1


def test_row_that_is_not_a_valid_bulk_update_user_fails_payload_check(resource):
    result = checks.audience_payload_valid(warehouse=resource)
    assert not result.passed
    assert result.metadata["failing_records"].value == 1
    assert sample_records(result)[0]["email"] == "o***@example.com"


def test_audience_checks_block_the_push():
    from marketing_pipelines.definitions import defs

    graph = defs().get_repository_def().asset_graph
    blocking = {key.name for key in graph.asset_check_keys if graph.get_check_spec(key).blocking}
    assert {checks.AUDIENCE_ONLY_OPTED_IN, checks.AUDIENCE_WITHIN_TWO_MONTHS, checks.AUDIENCE_PAYLOAD_VALID} <= blocking
    assert checks.iterable_user_sync_health.check_key.name not in blocking
