"""The runaway-change guard on real Dagster runs: a dbt-built DuckDB, pushes to the loopback Iterable emulator."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pydantic
import pytest

from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.clients.iterable import BULK_UPDATE_USERS, IterableClient
from marketing_pipelines.definitions import build_definitions
from marketing_pipelines.defs.change_guard import ALLOW_LARGE_CHANGE, ChangeGuardConfig, change_counts
from marketing_pipelines.defs.iterable.assets import USER_AUDIENCE_KEY
from marketing_pipelines.defs.iterable.checks import ITERABLE_USER_CHANGE_GUARD, iterable_user_change_guard
from marketing_pipelines.resources import IterableResource, WarehouseResource, build_resources
from marketing_pipelines.sync import Api, run_sync
from marketing_pipelines.sync.iterable import USER_AUDIENCE, USERS
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.jobs import check_result, materialized

API_KEY = "sk-test-guard-0123456789"
SYNC = "iterable_user_sync"
#: The guard's op (its run config goes under `ops: <this>: config:` in the launchpad).
GUARD_OP = iterable_user_change_guard.node_def.name
AUDIENCE_JOB = dg.define_asset_job("user_audience_push", selection=dg.AssetSelection.assets(USER_AUDIENCE_KEY, SYNC))
GUARD_JOB = dg.define_asset_job(
    "user_change_guard",
    selection=dg.AssetSelection.checks(dg.AssetCheckKey(USER_AUDIENCE_KEY, ITERABLE_USER_CHANGE_GUARD)),
)


def run(
    path: Path,
    job: dg.UnresolvedAssetJobDefinition,
    *,
    iterable: IterableResource | None = None,
    tags: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    """One run of `job` on the DuckDB file `path` (Iterable live against `iterable` when given), on its own instance."""
    resources = build_resources(
        {},
        warehouse=WarehouseResource(kind="duckdb", duckdb_path=str(path)),
        **({"iterable": iterable} if iterable else {}),
    )
    instance = dg.DagsterInstance.ephemeral()
    result = (
        dg.Definitions.merge(build_definitions(resources), dg.Definitions(jobs=[job]))
        .resolve_job_def(job.name)
        .execute_in_process(
            run_config={"ops": {GUARD_OP: {"config": config}}} if config is not None else None,
            tags=tags,
            instance=instance,
            raise_on_error=False,
        )
    )
    return result, instance


def sent_emails(emulator: IterableEmulator) -> Counter[str]:
    return Counter(
        user["email"] for path, body in emulator.received_bodies if path == BULK_UPDATE_USERS for user in body["users"]
    )


def audience_emails(warehouse: DuckDBWarehouse) -> list[str]:
    return [email for (email,) in warehouse.query("select email from audiences.iterable_user_audience order by email")]


def unsubscribe(warehouse: DuckDBWarehouse, emails: list[str]) -> None:
    """Marketo unsubscribes for `emails` land: the audience, rebuilt, leaves them out."""
    frame = pd.DataFrame(
        {
            "event_id": [f"guard-{i}" for i in range(len(emails))],
            "email": emails,
            "unsubscribed_at": [datetime(2026, 1, 1)] * len(emails),
        }
    )
    warehouse.write_frame("raw", "marketo_unsubscribes", frame)


def sync_runs(warehouse: DuckDBWarehouse, run_id: str) -> list[tuple[Any, ...]]:
    return warehouse.query(
        "select destination, allow_large_change from ops.sync_runs where run_id = ? order by destination", [run_id]
    )


@pytest.fixture
def pushed(built_sample: Path) -> tuple[DuckDBWarehouse, list[str], set[str]]:
    """A first live push of the sample audience in which Iterable rejected two e-mails (retried by the next push);
    then 60% of the accepted records unsubscribe. Returns the warehouse, the e-mails leaving, the two rejected."""
    warehouse = DuckDBWarehouse(built_sample)
    emails = audience_emails(warehouse)
    assert len(emails) >= 20, "the sample audience is large enough to measure shares"
    rejected = set(emails[-2:])
    with IterableEmulator(api_key=API_KEY, invalid_emails=rejected) as emulator:
        first, _ = run(
            built_sample, AUDIENCE_JOB, iterable=IterableResource(api_key=API_KEY, base_url=emulator.base_url)
        )
        assert first.success
        assert set(sent_emails(emulator)) == set(emails)
    guard = check_result(first, ITERABLE_USER_CHANGE_GUARD)
    assert guard.passed, "the first sync is never held"
    assert guard.description.startswith("First sync")
    assert guard.metadata["synced"].value == 0 and guard.metadata["would_add"].value == len(emails)
    assert SYNC in materialized(first)

    accepted = [email for email in emails if email not in rejected]
    leaving = accepted[: round(len(accepted) * 0.6)]
    unsubscribe(warehouse, leaving)
    return warehouse, leaving, rejected


def test_guard_holds_a_60_percent_removal(pushed):
    warehouse, leaving, rejected = pushed
    synced = warehouse.query("select count(*) from ops.sync_state where destination = 'iterable_users'")[0][0]
    runs_before = warehouse.query("select count(*) from ops.sync_runs")
    with IterableEmulator(api_key=API_KEY) as emulator:
        held, instance = run(
            warehouse.path, AUDIENCE_JOB, iterable=IterableResource(api_key=API_KEY, base_url=emulator.base_url)
        )
        assert sum(emulator.requests_by_path.values()) == 0, "nothing reaches Iterable while the push is held"
    guard = check_result(held, ITERABLE_USER_CHANGE_GUARD)
    assert not guard.passed and guard.severity == dg.AssetCheckSeverity.ERROR
    assert guard.metadata["synced"].value == synced
    assert guard.metadata["would_remove"].value == len(leaving)
    assert guard.metadata["would_add"].value == len(rejected), "the rejected records wait to be retried"
    assert guard.metadata["would_change"].value == 0
    assert guard.metadata["shares"].value["removed"] == pytest.approx(0.6, abs=0.01)
    assert guard.metadata["thresholds"].value == {"max_removed_share": 0.1, "max_changed_share": 0.5}
    assert f"{len(leaving)} of {synced} synced records would be removed" in guard.description
    assert "held" in guard.description and ALLOW_LARGE_CHANGE in guard.description
    assert str(USER_AUDIENCE_KEY.to_user_string()) in materialized(held)
    assert SYNC not in materialized(held)
    assert not held.success
    assert warehouse.query("select count(*) from ops.sync_runs") == runs_before
    assert ALLOW_LARGE_CHANGE not in instance.get_run_by_id(held.run_id).tags


@pytest.mark.parametrize("how", ["tag", "config"])
def test_allow_large_change_lets_the_push_through_and_is_recorded(pushed, how):
    warehouse, leaving, rejected = pushed
    launch = {"tags": {ALLOW_LARGE_CHANGE: "true"}} if how == "tag" else {"config": {ALLOW_LARGE_CHANGE: True}}
    with IterableEmulator(api_key=API_KEY) as emulator:
        allowed, instance = run(
            warehouse.path,
            AUDIENCE_JOB,
            iterable=IterableResource(api_key=API_KEY, base_url=emulator.base_url),
            **launch,
        )
        sent = set(sent_emails(emulator))
    assert allowed.success
    guard = check_result(allowed, ITERABLE_USER_CHANGE_GUARD)
    assert not guard.passed and guard.severity == dg.AssetCheckSeverity.WARN, "it warns, it does not hold"
    assert guard.description.startswith("Allowed by allow_large_change")
    assert guard.metadata[ALLOW_LARGE_CHANGE].value is True
    assert guard.metadata["would_remove"].value == len(leaving)
    assert SYNC in materialized(allowed)
    assert rejected <= sent <= rejected | set(leaving), "the retried records go out; nothing else but exits"
    assert instance.get_run_by_id(allowed.run_id).tags[ALLOW_LARGE_CHANGE] == "true"
    assert sync_runs(warehouse, allowed.run_id) == [("iterable_users", True)]


def test_a_push_within_the_limits_records_no_override(built_sample):
    """A dry-run push with nothing synced passes the guard; its run row says no large change was allowed."""
    result, _ = run(built_sample, AUDIENCE_JOB)
    assert result.success and SYNC in materialized(result)
    assert check_result(result, ITERABLE_USER_CHANGE_GUARD).passed
    assert sync_runs(DuckDBWarehouse(built_sample), result.run_id) == [("iterable_users", False)]


# --- changes and thresholds on a hand-made audience, the guard evaluated alone --------------------------------------


def audience_rows(n: int, changed: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "email": f"user{i:03d}@example.com",
            "user_id": str(i),
            "person_id": i,
            "user_created_at": datetime(2026, 1, 1),
            "data_fields": json.dumps({"leadStatus": "Accepted" if i < changed else "MQL"}),
        }
        for i in range(n)
    )


@pytest.fixture
def synced_audience(tmp_path: Path) -> DuckDBWarehouse:
    """100 audience rows, all accepted by the emulator (a real live sync)."""
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.write_frame("audiences", "iterable_user_audience", audience_rows(100), replace=True)
    with IterableEmulator(api_key=API_KEY) as emulator:
        client = IterableClient(API_KEY, emulator.base_url, bulk_update_per_second=50)
        report = run_sync(warehouse, USERS, Api(client), run_id="first")
    assert report.accepted == 100
    return warehouse


@pytest.mark.parametrize(
    ("changed", "config", "held"),
    [
        (60, {}, True),  # 60% changed > 50%
        (40, {}, False),
        (40, {"max_changed_share": 0.3}, True),
        (60, {"max_changed_share": 1.0}, False),
    ],
)
def test_guard_holds_changes_over_the_configured_share(synced_audience, changed, config, held):
    synced_audience.write_frame("audiences", "iterable_user_audience", audience_rows(100, changed), replace=True)
    assert change_counts(synced_audience, USER_AUDIENCE, USERS.name).would_change == changed
    result, _ = run(synced_audience.path, GUARD_JOB, config=config)
    guard = check_result(result, ITERABLE_USER_CHANGE_GUARD)
    assert guard.passed is not held
    assert guard.metadata["would_change"].value == changed
    assert guard.metadata["shares"].value == {"removed": 0.0, "changed": changed / 100}
    if held:
        assert guard.severity == dg.AssetCheckSeverity.ERROR
        assert f"{changed} changed ({changed}.0%)" in guard.description


def test_removals_at_the_limit_pass_and_over_it_hold(synced_audience):
    """The limit is a share of the synced records: 10 of 100 removed is allowed, 11 is over."""
    for kept, held in ((90, False), (89, True)):
        synced_audience.write_frame("audiences", "iterable_user_audience", audience_rows(kept), replace=True)
        result, _ = run(synced_audience.path, GUARD_JOB)
        guard = check_result(result, ITERABLE_USER_CHANGE_GUARD)
        assert guard.passed is not held, guard.description
        assert guard.metadata["would_remove"].value == 100 - kept


def config_error(path: Path, config: dict[str, Any]) -> str:
    """Why a guard run with `config` was refused: at launch (run config schema) or when the check's config is built
    (its pydantic limits); either way the guard never evaluates, so nothing downstream is pushed."""
    try:
        result, _ = run(path, GUARD_JOB, config=config)
    except dg.DagsterInvalidConfigError as error:
        return str(error)
    assert not result.success
    assert not [event for event in result.all_events if event.event_type_value == "ASSET_CHECK_EVALUATION"]
    (failure,) = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    return str(failure.event_specific_data.error.cause.message)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ten percent", 'Value "ten percent"'),
        ("0.1", 'is not valid for expected type "Float"'),
        ([0.1], "is not valid for expected type"),
        (1.5, "Input should be less than or equal to 1"),
        (-0.1, "Input should be greater than or equal to 0"),
    ],
)
@pytest.mark.parametrize("field", ["max_removed_share", "max_changed_share"])
def test_a_bad_threshold_fails_config_validation_with_a_clear_message(synced_audience, field, value, reason):
    with pytest.raises(pydantic.ValidationError, match=field):
        ChangeGuardConfig(**{field: value})
    message = config_error(synced_audience.path, {field: value})
    assert field in message and reason in message, message
