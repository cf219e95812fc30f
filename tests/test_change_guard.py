"""The runaway-change guard on real Dagster runs: a dbt-built DuckDB, pushes to the loopback Iterable emulator."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
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
from tests.support.warehouses import copy_warehouse

API_KEY = "sk-test-guard-0123456789"
SYNC = "iterable_user_sync"
#: The guard's op (its run config goes under `ops: <this>: config:` in the launchpad).
GUARD_OP = iterable_user_change_guard.node_def.name
AUDIENCE_JOB = dg.define_asset_job("user_audience_push", selection=dg.AssetSelection.assets(USER_AUDIENCE_KEY, SYNC))
GUARD = dg.AssetSelection.checks(dg.AssetCheckKey(USER_AUDIENCE_KEY, ITERABLE_USER_CHANGE_GUARD))
GUARD_JOB = dg.define_asset_job("user_change_guard", selection=GUARD)
#: The guard and the push, the audience as it is (a hand-made table): the guard still blocks the push.
GUARDED_PUSH_JOB = dg.define_asset_job(
    "guarded_user_push", selection=GUARD | dg.AssetSelection.assets(SYNC).without_checks()
)


def run(
    path: Path | WarehouseResource,
    job: dg.UnresolvedAssetJobDefinition,
    *,
    iterable: IterableResource | None = None,
    tags: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    """One run of `job` on the DuckDB file `path` (or the warehouse resource), Iterable live against `iterable` when
    given, on its own instance."""
    warehouse = path if isinstance(path, WarehouseResource) else WarehouseResource(kind="duckdb", duckdb_path=str(path))
    resources = build_resources({}, warehouse=warehouse, **({"iterable": iterable} if iterable else {}))
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


@dataclass(frozen=True)
class Launch:
    """One run of the audience and its push, with what reached the emulator."""

    result: dg.ExecuteInProcessResult
    tags: Mapping[str, str]
    requests: int
    sent: set[str]

    @property
    def guard(self) -> dg.AssetCheckEvaluation:
        return check_result(self.result, ITERABLE_USER_CHANGE_GUARD)


def launch(
    path: Path | WarehouseResource,
    *,
    invalid_emails: set[str] = frozenset(),
    job: dg.UnresolvedAssetJobDefinition = AUDIENCE_JOB,
    **how: Any,
) -> Launch:
    """Run the audience and its push on `path`, Iterable live against a fresh emulator."""
    with IterableEmulator(api_key=API_KEY, invalid_emails=invalid_emails) as emulator:
        iterable = IterableResource(api_key=API_KEY, base_url=emulator.base_url)
        result, instance = run(path, job, iterable=iterable, **how)
        requests, sent = sum(emulator.requests_by_path.values()), set(sent_emails(emulator))
    return Launch(result, dict(instance.get_run_by_id(result.run_id).tags), requests, sent)


@dataclass(frozen=True)
class Story:
    """A first live push of the sample audience (Iterable rejects two e-mails, retried by the next push); then 60%
    of the accepted records unsubscribe in Marketo and the audience is pushed again: plainly (held), with the tag
    `allow_large_change=true`, and (on a copy of the same warehouse) with `allow_large_change: true` in the guard's
    run config."""

    warehouse: DuckDBWarehouse
    emails: list[str]
    rejected: set[str]
    leaving: list[str]
    synced: int
    first: Launch
    held: Launch
    runs_after_held: int
    by_tag: Launch
    by_config: Launch
    by_config_warehouse: DuckDBWarehouse


@pytest.fixture(scope="module")
def story(sample_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Story:
    root = tmp_path_factory.mktemp("guard")
    warehouse = copy_warehouse(sample_warehouse, root / "warehouse.duckdb")
    emails = audience_emails(warehouse)
    assert len(emails) >= 20, "the sample audience is large enough to measure shares"
    rejected = set(emails[-2:])
    first = launch(warehouse.path, invalid_emails=rejected)
    accepted = [email for email in emails if email not in rejected]
    leaving = accepted[: round(len(accepted) * 0.6)]
    unsubscribe(warehouse, leaving)
    (synced,), (runs_before,) = warehouse.query(
        "select count(*) from ops.sync_state where destination = 'iterable_users' "
        "union all select count(*) from ops.sync_runs"
    )
    held = launch(warehouse.path)
    ((runs_after_held,),) = warehouse.query("select count(*) from ops.sync_runs")
    assert runs_after_held == runs_before
    copy = copy_warehouse(warehouse.path, root / "by_config.duckdb")
    by_tag = launch(warehouse.path, tags={ALLOW_LARGE_CHANGE: "true"})
    by_config = launch(copy.path, config={ALLOW_LARGE_CHANGE: True})
    return Story(warehouse, emails, rejected, leaving, synced, first, held, runs_after_held, by_tag, by_config, copy)


def test_the_first_sync_is_never_held(story):
    first = story.first
    assert first.result.success
    assert first.guard.passed and first.guard.description.startswith("First sync")
    assert first.guard.metadata["synced"].value == 0
    assert first.guard.metadata["would_add"].value == len(story.emails)
    assert SYNC in materialized(first.result)
    assert first.sent == set(story.emails)
    assert ALLOW_LARGE_CHANGE not in first.tags
    assert sync_runs(story.warehouse, first.result.run_id) == [("iterable_users", False)]


def test_guard_holds_a_60_percent_removal(story):
    held, leaving = story.held, story.leaving
    assert held.requests == 0, "nothing reaches Iterable while the push is held"
    assert not held.guard.passed and held.guard.severity == dg.AssetCheckSeverity.ERROR
    metadata = held.guard.metadata
    assert metadata["synced"].value == story.synced == len(story.emails) - len(story.rejected)
    assert metadata["would_remove"].value == len(leaving)
    assert metadata["would_add"].value == len(story.rejected), "the rejected records wait to be retried"
    assert metadata["would_change"].value == 0
    assert metadata["shares"].value["removed"] == pytest.approx(0.6, abs=0.01)
    assert metadata["thresholds"].value == {"max_removed_share": 0.1, "max_changed_share": 0.5}
    assert f"{len(leaving)} of {story.synced} synced records would be removed" in held.guard.description
    assert "held" in held.guard.description and ALLOW_LARGE_CHANGE in held.guard.description
    assert USER_AUDIENCE_KEY.to_user_string() in materialized(held.result)
    assert SYNC not in materialized(held.result)
    assert not held.result.success
    assert sync_runs(story.warehouse, held.result.run_id) == []
    assert ALLOW_LARGE_CHANGE not in held.tags


@pytest.mark.parametrize("how", ["by_tag", "by_config"])
def test_allow_large_change_lets_the_push_through_and_is_recorded(story, how):
    allowed: Launch = getattr(story, how)
    warehouse = story.warehouse if how == "by_tag" else story.by_config_warehouse
    assert allowed.result.success
    assert not allowed.guard.passed and allowed.guard.severity == dg.AssetCheckSeverity.WARN, "it warns, not holds"
    assert allowed.guard.description.startswith("Allowed by allow_large_change")
    assert allowed.guard.metadata[ALLOW_LARGE_CHANGE].value is True
    assert allowed.guard.metadata["would_remove"].value == len(story.leaving)
    assert SYNC in materialized(allowed.result)
    assert allowed.requests > 0
    assert story.rejected <= allowed.sent <= story.rejected | set(story.leaving), "retried records; else only exits"
    assert allowed.tags[ALLOW_LARGE_CHANGE] == "true"
    assert sync_runs(warehouse, allowed.result.run_id) == [("iterable_users", True)]


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


def test_every_audience_push_sits_behind_a_blocking_guard_and_event_streams_have_none():
    from marketing_pipelines.definitions import defs

    graph = defs().get_repository_def().asset_graph
    guards = {key: graph.get_check_spec(key) for key in graph.asset_check_keys if key.name.endswith("_change_guard")}
    assert len(guards) == 3 and all(spec.blocking and spec.description for spec in guards.values())
    guarded = {key.asset_key for key in guards}
    for sync in ("iterable_user_sync", "gainsight_company_sync", "gainsight_person_sync"):
        assert guarded & graph.get(dg.AssetKey(sync)).parent_keys, f"{sync} depends on no guarded audience"
    for sync in ("iterable_unsubscribe_sync", "iterable_signup_profile_sync", "iterable_trial_event_sync"):
        assert not guarded & graph.get(dg.AssetKey(sync)).parent_keys, f"{sync} is an event stream"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_guard_holds_a_60_percent_removal_and_the_override_lets_it_through_on_snowflake():
    """The same rule on the Snowflake warehouse (a fakesnow server): the guard's SQL, the tag, and the
    `ops.sync_runs.allow_large_change` column added to the engine's table."""
    from marketing_pipelines.resources import warehouse_resource_from
    from tests import fakesnow_shims

    with fakesnow_shims.server() as connection:
        resource = warehouse_resource_from({**fakesnow_shims.snowflake_env(connection), "SNOWFLAKE_DATABASE": "GUARD"})
        warehouse = resource.get_warehouse()
        try:
            warehouse.write_frame("audiences", "iterable_user_audience", audience_rows(100), replace=True)
            first = launch(resource, job=GUARDED_PUSH_JOB)
            assert first.guard.passed and first.guard.description.startswith("First sync")
            assert len(first.sent) == 100

            # 60 of the 100 synced users leave; two new users arrive and wait behind the guard
            kept = audience_rows(100).iloc[60:]
            new = audience_rows(102).iloc[100:]
            warehouse.write_frame("audiences", "iterable_user_audience", pd.concat([kept, new]), replace=True)
            held = launch(resource, job=GUARDED_PUSH_JOB)
            assert not held.guard.passed and held.guard.severity == dg.AssetCheckSeverity.ERROR
            assert (held.guard.metadata["would_remove"].value, held.guard.metadata["would_add"].value) == (60, 2)
            assert held.requests == 0 and SYNC not in materialized(held.result)

            allowed = launch(resource, job=GUARDED_PUSH_JOB, tags={ALLOW_LARGE_CHANGE: "true"})
            assert allowed.guard.severity == dg.AssetCheckSeverity.WARN and SYNC in materialized(allowed.result)
            new_emails = set(new["email"])
            assert new_emails <= allowed.sent <= new_emails | set(audience_rows(60)["email"])
            assert allowed.tags[ALLOW_LARGE_CHANGE] == "true"
            assert [tuple(row) for row in sync_runs(warehouse, allowed.result.run_id)] == [("iterable_users", True)]
            assert [tuple(row) for row in sync_runs(warehouse, first.result.run_id)] == [("iterable_users", False)]
        finally:
            warehouse.execute([f"drop schema if exists {schema} cascade" for schema in ("audiences", "ops")])
            warehouse.close()
