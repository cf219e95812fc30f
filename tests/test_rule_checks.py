"""`violations_result`: one execution of a rule's query gives the count, the samples and the value counts."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from marketing_pipelines.defs.rule_checks import SAMPLE_SIZE, rows_result, violations_result
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.metadata import sample_records

WARN = dg.AssetCheckSeverity.WARN


def violation_rows(count: int) -> list[tuple[int | None, str | None, str | None]]:
    """`count` violations in reverse id order, 30 distinct values of different frequencies, NULL ids and values."""
    rows: list[tuple[int | None, str | None, str | None]] = [
        (person_id, f"person{person_id}@example.com", f"value {person_id % 30:02d}" if person_id % 7 else None)
        for person_id in range(count, 0, -1)
    ]
    return [*rows, (None, None, "value 01"), (None, "nobody@example.com", None)]


def load(path: Path, rows: list[tuple[int | None, str | None, str | None]]) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(path)
    warehouse.execute(
        [
            "create table violations (person_id bigint, email varchar, value varchar)",
            "create sequence evaluations",
            *(
                "insert into violations values ({}, {}, {})".format(
                    *("null" if field is None else f"'{field}'" if isinstance(field, str) else field for field in row)
                )
                for row in rows
            ),
        ]
    )
    return warehouse


def test_one_query_reports_what_the_python_path_reports(tmp_path: Path) -> None:
    rows = violation_rows(250)
    warehouse = load(tmp_path / "rules.duckdb", rows)
    from_sql = violations_result(warehouse, "select * from violations", severity=WARN, what="broken records")
    from_python = rows_result(rows, severity=WARN, what="broken records")
    assert not from_sql.passed
    assert from_sql.description == "252 broken records"
    assert from_sql.metadata == from_python.metadata
    assert from_sql.metadata["failing_records"].value == 252
    samples = sample_records(from_sql)
    assert [sample["person_id"] for sample in samples] == list(range(1, SAMPLE_SIZE + 1))
    assert samples[0]["email"] != "person1@example.com"  # masked
    values = from_sql.metadata["values"].value
    assert len(values) == SAMPLE_SIZE
    assert next(iter(values)) == "None"  # every seventh record has no value: the most frequent one


def test_the_violations_query_runs_once(tmp_path: Path) -> None:
    warehouse = load(tmp_path / "rules.duckdb", violation_rows(50))
    counted = "select person_id, email, value from violations where nextval('evaluations') > 0"
    result = violations_result(warehouse, counted, severity=WARN, what="broken records")
    assert result.metadata["failing_records"].value == 52
    assert warehouse.query("select nextval('evaluations')") == [(53,)]  # 52 rows read, by one execution


def test_no_violation_passes_with_empty_samples(tmp_path: Path) -> None:
    warehouse = load(tmp_path / "rules.duckdb", [])
    result = violations_result(warehouse, "select * from violations", severity=WARN, what="broken records")
    assert result.passed
    assert result.description == "No broken records."
    assert result.metadata["failing_records"].value == 0
    assert sample_records(result) == []
    assert result.metadata["values"].value == {}
