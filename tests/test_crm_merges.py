"""CRM merges of any depth and shape, lead status and score rules: real dbt builds on DuckDB, real checks.

The merge shapes (chains of 5 and 50, cycles of 2 and 3 with a tail, a dangling target, a self-merge) go through the
real dbt project; the checks are evaluated on the built warehouse, including the blocking merge checks that resolve
the chains on their own from the raw records.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from marketing_pipelines.defs.transform import checks
from marketing_pipelines.defs.transform.merge_resolution import resolve
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.dbt import build_from_raw, run_dbt
from tests.support.metadata import sample_records
from tests.support.raw import crm_person, load_raw_rows

START = datetime(2024, 1, 1)


def person(person_id: int, merged_into: int | None = None, source: str | None = None, day: int = 0, **fields):
    """One CRM record version; `day` days after START (the oldest version carries the oldest Initial Source)."""
    return crm_person(
        person_id,
        START + timedelta(days=day),
        initial_source=source,
        merged_into_person_id=merged_into,
        **fields,
    )


def chain(first: int, length: int) -> list[dict]:
    """first -> first+1 -> ... -> first+length-1; the record merged away first holds the oldest Initial Source."""
    rows = [person(first, first + 1, "Webcast", day=0)]
    rows += [person(first + i, first + i + 1, "Demo", day=10 + i) for i in range(1, length - 1)]
    rows.append(person(first + length - 1, None, "Trial - GitLab.com", day=100))
    return rows


CHAIN_5 = chain(100, 5)  # 100 -> ... -> 104
CHAIN_50 = chain(1000, 50)  # 1000 -> ... -> 1049
SHAPES = [
    # a 2-cycle: 11 into 10, 10 into 11
    person(10, 11, "Demo", day=5),
    person(11, 10, "Webcast", day=1),
    # a 3-cycle 21 -> 22 -> 20 -> 21, and 23 merged into it
    person(20, 21),
    person(21, 22, "Demo", day=3),
    person(22, 20),
    person(23, 21, "Webcast", day=2),
    # a chain into a person id that does not exist: 31 -> 30 -> 999
    person(30, 999, "Demo", day=3),
    person(31, 30, "Webcast", day=1),
    # a self-merge, and a record merged into it
    person(40, 40, "Demo"),
    person(41, 40, "Webcast", day=-1),
]
STATUS_AND_SCORE = [
    person(50, status="MQL", person_score="40"),  # MQL under 100 points
    person(51, status="Raw", person_score="150"),  # 150 points, still Raw
    person(52, status=" mql ", person_score="120"),  # canonical MQL, agrees with its score
    person(53, status="Inquiry", person_score="abc"),  # not a number: no score, no MQL, the build goes on
    person(54, status="Accepted", person_score="-5"),  # negative
    person(55, status="Qualified", person_score="100"),
]
RAW = CHAIN_5 + CHAIN_50 + SHAPES + STATUS_AND_SCORE


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> WarehouseResource:
    path = tmp_path_factory.mktemp("merges") / "warehouse.duckdb"
    warehouse = build_from_raw(path, {"crm_persons": RAW}, select="+marketing_contacts")  # a bad score must not stop it
    return WarehouseResource(duckdb_path=str(warehouse.path))


def query(resource: WarehouseResource, sql: str) -> list[tuple]:
    return resource.get_warehouse().query(sql)


def contact(resource: WarehouseResource, person_id: int) -> dict:
    frame = resource.get_warehouse().query_df("select * from marts.marketing_contacts where person_id = ?", [person_id])
    assert len(frame) == 1, f"one contact expected for {person_id}"
    return frame.iloc[0].to_dict()


def survivors(resource: WarehouseResource) -> dict[int, tuple[int, str | None]]:
    rows = query(resource, "select person_id, surviving_person_id, merge_issue from staging.int_crm_persons_merged")
    return {person_id: (survivor, issue) for person_id, survivor, issue in rows}


def samples(result: dg.AssetCheckResult) -> dict[int, str]:
    return {sample["person_id"]: sample["value"] for sample in sample_records(result)}


def test_every_record_is_in_exactly_one_contact(built):
    ((raw_ids,),) = query(built, "select count(distinct person_id) from raw.crm_persons")
    ((merged,),) = query(built, "select sum(merged_record_count) from marts.marketing_contacts")
    assert merged == raw_ids == len(RAW)
    result = checks.every_crm_record_in_one_contact(warehouse=built)
    assert result.passed, result.description


@pytest.mark.parametrize(("first", "length"), [(100, 5), (1000, 50)])
def test_long_chains_end_in_one_contact_with_the_oldest_initial_source(built, first, length):
    last = first + length - 1
    resolved = survivors(built)
    assert {resolved[first + i] for i in range(length)} == {(last, None)}
    kept = contact(built, last)
    assert kept["merged_record_count"] == length
    assert kept["initial_source"] == "Webcast", "the record merged away first set the oldest value"
    assert checks.merge_keeps_oldest_initial_source(warehouse=built).passed


def test_cycles_end_in_their_lowest_person_id(built):
    resolved = survivors(built)
    assert resolved[10] == resolved[11] == (10, "cycle")
    assert {resolved[i] for i in (20, 21, 22, 23)} == {(20, "cycle")}
    assert contact(built, 10)["merged_record_count"] == 2
    three = contact(built, 20)
    assert three["merged_record_count"] == 4 and three["initial_source"] == "Webcast"
    result = checks.crm_merge_cycles(warehouse=built)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert set(samples(result)) == {10, 11, 20, 21, 22, 23}
    assert samples(result)[23] == "merged into 21, in a cycle: kept as 20"


def test_a_dangling_target_leaves_the_last_existing_record(built):
    resolved = survivors(built)
    assert resolved[30] == resolved[31] == (30, "dangling_target")
    assert contact(built, 30)["merged_record_count"] == 2
    assert contact(built, 30)["initial_source"] == "Webcast"
    result = checks.crm_merge_dangling_targets(warehouse=built)
    assert not result.passed and set(samples(result)) == {30, 31}


def test_a_self_merge_is_its_own_survivor(built):
    resolved = survivors(built)
    assert resolved[40] == (40, "self_merge") and resolved[41] == (40, None)
    assert contact(built, 40)["merged_record_count"] == 2
    result = checks.crm_self_merges(warehouse=built)
    assert not result.passed and samples(result) == {40: "merged into itself"}


def test_lead_status_is_matched_ignoring_case_and_spaces(built):
    assert contact(built, 52)["lead_status"] == "MQL"
    ((raw,),) = query(built, "select raw_lead_status from staging.stg_crm__persons where person_id = 52")
    assert raw == " mql "
    assert checks.crm_lead_status_unknown(warehouse=built).passed


def test_mql_disagreements_are_named_both_ways(built):
    result = checks.mql_matches_score(warehouse=built)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert samples(result) == {50: "status MQL, score 40", 51: "status Raw, score 150"}
    assert not contact(built, 50)["is_mql"] and contact(built, 50)["lead_status"] == "MQL"
    assert contact(built, 51)["is_mql"] and contact(built, 51)["lead_status"] == "Raw"


def test_a_bad_score_is_kept_raw_and_named(built):
    for person_id in (53, 54):
        kept = contact(built, person_id)
        assert pd.isna(kept["person_score"])
        assert not kept["is_mql"]
    result = checks.crm_person_score_invalid(warehouse=built)
    assert not result.passed and samples(result) == {53: "abc", 54: "-5"}


def test_merge_checks_name_contacts_the_mart_got_wrong(built, tmp_path: Path):
    """The blocking checks resolve the chains themselves: a mart that lost, split or mis-sourced a set fails."""
    copy = tmp_path / "tampered.duckdb"
    copy.write_bytes(Path(built.duckdb_path).read_bytes())
    tampered = WarehouseResource(duckdb_path=str(copy))
    tampered.get_warehouse().execute(
        [
            "delete from marts.marketing_contacts where person_id = 20",  # the 3-cycle's contact is lost
            "update marts.marketing_contacts set merged_record_count = 4 where person_id = 104",
            "insert into marts.marketing_contacts by name select 1010 as person_id, 1 as merged_record_count",
            "update marts.marketing_contacts set initial_source = 'Demo' where person_id = 1049",
        ]
    )
    result = checks.every_crm_record_in_one_contact(warehouse=tampered)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    named = samples(result)
    assert {20, 21, 22, 23} <= set(named) and named[21] == "in no contact (merged set of 20)"
    assert named[104] == "contact holds 4 records, its merged set 5"
    assert named[1010] == "in its own contact, but merged into 1049"
    oldest = checks.merge_keeps_oldest_initial_source(warehouse=tampered)
    assert not oldest.passed
    assert samples(oldest) == {1049: "Demo != oldest Webcast (record 1000)"}


def test_a_chain_longer_than_the_bound_is_caught_by_the_independent_check(tmp_path: Path):
    warehouse = DuckDBWarehouse(tmp_path / "shallow.duckdb")
    load_raw_rows(warehouse, {"crm_persons": CHAIN_5})
    run_dbt(
        ["build", "--select", "+marketing_contacts", "--vars", json.dumps({"crm_merge_max_depth": 2})], warehouse.path
    )
    resource = WarehouseResource(duckdb_path=str(warehouse.path))
    assert survivors(resource)[100] == (102, "chain_too_deep")
    result = checks.every_crm_record_in_one_contact(warehouse=resource)
    assert not result.passed


def resolve_survivors(merge_targets: dict[int, int | None]) -> dict[int, int]:
    """`resolve` on a few records given as a dict: record -> its merge target."""
    ids = np.array(sorted(merge_targets), dtype=np.int64)
    targets = np.array([merge_targets[int(record)] or 0 for record in ids], dtype=np.int64)
    has_target = np.array([merge_targets[int(record)] is not None for record in ids], dtype=bool)
    return dict(zip(ids.tolist(), resolve(ids, targets, has_target).tolist(), strict=True))


def test_the_resolution_handles_every_shape_without_a_warehouse():
    targets = {1: 2, 2: 3, 3: None, 4: 5, 5: 4, 6: 5, 7: 999, 8: 8, 9: 8}
    assert resolve_survivors(targets) == {1: 3, 2: 3, 3: 3, 4: 4, 5: 4, 6: 4, 7: 7, 8: 8, 9: 8}


def _walk(targets: dict[int, int | None]) -> dict[int, int]:
    """The rule, walked record by record: the end of the chain, or a cycle's lowest id."""
    survivors = {}
    for start in targets:
        path, record = [], start
        while True:
            path.append(record)
            target = targets[record]
            if target is None or target == record or target not in targets:
                survivors[start] = record
                break
            if target in path:
                survivors[start] = min(path[path.index(target) :])
                break
            record = target
    return survivors


def test_the_array_resolution_agrees_with_a_record_by_record_walk_on_random_chains_and_cycles():
    """Cycles of every length (4 and 8 among them: pointer doubling returns to the start on those), long chains,
    tails into cycles, self-merges and missing targets."""
    rng = random.Random(7)
    for _ in range(20):
        ids = rng.sample(range(1, 10_000), 600)
        targets: dict[int, int | None] = {}
        for record in ids:
            roll = rng.random()
            if roll < 0.3:
                targets[record] = None
            elif roll < 0.35:
                targets[record] = record
            elif roll < 0.4:
                targets[record] = 20_000 + record  # no such record
            else:
                targets[record] = rng.choice(ids)
        assert resolve_survivors(targets) == _walk(targets)
    ring = {n: (n + 1) % 8 for n in range(8)}  # an 8-cycle
    chain = {n: n + 1 for n in range(100, 400)} | {400: None}  # 300 long
    assert resolve_survivors(ring | chain) == {n: 0 for n in range(8)} | {n: 400 for n in range(100, 401)}
