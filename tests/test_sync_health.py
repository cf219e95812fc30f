"""Sync health on every destination: the `<sync>_health` checks on real DuckDB, after real syncs against the
loopback Iterable and Gainsight emulators."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from devtools.gainsight_emulator import GainsightEmulator
from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.clients.gainsight import GainsightClient
from marketing_pipelines.clients.iterable import BULK_UPDATE_USERS, IterableClient
from marketing_pipelines.defs.gainsight.checks import gainsight_company_sync_health, gainsight_person_sync_health
from marketing_pipelines.defs.iterable.checks import iterable_user_sync_health
from marketing_pipelines.resources import SyncHealthResource, WarehouseResource
from marketing_pipelines.sync import Api, SyncReport, run_sync
from marketing_pipelines.sync.gainsight import COMPANIES
from marketing_pipelines.sync.iterable import USERS
from marketing_pipelines.sync.ops_tables import ensure_ops_tables
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.gainsight import program_company_rows
from tests.support.http import fast_retry
from tests.support.metadata import sample_records

API_KEY = "sk-test-0123456789abcdef"
ACCESS_KEY = "gs-access-0123456789abcdef"
AUDIENCE = 100
WARN, ERROR = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR


def users(n: int) -> pd.DataFrame:
    """The Iterable user audience: `n` users, `user00000@example.com` on."""
    return pd.DataFrame(
        [
            {
                "email": f"user{i:05d}@example.com",
                "user_id": str(i),
                "person_id": i,
                "user_created_at": datetime(2026, 11, 1),
                "data_fields": json.dumps({"leadStatus": "MQL"}),
            }
            for i in range(n)
        ]
    )


def invalid(count: int) -> set[str]:
    """The e-mails of the first `count` users, for the emulator to reject in `failedUpdates`."""
    return {f"user{i:05d}@example.com" for i in range(count)}


def user_sync(warehouse: DuckDBWarehouse, emulator: IterableEmulator, run_id: str = "run-1") -> SyncReport:
    client = IterableClient(API_KEY, emulator.base_url, bulk_update_per_second=100)
    return run_sync(warehouse, USERS.batched(50), Api(client), run_id=run_id)


def health(check: Any, warehouse: DuckDBWarehouse, **thresholds: Any) -> dg.AssetCheckResult:
    """Evaluate a health check on `warehouse` with the given thresholds (defaults otherwise)."""
    return check(
        warehouse=WarehouseResource(duckdb_path=str(warehouse.path)), sync_health=SyncHealthResource(**thresholds)
    )


def values(result: dg.AssetCheckResult) -> dict[str, Any]:
    return {key: value.value for key, value in result.metadata.items()}


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.write_frame("audiences", "iterable_user_audience", users(AUDIENCE), replace=True)
    return warehouse


def rejected_by_iterable(warehouse: DuckDBWarehouse, count: int) -> SyncReport:
    """One live user sync against the emulator, which rejects the first `count` users' e-mails."""
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 100}, invalid_emails=invalid(count)) as emu:
        report = user_sync(warehouse, emu)
    assert (report.considered, report.accepted, report.rejected) == (AUDIENCE, AUDIENCE - count, count)
    return report


def test_before_any_sync_the_check_passes_and_says_so(warehouse):
    result = health(iterable_user_sync_health, warehouse)
    assert result.passed and result.description == "No sync of Iterable (users/bulkUpdate) has run yet."
    ensure_ops_tables(warehouse)  # another destination synced: the tables exist, this one never ran
    result = health(iterable_user_sync_health, warehouse)
    assert result.passed and result.description == "No sync of Iterable (users/bulkUpdate) has run yet."
    assert "rejection_rate" not in result.metadata and values(result)["open_backlog"] == 0


