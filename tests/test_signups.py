"""Signup events: line validation, ingestion with quarantine and de-duplication, and the trackBulk event sync."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from pathlib import Path
from unittest import mock

import dagster as dg
import pytest

from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.clients.iterable import BULK_UPDATE_USERS, TRACK_BULK, IterableClient
from marketing_pipelines.defs.iterable.checks import free_registrations_only_for_company
from marketing_pipelines.defs.signups.assets import free_registration_events, trial_signup_events
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.signups.tables import create_tables_sql, event_column_types
from marketing_pipelines.signups.validation import validate_line
from marketing_pipelines.sync import Api, Outbox, run_sync
from marketing_pipelines.sync.iterable import TRIAL_EVENTS, iterable_event_id
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.spec import validate_request
from tests.support.dbt import run_dbt
from tests.support.jobs import signup_sensor_tick
from tests.support.raw import load_raw_rows
from tests.support.signups import event as signup_event
from tests.support.warehouses import copy_warehouse

API_KEY = "sk-test-0123456789abcdef"
#: What differs from the signup scenario's events: a trial start date and another reason.
TRIAL = {"latest_trial_start_date": "2026-11-20", "signupReason": "I want to store my code"}
#: What the signup pushes read: the event audience and the Marketo unsubscribes (dbt selection).
SIGNUP_VIEWS = "+audiences.iterable_trial_events +stg_marketo__unsubscribes +marketing_contacts"


def event(event_id: str, **overrides) -> dict:
    """A valid trial of a company namespace, at `<event_id>@example.com`, set up for a company."""
    fields = {"email": f"{event_id}@example.com", **TRIAL, "setup_for_company": True}
    return signup_event(event_id, **{**fields, **overrides})


def line(payload) -> str:
    return json.dumps(payload)


# -- validation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{not json", "not JSON"),
        ("", "empty line"),
        ("[1, 2]", "not a JSON object"),
        (line({k: v for k, v in event("a").items() if k != "email"}), "email"),
        (line({k: v for k, v in event("a").items() if k != "event_id"}), "event_id"),
        (line(event("a", latest_trial_start_date="31/02/2024")), "latest_trial_start_date"),
        (line(event("a", latest_trial_start_date="2026-02-30")), "latest_trial_start_date"),
        (line(event("a", latest_trial_start_date="2999-01-01")), "latest_trial_start_date"),
        (line(event("a", occurred_at="2026-02-30T25:61:00Z")), "occurred_at"),
        (line(event("a", companyNamespace="yes")), "companyNamespace"),
        (line(event("a", email="no-at-sign.example.com")), "email"),
        (line(event("a", employeeBucket="9000+")), "employeeBucket"),
        (line(event("a", user_id="7")), "user_id"),
        (line(event("a", namespace_id=1.5)), "namespace_id"),
        (line(event("a", country=42)), "country"),
        (line(event("a", company="x" * 2_000_000)), "longer than"),
    ],
)
def test_validation_reason_names_the_field(text, field):
    result = validate_line(text, today=dt.date(2026, 11, 23))
    assert isinstance(result, str) and field in result


def test_a_valid_line_fills_every_event_column_of_the_source_definition():
    result = validate_line(line(event("a", state="Bavaria")), today=dt.date(2026, 11, 23))
    assert result == {
        "event_id": "a",
        "occurred_at": dt.datetime(2026, 11, 20, 10, 0),
        "email": "a@example.com",
        "user_id": 7,
        "namespace_id": 10,
        "company": "Acme",
        "company_namespace": True,
        "country": "Germany",
        "employee_bucket": "100-499",
        "first_name": "Jane",
        "last_name": "Doe",
        "latest_trial_start_date": dt.date(2026, 11, 20),
        "signup_reason": "I want to store my code",
        "state": "Bavaria",
        "user_role": "other",
        "setup_for_company": True,
    }
    loader_columns = ["source_file", "line_number", "loaded_at"]
    assert list(result) + loader_columns == list(event_column_types())


def test_names_with_quotes_emoji_and_sql_load_verbatim():
    result = validate_line(line(event("a", lastName="O'Brien; DROP TABLE raw.x; --", firstName="Zoë 🚀")))
    assert isinstance(result, dict)
    assert result["last_name"] == "O'Brien; DROP TABLE raw.x; --" and result["first_name"] == "Zoë 🚀"
    assert result["occurred_at"] == dt.datetime(2026, 11, 20, 10, 0)


# -- ingestion ------------------------------------------------------------------------------------------------


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def ingest(warehouse_path: Path, *files: Path) -> dg.ExecuteInProcessResult:
    """Run both ingestion assets on ``files`` (as the sensor's run does), with LANDING_DIR their landing folder."""
    by_asset: dict[str, list[str]] = {"raw__trial_signup_events": [], "raw__free_registration_events": []}
    for path in files:
        asset = "raw__trial_signup_events" if path.parent.name == "trial_signups" else "raw__free_registration_events"
        by_asset[asset].append(str(path))
    with mock.patch.dict(os.environ, {"LANDING_DIR": str(files[0].parent.parent)} if files else {}):
        return dg.materialize(
            [trial_signup_events, free_registration_events],
            run_config={"ops": {name: {"config": {"files": paths}} for name, paths in by_asset.items()}},
            resources={"warehouse": WarehouseResource(duckdb_path=str(warehouse_path))},
        )


def write(root: Path, kind: str, name: str, content: str | bytes) -> Path:
    path = root / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    materialization = result.asset_materializations_for_node(key)[0]
    return {name: value.value for name, value in materialization.metadata.items()}


def test_ingestion_loads_good_lines_and_quarantines_bad_ones_with_file_line_and_reason(tmp_path, warehouse_path):
    lines = [
        line(event("good-1")),
        "{not json",
        "",
        "[1]",
        line(event("bad-date", latest_trial_start_date="2026-13-01")),
        line(event("good-2", lastName="O'Brien; DROP TABLE raw.trial_signup_events; --")),
        line(event("good-1")),  # duplicate within the file
        line(event("bad-bool", companyNamespace="yes")),
    ]
    path = write(tmp_path / "landing", "trial_signups", "t1.jsonl", "\n".join(lines) + "\n")
    result = ingest(warehouse_path, path)
    assert result.success
    meta = metadata(result, "raw__trial_signup_events")
    assert (meta["lines_read"], meta["loaded"], meta["duplicates"], meta["quarantined"]) == (8, 2, 1, 5)
    assert all("@" not in row["email"] or "***" in row["email"] for row in meta["preview"])

    db = DuckDBWarehouse(warehouse_path)
    loaded = db.query("select event_id, last_name from raw.trial_signup_events order by event_id")
    assert loaded == [("good-1", "Doe"), ("good-2", "O'Brien; DROP TABLE raw.trial_signup_events; --")]
    quarantined = db.query("select file, line_number, reason from ops.quarantine order by line_number")
    assert [(Path(f).name, n) for f, n, _ in quarantined] == [("t1.jsonl", n) for n in (2, 3, 4, 5, 8)]
    reasons = [reason for _, _, reason in quarantined]
    assert reasons[0].startswith("not JSON") and reasons[1] == "empty line"
    assert "latest_trial_start_date" in reasons[3] and "companyNamespace" in reasons[4]


def test_duplicate_event_in_a_later_file_is_loaded_once(tmp_path, warehouse_path):
    first = write(tmp_path / "landing", "free_registrations", "f1.jsonl", line(event("e1")) + "\n")
    second = write(
        tmp_path / "landing", "free_registrations", "f2.jsonl", line(event("e1")) + "\n" + line(event("e2")) + "\n"
    )
    ingest(warehouse_path, first)
    result = ingest(warehouse_path, second)
    meta = metadata(result, "raw__free_registration_events")
    assert (meta["loaded"], meta["duplicates"]) == (1, 1)
    db = DuckDBWarehouse(warehouse_path)
    assert db.query("select event_id, count(*) from raw.free_registration_events group by 1 order by 1") == [
        ("e1", 1),
        ("e2", 1),
    ]


def test_non_utf8_line_is_quarantined_and_the_rest_of_the_file_loads(tmp_path, warehouse_path):
    content = line(event("ok")).encode() + b"\n" + b'{"event_id": "\xff\xfe"}\n'
    path = write(tmp_path / "landing", "trial_signups", "latin.jsonl", content)
    meta = metadata(ingest(warehouse_path, path), "raw__trial_signup_events")
    assert (meta["loaded"], meta["quarantined"]) == (1, 1)
    (reason,) = DuckDBWarehouse(warehouse_path).query("select reason from ops.quarantine")[0]
    assert "UTF-8" in reason


def test_file_still_being_written_is_retried_not_quarantined(tmp_path, warehouse_path):
    from marketing_pipelines.signups.ingest import IncompleteFile, ensure_tables, ingest_file

    text = line(event("ok")) + "\n" + line(event("half"))[:40]
    path = write(tmp_path / "landing", "trial_signups", "partial.jsonl", text)
    ensure_tables(DuckDBWarehouse(warehouse_path))
    with pytest.raises(IncompleteFile):
        ingest_file(DuckDBWarehouse(warehouse_path), path)
    db = DuckDBWarehouse(warehouse_path)
    assert db.query("select count(*) from ops.quarantine") == [(0,)]
    assert db.query("select count(*) from ops.ingested_files") == [(0,)]


def test_dbt_hook_creates_the_same_raw_event_columns_as_the_ingestion(tmp_path):
    path = tmp_path / "hook.duckdb"
    run_dbt(["run", "--select", "stg_signups__trial_signup_events"], path)
    columns = DuckDBWarehouse(path).query(
        "select column_name, lower(data_type) from information_schema.columns "
        "where table_schema = 'raw' and table_name = 'free_registration_events' order by ordinal_position"
    )
    assert columns == list(event_column_types().items())
    ingestion = tmp_path / "ingestion.duckdb"
    DuckDBWarehouse(ingestion).execute(create_tables_sql())
    assert (
        DuckDBWarehouse(ingestion).query(
            "select column_name, lower(data_type) from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'free_registration_events' order by ordinal_position"
        )
        == columns
    )
    staged = DuckDBWarehouse(path).query(
        "select column_name from information_schema.columns "
        "where table_schema = 'staging' and table_name = 'stg_signups__trial_signup_events' order by ordinal_position"
    )
    assert [name for (name,) in staged] == [
        "event_key",
        "event_kind",
        "event_id",
        "occurred_at",
        "email",
        "user_id",
        "namespace_id",
        "company",
        "is_company_namespace",
        "country",
        "employee_bucket",
        "first_name",
        "last_name",
        "latest_trial_start_date",
        "signup_reason",
        "state",
        "user_role",
        "source_file",
        "line_number",
        "loaded_at",
    ]


# -- audience and event sync --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_audience(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two landed files ingested and the audience built once (dbt is slow); each test gets a copy."""
    root = tmp_path_factory.mktemp("signups")
    warehouse_path = root / "warehouse.duckdb"
    landing = root / "landing"
    trial = write(
        landing,
        "trial_signups",
        "t.jsonl",
        "".join(line(event(f"trial-{i}", companyNamespace=i % 2 == 0)) + "\n" for i in range(5)),
    )
    free = write(
        landing,
        "free_registrations",
        "f.jsonl",
        "".join(
            line(event(f"free-{i}", companyNamespace=i % 2 == 0, latest_trial_start_date=None)) + "\n" for i in range(6)
        ),
    )
    load_raw_rows(DuckDBWarehouse(warehouse_path), {})  # every raw table, empty (Marketo unsubscribes among them)
    assert ingest(warehouse_path, trial, free).success
    run_dbt(["build", "--select", SIGNUP_VIEWS], warehouse_path)
    return warehouse_path


@pytest.fixture
def events_audience(built_audience: Path, tmp_path: Path) -> DuckDBWarehouse:
    return copy_warehouse(built_audience, tmp_path / "audience.duckdb")


def sync(warehouse: DuckDBWarehouse, emulator: IterableEmulator | None):
    client = IterableClient(API_KEY, emulator.base_url, track_bulk_per_second=50) if emulator else None
    return run_sync(warehouse, TRIAL_EVENTS, Outbox() if client is None else Api(client), run_id="t")


def test_personal_free_registrations_never_reach_the_audience(events_audience):
    rows = events_audience.query("select event_id, event_name from audiences.iterable_trial_events order by 1")
    assert rows == [
        ("free-0", "saasFreeRegistration"),
        ("free-2", "saasFreeRegistration"),
        ("free-4", "saasFreeRegistration"),
        *((f"trial-{i}", "saasTrial") for i in range(5)),
    ]
    # the check reads the free registrations from staging: the personal ones the view left out are the rule
    # working, so it passes and names them in its metadata
    check = free_registrations_only_for_company(WarehouseResource(duckdb_path=str(events_audience.path)))
    assert check.passed
    assert check.metadata["free_registrations_considered"].value == 6
    assert check.metadata["personal_left_out"].value == 3 and check.metadata["personal_share"].value == 0
    named = check.metadata["personal_left_out_sample"].value
    assert [r["event_key"] for r in named] == [f"free_registrations:free-{i}" for i in (1, 3, 5)]
    assert {r["email"] for r in named} == {"f***@example.com"}  # masked


def test_event_sync_sends_each_event_once_in_spec_valid_requests(events_audience):
    with IterableEmulator(api_key=API_KEY) as emulator:
        first = sync(events_audience, emulator)
        second = sync(events_audience, emulator)
        bodies = [body for path, body in emulator.received_bodies if path == TRACK_BULK]
    assert (first.sent, first.accepted, first.rejected) == (8, 8, 0)
    assert (second.sent, second.unchanged) == (0, 8)
    assert len(bodies) == 1
    for body in bodies:
        validate_request(TRACK_BULK, body)
    assert set(emulator.event_receipts.values()) == {1}
    assert set(emulator.events) == {iterable_event_id(f"trial_signups:trial-{i}") for i in range(5)} | {
        iterable_event_id(f"free_registrations:free-{i}") for i in (0, 2, 4)
    }
    sent = bodies[0]["events"][0]
    assert set(sent) == {"email", "eventName", "id", "createdAt", "dataFields"}
    assert sent["createdAt"] == int(dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC).timestamp())
    assert Counter(e["eventName"] for e in bodies[0]["events"]) == {"saasTrial": 5, "saasFreeRegistration": 3}
    assert {"company", "companyNamespace", "employeeBucket", "latest_trial_start_date"} <= set(sent["dataFields"])


