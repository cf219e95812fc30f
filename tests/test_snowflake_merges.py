"""The recursive merge walk on dbt-snowflake (a fakesnow server on loopback): chains of 5 and 50 and a cycle.

`tests/test_snowflake_pipeline.py` runs the sample data, whose merges are one hop; here the model's recursive CTE
walks a long chain and a cycle through dbt-snowflake, and the blocking merge check resolves them on Snowflake too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pandas as pd
import pytest

from marketing_pipelines.defs.transform import checks
from marketing_pipelines.resources import WarehouseResource, warehouse_resource_from
from marketing_pipelines.warehouse import Warehouse
from marketing_pipelines.warehouse.raw_tables import RAW_TABLES, create_raw_tables_sql
from tests import fakesnow_shims
from tests.support.dbt import run_dbt
from tests.support.raw import crm_person

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")]


def person(person_id: int, merged_into: int | None, source: str | None = None, day: int = 0) -> dict:
    updated_at = datetime(2024, 1, 1) + timedelta(days=day)
    return crm_person(person_id, updated_at, initial_source=source, merged_into_person_id=merged_into)


ROWS = [
    person(1, 2, "Webcast", day=0),
    person(2, 3, "Demo", day=5),
    person(3, 4),
    person(4, 5),
    person(5, None, "Trial - GitLab.com", day=9),
    person(10, 11),  # 10 -> 11 -> 12 -> 10, and 13 into the cycle
    person(11, 12),
    person(12, 10),
    person(13, 11),
]
# 1000 -> 1001 -> ... -> 1049: the record merged away first holds the oldest Initial Source
CHAIN_50 = [
    person(1000, 1001, "Webcast", day=0),
    *(person(1000 + i, 1000 + i + 1, "Demo", day=10 + i) for i in range(1, 49)),
    person(1049, None, "Trial - GitLab.com", day=100),
]
ROWS += CHAIN_50


@pytest.fixture(scope="module")
def snowflake() -> Iterator[tuple[Warehouse, WarehouseResource]]:
    with fakesnow_shims.server() as connection:
        # A database of its own: the emulator keeps its state for the whole test process.
        env = {**fakesnow_shims.snowflake_env(connection), "SNOWFLAKE_DATABASE": "CRM_MERGES"}
        resource = warehouse_resource_from(env)
        warehouse = resource.get_warehouse()
        warehouse.execute(create_raw_tables_sql(replace=True))
        warehouse.write_frame("raw", "crm_persons", pd.DataFrame(ROWS, columns=list(RAW_TABLES["crm_persons"])))
        result = run_dbt(["build", "--select", "+marketing_contacts"], None, settings=env, check=False)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        yield warehouse, resource
        warehouse.execute([f"drop schema if exists {schema} cascade" for schema in ("raw", "staging", "marts")])
        warehouse.close()


def test_the_recursive_walk_resolves_a_long_chain_and_a_cycle_on_snowflake(snowflake):
    warehouse, _ = snowflake
    rows = warehouse.query("select person_id, surviving_person_id, merge_issue from staging.int_crm_persons_merged")
    resolved = {int(person_id): (int(survivor), issue) for person_id, survivor, issue in rows}
    assert {resolved[i] for i in range(1, 6)} == {(5, None)}
    assert {resolved[i] for i in (10, 11, 12, 13)} == {(10, "cycle")}
    assert {resolved[i] for i in range(1000, 1050)} == {(1049, None)}
    contacts = warehouse.query(
        "select person_id, merged_record_count, initial_source from marts.marketing_contacts order by person_id"
    )
    assert [(int(p), int(n), s) for p, n, s in contacts] == [
        (5, 5, "Webcast"),
        (10, 4, None),
        (1049, 50, "Webcast"),  # the chain of 50 is one contact with the oldest Initial Source
    ]


def test_the_independent_merge_checks_pass_on_snowflake(snowflake):
    _, resource = snowflake
    assert checks.every_crm_record_in_one_contact(warehouse=resource).passed
    assert checks.merge_keeps_oldest_initial_source(warehouse=resource).passed
    assert not checks.crm_merge_cycles(warehouse=resource).passed