def test_a_run_with_nothing_rejected_passes_with_a_zero_rate(warehouse):
    rejected_by_iterable(warehouse, 0)
    result = health(iterable_user_sync_health, warehouse)
    assert result.passed
    assert result.description.startswith("No records rejected by Iterable (users/bulkUpdate) are waiting")
    meta = values(result)
    assert (meta["rejection_rate"], meta["open_backlog"], meta["oldest_rejection_age_hours"]) == (0.0, 0, 0.0)
    assert (meta["latest_run_rejected"], meta["latest_run_considered"]) == (0, AUDIENCE)


def test_a_backlog_below_the_thresholds_fails_with_warn_and_reports_rate_backlog_and_age(warehouse):
    rejected_by_iterable(warehouse, 2)
    result = health(iterable_user_sync_health, warehouse)
    assert not result.passed and result.severity == WARN
    meta = values(result)
    assert (meta["rejection_rate"], meta["open_backlog"], meta["failing_records"]) == (0.02, 2, 2)
    assert (meta["latest_run_rejected"], meta["latest_run_considered"]) == (2, AUDIENCE)
    assert 0 <= meta["oldest_rejection_age_hours"] < 0.1, "rejected moments ago"
    assert (meta["max_rejection_rate"], meta["max_rejection_age_hours"]) == (0.05, 48)
    assert isinstance(result.metadata["rejection_rate"], dg.FloatMetadataValue), "plotted in the UI"
    assert isinstance(result.metadata["open_backlog"], dg.IntMetadataValue)
    assert isinstance(result.metadata["oldest_rejection_age_hours"], dg.FloatMetadataValue)
    # the samples name each record (person id, masked e-mail) with Iterable's reason
    samples = sorted(sample_records(result), key=lambda sample: sample["person_id"])
    assert [(s["person_id"], s["email"]) for s in samples] == [(0, "u***@example.com"), (1, "u***@example.com")]
    assert all(s["reason"] for s in samples)
    assert "2 records rejected by Iterable (users/bulkUpdate)" in result.description
    assert "rejected 2 of the 100 records it considered (2.0%; ERROR above 5.0%)" in result.description
    assert "ERROR:" not in result.description


def test_a_retried_rejection_keeps_the_rate_of_the_audience_not_of_the_records_sent(warehouse):
    rejected_by_iterable(warehouse, 2)
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 100}, invalid_emails=invalid(2)) as emu:
        rerun = user_sync(warehouse, emu, run_id="run-2")
    assert (rerun.sent, rerun.rejected) == (2, 2), "the rerun sends only the rejected records"
    result = health(iterable_user_sync_health, warehouse)
    assert not result.passed and result.severity == WARN
    assert (values(result)["rejection_rate"], values(result)["open_backlog"]) == (0.02, 2)


def test_a_rate_above_the_threshold_escalates_to_error(warehouse):
    rejected_by_iterable(warehouse, 10)
    result = health(iterable_user_sync_health, warehouse)
    assert not result.passed and result.severity == ERROR
    assert (values(result)["rejection_rate"], values(result)["open_backlog"]) == (0.1, 10)
    assert "ERROR: the rejection rate is above its threshold." in result.description
    lenient = health(iterable_user_sync_health, warehouse, max_rejection_rate="0.2")
    assert not lenient.passed and lenient.severity == WARN, "the threshold is configurable"
    assert values(lenient)["max_rejection_rate"] == 0.2


def test_a_rejection_older_than_the_threshold_escalates_to_error(warehouse):
    rejected_by_iterable(warehouse, 1)
    warehouse.execute(
        ["update ops.sync_rejections set first_attempt_at = first_attempt_at - interval '49 hours' where not resolved"]
    )
    result = health(iterable_user_sync_health, warehouse)
    assert not result.passed and result.severity == ERROR
    assert 49 <= values(result)["oldest_rejection_age_hours"] < 49.1 and values(result)["rejection_rate"] == 0.01
    assert "ERROR: the oldest rejection's age is above its threshold." in result.description
    lenient = health(iterable_user_sync_health, warehouse, max_rejection_age_hours=72)
    assert not lenient.passed and lenient.severity == WARN
    assert values(lenient)["max_rejection_age_hours"] == 72