def test_event_rejected_by_iterable_is_recorded_and_retried(events_audience):
    with IterableEmulator(api_key=API_KEY, invalid_emails={"trial-1@example.com"}) as emulator:
        report = sync(events_audience, emulator)
    assert (report.accepted, report.rejected) == (7, 1)
    (key,) = events_audience.query("select record_key from ops.sync_rejections where not resolved")[0]
    assert key == "trial_signups:trial-1"
    with IterableEmulator(api_key=API_KEY) as emulator:
        retry = sync(events_audience, emulator)
    assert (retry.sent, retry.accepted) == (1, 1)


def test_state_keyed_by_bare_event_ids_is_adopted_so_an_upgrade_resends_nothing(events_audience):
    """Sync state written when events were keyed by `event_id` alone is re-keyed to `<kind>:<event_id>`: the
    events it marks as delivered are not sent again under their new Iterable ids; an open rejection is kept."""
    import pandas as pd

    from marketing_pipelines.sync.iterable import adopt_bare_event_keys
    from marketing_pipelines.sync.ops_tables import ensure_ops_tables

    ensure_ops_tables(events_audience)
    delivered = [f"trial-{i}" for i in (0, 2, 3, 4)] + [f"free-{i}" for i in (0, 2, 4)]
    now = dt.datetime(2026, 11, 20)
    state = pd.DataFrame(
        [("iterable_trial_events", key, "old-hash", now, "before-upgrade") for key in delivered],
        columns=["destination", "record_key", "payload_hash", "synced_at", "run_id"],
    )
    events_audience.write_frame("ops", "sync_state", state)
    events_audience.execute(
        "insert into ops.sync_rejections values ('iterable_trial_events', 'trial-1', '{}', 'invalid', "
        f"'{now}', '{now}', 1, false, null)"
    )
    for _ in range(2):  # idempotent
        adopt_bare_event_keys(events_audience, TRIAL_EVENTS.audience, TRIAL_EVENTS.name)
    keys = events_audience.query("select record_key from ops.sync_state order by 1")
    assert [key for (key,) in keys] == sorted(
        [f"trial_signups:{k}" for k in delivered[:4]] + [f"free_registrations:{k}" for k in delivered[4:]]
    )
    with IterableEmulator(api_key=API_KEY) as emulator:
        report = sync(events_audience, emulator)
    assert (report.sent, report.unchanged) == (1, 7)
    assert set(emulator.events) == {iterable_event_id("trial_signups:trial-1")}
    assert events_audience.query("select record_key, resolved from ops.sync_rejections") == [
        ("trial_signups:trial-1", True)
    ]


