"""The same pipeline on Snowflake: dbt-snowflake and the Snowflake warehouse against a fakesnow server on loopback.

One seed of sample data goes through the whole pipeline twice, once per engine, with only `MARKETING_WAREHOUSE`
(and the `SNOWFLAKE_*` settings) changed: sample data (bulk `write_pandas`) → `refresh_marketing_data_job`
(dbt build, rule checks, dry-run syncs) → the landed event files through `ingest_signups_job` (frames loaded into
temporary tables inside the ingestion transaction) → a live `iterable_user_sync` against the Iterable emulator
with two rejected records (the sync engine's per-batch transaction). Snowflake then runs the refresh a second time:
the incremental `initial_source_history` and the `initial_source_immutable` audit on their second pass.

fakesnow is DuckDB behind Snowflake's wire protocol: `tests/fakesnow_shims.py` fixes four emulator bugs. What it
cannot show about real Snowflake (also in `docs/deploy.md`): compute warehouses, roles and grants (SNOWFLAKE_ROLE and
SNOWFLAKE_WAREHOUSE are accepted and ignored), key-pair/SSO authentication, Snowflake's type strictness (TRY_CAST only
on strings, OBJECT-to-VARCHAR casts), OBJECT key order (Snowflake sorts keys), results streamed in several
cloud-storage chunks (fakesnow returns one), stage uploads to S3/Azure/GCS (a local bucket here), and concurrent
sessions (one in-memory DuckDB).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.sample_data import SampleData, generate, write_sample_data
from marketing_pipelines.warehouse import Warehouse
from tests import fakesnow_shims

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")]

USERS, SEED = 400, 11
API_KEY = "sk-test-snowflake-0123456789"
REFRESH_JOB, INGEST_JOB = "refresh_marketing_data_job", "ingest_signups_job"

COUNTED = [
    *(("raw", t) for t in ("gitlab_users", "crm_persons", "marketo_unsubscribes", "cs_accounts", "cs_contacts")),
    ("raw", "trial_signup_events"),
    ("raw", "free_registration_events"),
    ("staging", "stg_crm__persons"),
    ("staging", "int_crm_persons_merged"),
    ("staging", "stg_signups__free_registration_events"),
    ("marts", "dim_initial_source"),
    ("marts", "dim_lead_status"),
    ("marts", "initial_source_history"),
    ("marts", "marketing_contacts"),
    ("marts", "marketing_contact_namespace_detail"),
    ("audiences", "iterable_user_audience"),
    ("audiences", "iterable_trial_events"),
    ("ops", "initial_source_history_audit"),
    ("ops", "quarantine"),
    ("ops", "sync_state"),
    ("ops", "sync_rejections"),
    ("ops", "outbox"),
]


@dataclass
class EngineRun:
    """What one engine made of the pipeline: its warehouse, the Dagster results and a snapshot of the numbers."""

    warehouse: Warehouse
    refreshes: list[dg.ExecuteInProcessResult]
    ingest: dg.ExecuteInProcessResult
    live_sync: dg.ExecuteInProcessResult
    rejected_emails: list[str]
    numbers: dict[str, Any]


def landed_files_config(landing: Path) -> dict[str, Any]:
    """Run config that ingests every landed file at once (the sensor asks for one file a run)."""
    from marketing_pipelines.defs.signups.sensors import ASSET_OF_KIND

    files = {kind: sorted(str(p) for p in (landing / kind).glob("*.jsonl")) for kind in ASSET_OF_KIND}
    return {"ops": {ASSET_OF_KIND[kind]: {"config": {"files": paths}} for kind, paths in files.items()}}


def run_engine(env: dict[str, str], data: SampleData, landing: Path, *, refreshes: int) -> EngineRun:
    """The whole pipeline on the engine `env` selects: the warehouse resource holds the settings in `env`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LANDING_DIR", str(landing))
        from marketing_pipelines.definitions import build_definitions
        from marketing_pipelines.defs.iterable.assets import iterable_user_sync
        from marketing_pipelines.resources import IterableResource, build_resources, warehouse_resource_from

        resource = warehouse_resource_from(env)
        warehouse = resource.get_warehouse()
        write_sample_data(data, warehouse, landing)
        definitions = build_definitions(build_resources({}, warehouse=resource))
        instance = dg.DagsterInstance.ephemeral()
        runs = [
            definitions.resolve_job_def(REFRESH_JOB).execute_in_process(instance=instance, raise_on_error=False)
            for _ in range(refreshes)
        ]
        ingest = definitions.resolve_job_def(INGEST_JOB).execute_in_process(
            run_config=landed_files_config(landing), instance=instance, raise_on_error=False
        )
        rejected = [email for (email,) in warehouse.query(AUDIENCE_EMAILS_SQL)]
        with IterableEmulator(api_key=API_KEY, invalid_emails=set(rejected)) as emulator:
            iterable = IterableResource(api_key=API_KEY, base_url=emulator.base_url)
            live = dg.materialize(
                [iterable_user_sync],
                resources=build_resources({}, warehouse=resource, iterable=iterable),
                instance=instance,
                raise_on_error=False,
            )
        return EngineRun(warehouse, runs, ingest, live, rejected, numbers(warehouse))