def test_a_resolved_backlog_passes(warehouse):
    rejected_by_iterable(warehouse, 10)
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 100}) as emu:
        rerun = user_sync(warehouse, emu, run_id="run-2")
    assert (rerun.sent, rerun.accepted, rerun.rejected) == (10, 10, 0), "the rejected records are accepted now"
    result = health(iterable_user_sync_health, warehouse)
    assert result.passed
    assert (values(result)["rejection_rate"], values(result)["open_backlog"]) == (0.0, 0)


def gainsight_company_run(tmp_path, companies: int, refused: list[int]) -> DuckDBWarehouse:
    """A live Gainsight company sync of ``companies`` program accounts, the ``refused`` ones (by position) outside
    Gainsight's segment picklist, which the emulator rejects."""
    warehouse = DuckDBWarehouse(tmp_path / "gainsight.duckdb")
    rows = program_company_rows(list(range(companies)))
    rows.loc[refused, "segment"] = "Enterprise"
    warehouse.write_frame("audiences", "gainsight_program_companies", rows, replace=True)
    with GainsightEmulator(access_key=ACCESS_KEY, calls_per_window=10, window_seconds=1) as emu:
        client = GainsightClient(ACCESS_KEY, emu.base_url, calls_per_window=10, window_seconds=1, retry=fast_retry())
        report = run_sync(warehouse, COMPANIES, Api(client), run_id="gainsight")
    assert (report.accepted, report.rejected) == (companies - len(refused), len(refused))
    return warehouse


def test_gainsight_company_health_escalates_on_rate_and_each_destination_is_its_own(tmp_path):
    warehouse = gainsight_company_run(tmp_path, 100, refused=list(range(3, 100, 10)))
    result = health(gainsight_company_sync_health, warehouse)
    assert not result.passed and result.severity == ERROR, "10 of 100 companies is a 10% rate"
    meta = values(result)
    assert (meta["rejection_rate"], meta["open_backlog"], meta["latest_run_considered"]) == (0.1, 10, 100)
    sample = min(sample_records(result), key=lambda record: int(record["account_id"]))
    assert sample == {
        "account_id": "70000003",
        "account_name": "Company 3",
        "reason": "GS_2504: Customer_Segment__gc 'Enterprise' is not a picklist value",
    }
    assert health(gainsight_company_sync_health, warehouse, max_rejection_rate="0.25").severity == WARN
    people = health(gainsight_person_sync_health, warehouse)
    assert people.passed and people.description == "No sync of Gainsight (People upserts) has run yet."


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_rejection_rate": "5%"}, r"max_rejection_rate \(SYNC_HEALTH_MAX_REJECTION_RATE\) must be a decimal"),
        ({"max_rejection_rate": "1.5"}, "must be a decimal from 0 to 1"),
        ({"max_rejection_rate": "-0.1"}, "must be a decimal from 0 to 1"),
        ({"max_rejection_rate": "nan"}, "must be a decimal from 0 to 1"),
        ({"max_rejection_age_hours": 0}, r"\(SYNC_HEALTH_MAX_REJECTION_AGE_HOURS\) must be a positive whole number"),
    ],
)
def test_a_bad_threshold_fails_configuration_naming_the_variable(settings, message):
    with pytest.raises(Exception, match=message):
        SyncHealthResource(**settings)


def test_the_default_thresholds():
    thresholds = SyncHealthResource().thresholds()
    assert (thresholds.max_rejection_rate, thresholds.max_rejection_age_hours) == (0.05, 48)
    assert SyncHealthResource(max_rejection_rate=" 0.5 ").thresholds().max_rejection_rate == 0.5


def test_a_small_run_does_not_escalate_on_its_rate(tmp_path):
    warehouse = gainsight_company_run(tmp_path, 10, refused=[3])
    result = health(gainsight_company_sync_health, warehouse)
    assert not result.passed and result.severity == WARN, "1 of 10 is 10%, but 10 records are too few to judge"
    assert values(result)["rejection_rate"] == 0.1
    assert "(10.0%; ERROR above 5.0% in a run of at least 100 records)" in result.description