def test_event_sync_without_a_key_writes_the_outbox(events_audience):
    report = sync(events_audience, None)
    assert report.mode == "dry-run" and report.sent == 8
    (body,) = events_audience.query("select body from ops.outbox where destination = 'iterable_trial_events'")[0]
    validate_request(TRACK_BULK, json.loads(body))


# -- end to end ------------------------------------------------------------------------------------------------


def test_landed_file_reaches_iterable_once_through_sensor_and_job(built_sample, tmp_path, monkeypatch):
    """Sample data + landed files: each sensor run request, run in-process, updates one profile and tracks one event
    per valid line (personal free registrations: neither), profile before event; the same requests again send
    nothing new. No dbt runs in the job: the views were built once, as the daily job does."""
    from marketing_pipelines.definitions import build_definitions
    from marketing_pipelines.resources import IterableResource, build_resources

    warehouse_path = built_sample  # sample data, every model built
    landing = tmp_path / "landing"
    trials = [line(event(f"e2e-t{i}")) for i in range(3)]
    write(landing, "trial_signups", "t.jsonl", "\n".join([*trials, "[1, 2]"]) + "\n")
    frees = [line(event("e2e-f1")), "{broken", line(event("e2e-f2", companyNamespace=False))]
    write(landing, "free_registrations", "f.jsonl", "\n".join(frees) + "\n")
    with IterableEmulator(api_key=API_KEY) as emulator:
        monkeypatch.setenv("LANDING_DIR", str(landing))
        tick = signup_sensor_tick(WarehouseResource(kind="duckdb", duckdb_path=str(warehouse_path)))
        assert len(tick.run_requests) == 2
        resources = build_resources(
            {},
            warehouse=WarehouseResource(kind="duckdb", duckdb_path=str(warehouse_path)),
            iterable=IterableResource(api_key=API_KEY, base_url=emulator.base_url),
        )
        job = build_definitions(resources).resolve_job_def("ingest_signups_job")
        results = [
            job.execute_in_process(
                run_config=request.run_config, tags=request.tags, instance=dg.DagsterInstance.ephemeral()
            )
            for _ in range(2)
            for request in tick.run_requests
        ]
        assert all(result.success for result in results)
        profile_updates = Counter(
            user["email"]
            for path, body in emulator.received_bodies
            if path == BULK_UPDATE_USERS
            for user in body["users"]
        )
    valid = [f"e2e-t{i}" for i in range(3)] + ["e2e-f1"]
    assert profile_updates == {f"{event_id}@example.com": 1 for event_id in valid}
    keys = [f"trial_signups:{event_id}" for event_id in valid[:3]] + ["free_registrations:e2e-f1"]
    assert dict(emulator.event_receipts) == {iterable_event_id(key): 1 for key in keys}
    assert emulator.events[iterable_event_id("free_registrations:e2e-f1")]["eventName"] == "saasFreeRegistration"
    assert emulator.users["e2e-t0@example.com"]["employeeBucket"] == "100-499"
    for result in results:
        steps = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
        assert steps.index("iterable_signup_profile_sync") < steps.index("iterable_trial_event_sync")
        assert not any(step.endswith("_dbt_models") for step in steps)
    for result in results[2:]:  # the reruns
        for key in ("iterable_signup_profile_sync", "iterable_trial_event_sync"):
            (materialization,) = result.asset_materializations_for_node(key)
            assert materialization.metadata["sent"].value == 0
    (quarantined,) = DuckDBWarehouse(warehouse_path).query("select count(*) from ops.quarantine")[0]
    assert quarantined == 2