AUDIENCE_EMAILS_SQL = "select email from audiences.iterable_user_audience order by email limit 2"


def numbers(warehouse: Warehouse) -> dict[str, Any]:
    """Row counts and the sync/ingestion ledgers, in engine-neutral Python values."""
    counts = warehouse.row_counts(COUNTED)
    ledgers = {
        "sync_runs": "select destination, mode, sum(considered), sum(unchanged), sum(sent), sum(accepted), "
        "sum(rejected) from ops.sync_runs group by destination, mode order by destination, mode",
        "outbox": "select destination, sum(record_count) from ops.outbox group by destination order by destination",
        "rejections": "select destination, record_key, reason, attempts, resolved from ops.sync_rejections "
        "order by destination, record_key",
        "quarantine": "select reason, count(*) from ops.quarantine group by reason order by reason",
    }
    result: dict[str, Any] = {f"{s}.{t}": counts.get((s, t)) for s, t in COUNTED}
    for name, sql in ledgers.items():
        result[name] = [tuple(_plain(v) for v in row) for row in warehouse.query(sql)]
    return result


def _plain(value: Any) -> Any:
    """Engine types to plain Python (Snowflake NUMBER sums come back as Decimal, DuckDB ones as int)."""
    if hasattr(value, "as_integer_ratio") and not isinstance(value, bool | float):
        return int(value)
    return value


def check_outcomes(result: dg.ExecuteInProcessResult) -> dict[str, tuple[bool, str, Any]]:
    """Every asset check evaluated in a run: passed, severity and failing_records (Python rules), by name."""
    outcomes = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            failing = evaluation.metadata.get("failing_records")
            outcomes[evaluation.check_name] = (
                evaluation.passed,
                evaluation.severity.value,
                failing.value if failing is not None else None,
            )
    return outcomes


def row_count_metadata(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    """`dagster/row_count` of every materialization of a run, by asset."""
    return {
        event.asset_key.to_user_string(): event.materialization.metadata["dagster/row_count"].value
        for event in result.get_asset_materialization_events()
        if "dagster/row_count" in event.materialization.metadata
    }


@pytest.fixture(scope="module")
def fakesnow_env() -> Iterator[dict[str, str]]:
    """One fakesnow server for the module, as the `SNOWFLAKE_*` settings point at it."""
    with fakesnow_shims.server() as connection:
        yield fakesnow_shims.snowflake_env(connection)


@pytest.fixture(scope="module")
def engines(fakesnow_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, EngineRun]]:
    data = generate(users=USERS, seed=SEED, as_of=dt.datetime.now(dt.UTC).date())
    duck_root = tmp_path_factory.mktemp("duckdb")
    duckdb_env = {"MARKETING_WAREHOUSE": "duckdb", "DUCKDB_PATH": str(duck_root / "warehouse.duckdb")}
    runs = {
        "duckdb": run_engine(duckdb_env, data, duck_root / "landing", refreshes=1),
        "snowflake": run_engine(fakesnow_env, data, tmp_path_factory.mktemp("snowflake") / "landing", refreshes=2),
    }
    yield runs
    for run in runs.values():
        run.warehouse.close()


def test_every_run_succeeds_on_snowflake(engines):
    snowflake = engines["snowflake"]
    for result in [*snowflake.refreshes, snowflake.ingest, snowflake.live_sync]:
        failures = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert result.success, f"{result.job_def.name} failed in {failures}"


def test_snowflake_holds_the_same_rows_and_ledgers_as_duckdb(engines):
    duckdb, snowflake = engines["duckdb"].numbers, engines["snowflake"].numbers
    assert duckdb["marts.marketing_contacts"] > 0 and duckdb["audiences.iterable_user_audience"] > 0
    assert duckdb["raw.free_registration_events"] > 0 and duckdb["ops.quarantine"] > 0
    differences = {name: (duckdb[name], snowflake[name]) for name in duckdb if duckdb[name] != snowflake[name]}
    # The second Snowflake refresh adds one more dry run of each sync (an extra outbox and sync_runs row each), and
    # one more attempt at each record the Gainsight syncs skip as invalid (recorded again every run).
    expected_extra = {"ops.outbox", "outbox", "sync_runs", "rejections"}
    assert set(differences) <= expected_extra, differences
    keys = {name: [row[:3] for row in engines[name].numbers["rejections"]] for name in engines}
    assert keys["duckdb"] == keys["snowflake"]


