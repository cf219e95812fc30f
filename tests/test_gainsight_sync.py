"""The Gainsight syncs end to end: the shared sync engine + Gainsight client against the loopback emulator."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from devtools.gainsight_emulator import TENANT_WINDOW, GainsightEmulator
from marketing_pipelines.clients._http import ApiError, RetryPolicy, dumps_compact
from marketing_pipelines.clients.gainsight import COMPANY_UPSERT, MAX_RECORDS_PER_CALL, PEOPLE_UPSERT, GainsightClient
from marketing_pipelines.defs.gainsight.checks import (
    gainsight_company_sync_health,
    gainsight_person_sync_health,
)
from marketing_pipelines.resources import SyncHealthResource, WarehouseResource
from marketing_pipelines.resources.gainsight import GainsightResource
from marketing_pipelines.sync import Api, Destination, Outbox, run_sync
from marketing_pipelines.sync.gainsight import COMPANIES, PEOPLE, batched, company_payload
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.http import fast_retry
from tests.support.metadata import sample_records

ACCESS_KEY = "gs-access-0123456789abcdef"
ACCOUNTS = 120
#: A small tenant limit so pacing shows in a second or two: 4 calls in any 0.5 s.
CALLS, WINDOW = 4, 0.5


def companies(n: int, *, program: str = "enablement", skip: dict[int, str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "account_id": 60_000_000 + i,
                "account_name": f"Company {i:04d}",
                "carr": 1000.0 * i,
                "segment": "Tech Touch",
                "technical_account_manager": None,
                "account_owner_team": "EMEA",
                "products_purchased": "SaaS - Premium",
                "deployment_type": "SaaS",
                "support_level": "Standard",
                "program": program,
                "account_created_on": pd.Timestamp("2025-01-01") + pd.Timedelta(days=i),
                "renewal_date": pd.Timestamp("2027-01-01"),
                "skip_reason": (skip or {}).get(i),
            }
            for i in range(n)
        ]
    )


def recipients(n: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        for email, role, reason in (
            (f"admin{i}@example.com", "GitLab Admin", "gitlab_admin"),
            (f"owner{i}@example.com", "Owner", "saas_owner"),
        ):
            rows.append(
                {
                    "recipient_key": f"{60_000_000 + i}:{email}",
                    "account_id": 60_000_000 + i,
                    "account_name": f"Company {i:04d}",
                    "email": email,
                    "role": role,
                    "recipient_reason": reason,
                    "receives_surveys": reason == "gitlab_admin",
                    "program": "enablement",
                    "skip_reason": None,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.write_frame("audiences", "gainsight_program_companies", companies(ACCOUNTS), replace=True)
    warehouse.write_frame("audiences", "gainsight_program_recipients", recipients(ACCOUNTS), replace=True)
    return warehouse


def emulator(**kwargs) -> GainsightEmulator:
    return GainsightEmulator(access_key=ACCESS_KEY, calls_per_window=CALLS, window_seconds=WINDOW, **kwargs)


def sync(
    warehouse: DuckDBWarehouse,
    emu: GainsightEmulator | None,
    target: Destination[GainsightClient] = COMPANIES,
    *,
    max_records: int = MAX_RECORDS_PER_CALL,
):
    client = (
        GainsightClient(ACCESS_KEY, emu.base_url, calls_per_window=CALLS, window_seconds=WINDOW, retry=fast_retry())
        if emu
        else None
    )
    transport = Outbox() if client is None else Api(client)
    try:
        return run_sync(warehouse, batched(target, max_records), transport, run_id="test-run")
    finally:
        if client is not None:
            client.close()


def test_companies_go_out_in_calls_of_at_most_fifty_records(warehouse):
    with emulator() as emu:
        report = sync(warehouse, emu)
    assert (report.considered, report.sent, report.accepted, report.rejected) == (ACCOUNTS, ACCOUNTS, ACCOUNTS, 0)
    assert emu.records_per_call == [50, 50, 20]
    assert emu.records_received[COMPANY_UPSERT] == ACCOUNTS == len(emu.companies)
    stored = emu.company(Name="Company 0007")
    assert stored["GitLab_Account_ID__gc"] == 60_000_007 and str(stored["Arr"]) == "7000.00"
    assert stored["Customer_Segment__gc"] == "Tech Touch"
    assert stored["Customer_Program__gc"] == "enablement" and stored["OriginalContractDate"] == "2025-01-08"


def test_the_tenant_call_rate_holds_over_many_calls_and_the_emulator_never_throttles(warehouse):
    with emulator() as emu:
        report = sync(warehouse, emu, max_records=10)
        busiest = emu.max_accepted_in_any_window(TENANT_WINDOW)
    assert report.requests == 12 and report.accepted == ACCOUNTS
    assert busiest <= CALLS
    assert emu.status_counts[429] == 0 and report.retries == 0


def test_a_client_that_ignores_the_limit_gets_plain_text_429s_from_the_emulator(warehouse):
    with emulator() as emu:
        greedy = GainsightClient(
            ACCESS_KEY, emu.base_url, calls_per_window=1000, window_seconds=WINDOW, retry=RetryPolicy(max_retries=0)
        )
        with pytest.raises(ApiError) as raised:
            for _ in range(CALLS + 1):
                greedy.upsert_companies([{"Name": "Acme", "GitLab_Account_ID__gc": 1}])
    assert raised.value.status_code == 429 and "Too Many Requests" in raised.value.body_excerpt


def test_a_call_of_more_than_fifty_records_is_refused_by_client_and_emulator():
    with emulator() as emu:
        client = GainsightClient(ACCESS_KEY, emu.base_url)
        with pytest.raises(ValueError, match="at most 50"):
            client.upsert_companies([{"Name": f"C{i}"} for i in range(51)])
        with pytest.raises(ApiError) as raised:
            client.request_json("PUT", COMPANY_UPSERT, {"records": [{"Name": f"C{i}"} for i in range(51)]},
                                params={"keys": "Name"})  # fmt: skip
    assert raised.value.status_code == 400 and "at most 50" in raised.value.body_excerpt
    assert emu.companies == {}


def test_throttling_and_server_errors_are_retried_until_every_company_is_written_once(warehouse):
    with emulator(fault_rates={"429": 0.3, "500": 0.2}, seed=5) as emu:
        report = sync(warehouse, emu, max_records=10)
    assert report.accepted == ACCOUNTS and report.rejected == 0
    assert report.retries == emu.fault_counts["429"] + emu.fault_counts["500"] > 0
    assert len(emu.companies) == ACCOUNTS


def test_rejected_records_are_recorded_with_gainsights_reason_and_retried_next_run(warehouse):
    invalid = {"Company 0003", "Company 0077"}
    with emulator(invalid_company_names=invalid) as emu:
        first = sync(warehouse, emu)
        rejections = warehouse.query("select record_key, reason, resolved from ops.sync_rejections order by 1")
        emu.invalid_company_names.clear()
        emu.reset()
        second = sync(warehouse, emu)
    assert (first.accepted, first.rejected) == (ACCOUNTS - 2, 2)
    assert [(key, resolved) for key, _, resolved in rejections] == [("60000003", False), ("60000077", False)]
    assert all(reason.startswith("GS_2502: company 'Company 00") for _, reason, _ in rejections)
    assert (second.sent, second.accepted) == (2, 2) and {c["Name"] for c in emu.companies.values()} == invalid
    assert warehouse.query("select count(*) from ops.sync_rejections where not resolved") == [(0,)]


def test_a_rerun_with_nothing_changed_sends_nothing_and_a_change_sends_only_it(warehouse):
    with emulator() as emu:
        sync(warehouse, emu)
        sync(warehouse, emu, PEOPLE)
        calls = sum(emu.requests_by_path.values())
        quiet = [sync(warehouse, emu), sync(warehouse, emu, PEOPLE)]
        assert sum(emu.requests_by_path.values()) == calls
        changed = companies(ACCOUNTS)
        changed.loc[5, "program"] = "retention"
        warehouse.write_frame("audiences", "gainsight_program_companies", changed, replace=True)
        again = sync(warehouse, emu)
    assert [(r.sent, r.requests) for r in quiet] == [(0, 0), (0, 0)]
    assert quiet[1].unchanged == 2 * ACCOUNTS
    # one request (a new client does not know the previous sync's calls in the tenant window: a 429 may be retried)
    assert (again.sent, again.requests - again.retries) == (1, 1)
    assert emu.company(Name="Company 0005")["Customer_Program__gc"] == "retention"


def test_people_are_associated_with_their_company_and_need_it_to_exist_first(warehouse):
    with emulator() as emu:
        early = sync(warehouse, emu, PEOPLE)
        sync(warehouse, emu)
        late = sync(warehouse, emu, PEOPLE)
    assert early.rejected == 2 * ACCOUNTS and early.accepted == 0
    reason = warehouse.query("select reason from ops.sync_rejections where destination = 'gainsight_people' limit 1")
    assert reason[0][0].startswith("GS_3503: no Company with GitLab_Account_ID__gc 600")
    assert late.accepted == 2 * ACCOUNTS
    association = emu.association("admin4@example.com", GitLab_Account_ID__gc=60_000_004)
    assert association == {
        "Company_ID": emu.company(Name="Company 0004")["Gsid"],  # the lookup resolved the account id
        "Role__gc": "GitLab Admin",
        "Recipient_Reason__gc": "gitlab_admin",
        "Receives_Surveys__gc": True,
        "Customer_Program__gc": "enablement",
    }
    assert emu.association("owner4@example.com", Name="Company 0004")["Receives_Surveys__gc"] is False


def test_two_accounts_with_one_name_stay_two_companies_each_with_its_own_people(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "names.duckdb")
    frame = companies(3)
    frame.loc[[0, 1], "account_name"] = "Acme"
    frame.loc[0, "carr"], frame.loc[1, "carr"] = 900_000.0, 1_000.0
    people = recipients(3)
    people.loc[people["account_id"] < 60_000_002, "account_name"] = "Acme"
    shared = (people["account_id"] == 60_000_001) & (people["role"] == "GitLab Admin")
    people.loc[shared, "email"] = "admin0@example.com"  # one person, Admin of both
    people["recipient_key"] = people["account_id"].astype(str) + ":" + people["email"]
    warehouse.write_frame("audiences", "gainsight_program_companies", frame, replace=True)
    warehouse.write_frame("audiences", "gainsight_program_recipients", people, replace=True)
    with emulator() as emu:
        reports = [sync(warehouse, emu), sync(warehouse, emu, PEOPLE)]
    assert [(r.accepted, r.rejected) for r in reports] == [(3, 0), (6, 0)]
    acme = {c["GitLab_Account_ID__gc"]: str(c["Arr"]) for c in emu.find_companies(Name="Acme")}
    assert acme == {60_000_000: "900000.00", 60_000_001: "1000.00"}
    assert emu.association("admin0@example.com", GitLab_Account_ID__gc=60_000_000)["Role__gc"] == "GitLab Admin"
    assert emu.association("admin0@example.com", GitLab_Account_ID__gc=60_000_001)["Role__gc"] == "GitLab Admin"
    assert emu.association("owner1@example.com", GitLab_Account_ID__gc=60_000_001)["Role__gc"] == "Owner"
    assert ("owner1@example.com", emu.company(GitLab_Account_ID__gc=60_000_000)["Gsid"]) not in emu.company_people


def test_the_emulator_matches_companies_on_the_keys_of_the_call_as_gainsight_does():
    acme = [{"Name": "Acme", "GitLab_Account_ID__gc": 1, "Arr": 5}, {"Name": "Acme", "GitLab_Account_ID__gc": 2}]
    with emulator() as emu:
        client = GainsightClient(ACCESS_KEY, emu.base_url, calls_per_window=CALLS, window_seconds=WINDOW)
        by_name = client.request_json("PUT", COMPANY_UPSERT, {"records": acme}, params={"keys": "Name"})
        assert by_name["data"]["count"] == 2 and len(emu.companies) == 1, "keyed by name, the second overwrote"
        assert emu.company(Name="Acme")["GitLab_Account_ID__gc"] == 2
        emu.reset()
        assert client.upsert_companies(acme).written == 2 and len(emu.find_companies(Name="Acme")) == 2
        no_key = client.upsert_companies([{"Name": "Beta"}])
        with pytest.raises(ApiError) as raised:
            client.request_json("PUT", COMPANY_UPSERT, {"records": acme})
        client.close()
    assert no_key.failed == {0: "GS_2505: key field GitLab_Account_ID__gc has no value"}
    assert raised.value.status_code == 400 and "needs ?keys=" in raised.value.body_excerpt


def test_rows_with_a_skip_reason_are_rejected_with_it_and_the_rest_are_sent(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "skips.duckdb")
    skips = {2: "CARR is negative: -5", 9: "unknown deployment type: Dedicated"}
    warehouse.write_frame("audiences", "gainsight_program_companies", companies(20, skip=skips), replace=True)
    with emulator() as emu:
        report = sync(warehouse, emu)
    assert (report.accepted, report.rejected) == (18, 2)
    rejections = dict(warehouse.query("select record_key, reason from ops.sync_rejections"))
    assert rejections == {"60000002": "invalid record: CARR is negative: -5",
                          "60000009": "invalid record: unknown deployment type: Dedicated"}  # fmt: skip
    assert not emu.find_companies(Name="Company 0002") and len(emu.companies) == 18


def test_dry_run_writes_bodies_of_at_most_fifty_records_to_the_outbox_and_marks_nothing_synced(warehouse):
    report = sync(warehouse, None, PEOPLE)
    assert report.mode == "dry-run" and report.sent == 2 * ACCOUNTS and report.requests == 5
    rows = warehouse.query("select endpoint, body from ops.outbox")
    bodies = [json.loads(body) for _, body in rows]
    assert {endpoint for endpoint, _ in rows} == {PEOPLE_UPSERT}
    assert max(len(body["records"]) for body in bodies) == 50
    assert all(body["lookups"]["Company_ID"]["objectName"] == "Company" for body in bodies)
    assert warehouse.query("select count(*) from ops.sync_state") == [(0,)]


def test_dry_run_outbox_and_rejections_carry_carr_exactly_as_a_live_run_sends_it(warehouse):
    skipped = companies(ACCOUNTS, skip={2: "CARR is negative: -5.10"})
    warehouse.write_frame("audiences", "gainsight_program_companies", skipped, replace=True)
    warehouse.execute(
        [
            "alter table audiences.gainsight_program_companies alter carr type decimal(18, 2)",
            "update audiences.gainsight_program_companies set carr = 972765.41 where account_id = 60000001",
            "update audiences.gainsight_program_companies set carr = -5.10 where account_id = 60000002",
        ]
    )
    sync(warehouse, None)
    bodies = "".join(body for (body,) in warehouse.query("select body from ops.outbox"))
    assert '"Arr":972765.41,' in bodies, "the outbox holds the number a live run sends, not a string or a float"
    [(payload,)] = warehouse.query("select payload from ops.sync_rejections where record_key = '60000002'")
    assert json.loads(payload, parse_float=Decimal)["carr"] == Decimal("-5.10"), "the recorded row keeps the amount"


def test_the_access_key_never_appears_in_errors_logs_or_the_outbox(warehouse, caplog):
    caplog.set_level(logging.DEBUG)
    with GainsightEmulator(access_key="another-key") as emu, pytest.raises(ApiError) as raised:
        sync(warehouse, emu)
    assert raised.value.status_code == 401 and emu.requests_by_path[COMPANY_UPSERT] == 1, "a 401 is not retried"
    sync(warehouse, None)
    assert ACCESS_KEY not in str(raised.value) + repr(raised.value) + caplog.text
    assert ACCESS_KEY not in warehouse.query("select string_agg(body, '') from ops.outbox")[0][0]


def test_resource_without_a_key_is_dry_run_and_a_key_needs_the_tenant_domain():
    resource = GainsightResource()
    assert resource.is_dry_run and resource.get_client() is None
    resource = GainsightResource(access_key=ACCESS_KEY)
    with pytest.raises(dg.Failure, match="GAINSIGHT_BASE_URL"):
        resource.get_client()
    resource = GainsightResource(access_key=ACCESS_KEY, base_url="http://127.0.0.1:9")
    client = resource.get_client()
    assert client is not None and client.base_url == "http://127.0.0.1:9" and client.limiter.capacity == 100
    assert resource.get_client().limiter is client.limiter, "both syncs of a run share the tenant's call budget"
    with pytest.raises(ValueError):
        GainsightResource(records_per_call=51)


def test_amounts_are_json_numbers_with_exactly_their_digits():
    body = {"records": [{"Arr": Decimal("972765.41")}, {"Arr": Decimal("9999999999999999.99")}, {"Arr": None}]}
    raw = dumps_compact(body)
    assert raw == b'{"records":[{"Arr":972765.41},{"Arr":9999999999999999.99},{"Arr":null}]}'
    assert json.loads(raw, parse_float=Decimal) == body
    with pytest.raises(ValueError, match="not a JSON number"):
        dumps_compact({"Arr": Decimal("NaN")})


def test_a_double_from_the_driver_is_sent_in_exact_cents_and_text_is_refused():
    row = companies(1).iloc[0].to_dict()
    assert company_payload({**row, "carr": 972765.41})["Arr"] == Decimal("972765.41")
    assert str(company_payload({**row, "carr": Decimal("5.5")})["Arr"]) == "5.50"
    assert company_payload({**row, "carr": None})["Arr"] is None
    with pytest.raises(ValueError, match="not an amount"):
        company_payload({**row, "carr": "972765.41"})


def test_a_segment_outside_the_picklist_is_rejected_by_the_emulator(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "segments.duckdb")
    frame = companies(3)
    frame.loc[1, "segment"] = "Enterprise"
    warehouse.write_frame("audiences", "gainsight_program_companies", frame, replace=True)
    with emulator() as emu:
        report = sync(warehouse, emu)
    assert (report.accepted, report.rejected) == (2, 1)
    (reason,) = warehouse.query("select reason from ops.sync_rejections")[0]
    assert reason == "GS_2504: Customer_Segment__gc 'Enterprise' is not a picklist value"


#: Two poison companies in the first call of 50, one in the second; one poison person. Each fails its whole call.
POISON_COMPANIES = {"Company 0003", "Company 0010", "Company 0077"}
POISON_PERSON = "owner5@example.com"
REFUSED = "refused alone with HTTP 400: GS_1004: BadParams: "


def test_poison_records_are_isolated_and_every_other_company_and_person_is_written_in_the_same_run(warehouse):
    resource = WarehouseResource(duckdb_path=str(warehouse.path))
    with emulator(poison_company_names=POISON_COMPANIES, poison_emails={POISON_PERSON}) as emu:
        companies_run = sync(warehouse, emu)
        people_run = sync(warehouse, emu, PEOPLE)
        writes = Counter(emu.writes)
        company_check = gainsight_company_sync_health(warehouse=resource, sync_health=SyncHealthResource())
        person_check = gainsight_person_sync_health(warehouse=resource, sync_health=SyncHealthResource())
        emu.reset()
        rerun = sync(warehouse, emu)
        rerun_names = {
            r["Name"] for path, body in emu.received_bodies if path == COMPANY_UPSERT for r in body["records"]
        }

    assert (companies_run.accepted, companies_run.rejected, companies_run.isolated_records) == (ACCOUNTS - 3, 3, 3)
    assert 0 < companies_run.bisected_requests <= 2 * 3 * math.ceil(math.log2(50))
    assert companies_run.requests == 3 + companies_run.bisected_requests
    rejected = warehouse.query(
        "select record_key, reason from ops.sync_rejections where destination = 'gainsight_companies' order by 1"
    )
    assert rejected == [
        (f"6000{i:04d}", f"{REFUSED}records[0].Name 'Company {i:04d}' failed validation; nothing written")
        for i in (3, 10, 77)
    ]
    # people: the poison person is isolated; the people of the three missing companies fail one by one (data.errors)
    assert (people_run.accepted, people_run.rejected, people_run.isolated_records) == (2 * ACCOUNTS - 7, 7, 1)
    written = {key for kind, key in writes if kind == "Company"}
    assert written == {str(60_000_000 + i) for i in range(ACCOUNTS) if f"Company {i:04d}" not in POISON_COMPANIES}
    assert sum(kind == "Person" for kind, _ in writes) == 2 * ACCOUNTS - 7 and ("Person", POISON_PERSON) not in writes
    assert set(writes.values()) == {1}, "every record written once"
    # the runs succeeded; the WARN checks name the rejected records (e-mails masked) with Gainsight's reason
    assert not company_check.passed and company_check.severity == dg.AssetCheckSeverity.WARN
    assert [r["account_name"] for r in sample_records(company_check)] == sorted(POISON_COMPANIES)
    assert not person_check.passed and person_check.metadata["failing_records"].value == 7
    assert {
        "account_id": "60000005",
        "email": "o***@example.com",
        "reason": f"{REFUSED}records[0].Email 'o***@example.com' failed validation; nothing written",
    } in sample_records(person_check)
    # the rerun sends only the rejected companies, still refused
    assert rerun_names == POISON_COMPANIES and (rerun.sent, rerun.accepted, rerun.rejected) == (3, 0, 3)


def test_a_call_over_the_body_limit_is_split_and_a_company_too_large_alone_is_rejected(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "large.duckdb")
    rows = companies(ACCOUNTS)
    rows.loc[42, "support_level"] = "x" * 9_000
    warehouse.write_frame("audiences", "gainsight_program_companies", rows, replace=True)
    # calls of 50 companies (about 20 kB) go over this emulator's 8 kB limit; quarters of 12 or 13 fit
    with emulator(max_body_bytes=8_000) as emu:
        report = sync(warehouse, emu)
    assert (report.accepted, report.rejected, report.isolated_records) == (ACCOUNTS - 1, 1, 1)
    assert dict(warehouse.query("select record_key, reason from ops.sync_rejections")) == {
        "60000042": "refused alone with HTTP 413: GS_1005: BatchTooLarge: request body over 8000 bytes"
    }
    assert len(emu.companies) == ACCOUNTS - 1 and set(emu.writes.values()) == {1}