def test_daily_catch_up_loads_every_landed_file_once(tmp_path, monkeypatch):
    """Without a `files` setting (the daily job), every landed file not yet loaded is ingested, once."""
    warehouse_path = tmp_path / "warehouse.duckdb"
    landing = tmp_path / "landing"
    write(landing, "trial_signups", "a.jsonl", line(event("c-1")) + "\n")
    write(landing, "trial_signups", "b.jsonl", line(event("c-2")) + "\n" + line(event("c-3")) + "\n")
    write(landing, "trial_signups", "partial.jsonl", line(event("c-4")) + "\n" + '{"event_id": "c-5"')
    monkeypatch.setenv("LANDING_DIR", str(landing))
    resources = {"warehouse": WarehouseResource(duckdb_path=str(warehouse_path))}

    first = dg.materialize([trial_signup_events, free_registration_events], resources=resources)
    meta = metadata(first, "raw__trial_signup_events")
    assert (meta["mode"], meta["files"], meta["loaded"]) == ("catch-up", 3, 3)
    assert meta["still_being_written"] == [str(landing / "trial_signups" / "partial.jsonl")]

    write(landing, "trial_signups", "partial.jsonl", line(event("c-4")) + "\n" + line(event("c-5")) + "\n")
    second = dg.materialize([trial_signup_events, free_registration_events], resources=resources)
    meta = metadata(second, "raw__trial_signup_events")
    assert (meta["files"], meta["loaded"]) == (1, 2)
    db = DuckDBWarehouse(warehouse_path)
    assert db.query("select count(*), count(distinct event_id) from raw.trial_signup_events") == [(5, 5)]
    assert db.query("select count(*) from ops.ingested_files") == [(3,)]