def test_dbt_row_counts_and_rule_checks_match_duckdb(engines):
    duckdb, snowflake = engines["duckdb"].refreshes[0], engines["snowflake"].refreshes[0]
    assert row_count_metadata(snowflake) == row_count_metadata(duckdb)
    assert check_outcomes(snowflake) == check_outcomes(duckdb)
    failed_errors = [n for n, (ok, severity, _) in check_outcomes(snowflake).items() if not ok and severity == "ERROR"]
    assert failed_errors == []
    warned = {name for name, (ok, _, failing) in check_outcomes(snowflake).items() if not ok and failing}
    assert {"crm_initial_source_unknown", "crm_lead_status_unknown", "crm_initial_source_overwritten"} <= warned


def test_second_snowflake_run_keeps_the_initial_source_history_and_passes_its_audit(engines):
    snowflake = engines["snowflake"]
    first, second = snowflake.refreshes
    assert (
        row_count_metadata(second)["marts/initial_source_history"]
        == row_count_metadata(first)["marts/initial_source_history"]
    )
    assert check_outcomes(second)["initial_source_immutable"][0] is True
    numbers = snowflake.numbers
    assert numbers["ops.initial_source_history_audit"] == numbers["marts.initial_source_history"] > 0


def test_dry_run_syncs_send_every_audience_row_to_the_outbox_on_snowflake(engines):
    snowflake = engines["snowflake"]
    audience = snowflake.numbers["audiences.iterable_user_audience"]
    dry_runs = {row[0]: row[1:] for row in snowflake.numbers["sync_runs"] if row[1] == "dry-run"}
    refreshes = len(snowflake.refreshes)
    _, considered, unchanged, sent, accepted, rejected = dry_runs["iterable_users"]
    assert (considered, unchanged, sent, accepted, rejected) == (refreshes * audience, 0, refreshes * audience, 0, 0)
    assert dict(snowflake.numbers["outbox"])["iterable_users"] == refreshes * audience


def test_live_sync_on_snowflake_marks_accepted_records_and_records_the_rejected(engines):
    snowflake = engines["snowflake"]
    audience = snowflake.numbers["audiences.iterable_user_audience"]
    assert snowflake.numbers["ops.sync_state"] == audience - 2
    expected = [("iterable_users", email, "invalidEmails", 1, False) for email in snowflake.rejected_emails]
    assert [row for row in snowflake.numbers["rejections"] if row[0] == "iterable_users"] == expected
    (live,) = [row for row in snowflake.numbers["sync_runs"] if row[:2] == ("iterable_users", "live")]
    assert live[2:] == (audience, 0, audience, audience - 2, 2)


def test_landed_event_files_load_once_and_quarantine_bad_lines_on_snowflake(engines):
    """The daily refresh catches up every landed file; the sensor's job asking for the same files loads nothing."""
    duckdb, snowflake = engines["duckdb"], engines["snowflake"]

    def ingestion_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
        events = result.get_asset_materialization_events()
        return {event.asset_key.to_user_string(): event.materialization.metadata for event in events}

    caught_up = ingestion_metadata(snowflake.refreshes[0])["raw/free_registration_events"]
    assert caught_up["mode"].value == "catch-up"
    assert caught_up["loaded"].value == snowflake.numbers["raw.free_registration_events"] > 0
    assert caught_up["quarantined"].value > 0
    again = ingestion_metadata(snowflake.ingest)["raw/free_registration_events"]
    assert (again["loaded"].value, again["quarantined"].value) == (0, 0)
    assert snowflake.numbers["quarantine"] == duckdb.numbers["quarantine"]


def column_schemas(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, str]]:
    """`dagster/column_schema` of every materialization of a run: each asset's columns and their types."""
    return {
        event.asset_key.to_user_string(): {
            column.name: column.type
            for column in event.materialization.metadata["dagster/column_schema"].schema.columns
        }
        for event in result.get_asset_materialization_events()
        if "dagster/column_schema" in event.materialization.metadata
    }


def test_dbt_assets_carry_typed_columns_and_failing_rows_as_on_duckdb(engines):
    duckdb, snowflake = (column_schemas(engines[name].refreshes[0]) for name in ("duckdb", "snowflake"))
    assert "marts/marketing_contacts" in snowflake and set(snowflake) == set(duckdb)
    for key, columns in snowflake.items():
        assert list(columns) == list(duckdb[key]), key
        assert all(kind and kind != "?" for kind in columns.values()), (key, columns)
    failing = {name: failing_rows(engines[name].refreshes[0]) for name in engines}
    assert failing["snowflake"] and failing["snowflake"] == failing["duckdb"]


def failing_rows(result: dg.ExecuteInProcessResult) -> dict[str, list[dict[str, Any]]]:
    """The failing rows each failed dbt test of a run shows, by check."""
    return {
        event.event_specific_data.check_name: [
            {name: str(value) for name, value in row.data.items()}
            for row in event.event_specific_data.metadata["failing_rows"].records
        ]
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and "failing_rows" in event.event_specific_data.metadata
    }
