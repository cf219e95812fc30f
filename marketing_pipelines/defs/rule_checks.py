"""Shared machinery for business-rule checks: run a violations query, report count, samples and values."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import yaml

from marketing_pipelines.paths import DBT_PROJECT_DIR
from marketing_pipelines.pii import mask_email
from marketing_pipelines.warehouse import Warehouse

SAMPLE_SIZE = 20

Violation = tuple[Any, Any, Any]
"""One violating record: ``(person_id, email, value)`` (or the columns ``labels`` names)."""


def dbt_project_var(name: str) -> Any:
    """The dbt var `name` as `dbt_project.yml` sets it: the value every run builds with (a run may override it
    with `--vars`). Read when a check runs, never at import, so a check and the models share one definition."""
    text = (DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8")
    variables = yaml.safe_load(text)["vars"]
    if name not in variables:
        raise KeyError(f"dbt_project.yml sets no var {name!r}")
    return variables[name]


def violations_summary_sql(violations_sql: str) -> str:
    """One query over ``violations_sql`` (evaluated once) for `violations_result`.

    Returns the up to 2 x `SAMPLE_SIZE` rows that are a sample (first by ``person_id``) or the first record of
    one of the most frequent values, each with ``failing`` (all violations), ``sample_rank`` (NULL when not a
    sample), ``value_rank`` (NULL when not a listed value) and ``value_count``. No violation: no row.
    """
    return f"""
    with violations as (
        select person_id, email, value from ({violations_sql}) as violations
    ),

    counted as (
        select
            person_id,
            email,
            value,
            count(*) over () as failing,
            count(*) over (partition by value) as value_count,
            row_number() over (order by person_id) as sample_rank,
            row_number() over (partition by value order by person_id) as value_row
        from violations
    ),

    ranked as (
        select
            counted.*,
            row_number() over (partition by value_row order by value_count desc, value) as value_rank
        from counted
    )

    select
        failing,
        person_id,
        email,
        value,
        case when sample_rank <= {SAMPLE_SIZE} then sample_rank end as sample_rank,
        case when value_row = 1 and value_rank <= {SAMPLE_SIZE} then value_rank end as value_rank,
        value_count
    from ranked
    where sample_rank <= {SAMPLE_SIZE}
       or (value_row = 1 and value_rank <= {SAMPLE_SIZE})
    """


def violations_result(
    warehouse: Warehouse,
    violations_sql: str,
    *,
    severity: dg.AssetCheckSeverity,
    what: str,
    labels: tuple[str, str, str] = ("person_id", "email", "value"),
) -> dg.AssetCheckResult:
    """Evaluate a rule from a query returning one row per violation: ``person_id, email, value``.

    The result carries the number of violations, up to 20 sample records (e-mails masked) and the values
    involved with their counts, so a reader can find and fix each record at the source. ``labels`` renames the
    three columns in the samples (e.g. ``account_id, account_name, value``); only an ``email`` is masked.
    The violations query runs once (`violations_summary_sql`).
    """
    rows = warehouse.query(violations_summary_sql(violations_sql))
    failing = int(rows[0][0]) if rows else 0
    samples = [(row[1], row[2], row[3]) for row in sorted((r for r in rows if r[4] is not None), key=lambda r: r[4])]
    values = [(row[3], int(row[6])) for row in sorted((r for r in rows if r[5] is not None), key=lambda r: r[5])]
    return _result(failing, samples, values, severity=severity, what=what, labels=labels)


def rows_result(
    violations: Sequence[Violation],
    *,
    severity: dg.AssetCheckSeverity,
    what: str,
    labels: tuple[str, str, str] = ("person_id", "email", "value"),
) -> dg.AssetCheckResult:
    """`violations_result` for violations a check computed in Python, one ``(person_id, email, value)`` each."""
    samples = sorted(violations, key=lambda violation: (violation[0] is None, violation[0]))[:SAMPLE_SIZE]
    counts = Counter(value for _, _, value in violations)
    values = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:SAMPLE_SIZE]
    return _result(len(violations), samples, values, severity=severity, what=what, labels=labels)


class ViolationTally:
    """Violations counted one at a time, for a check that streams rows through Python: the count, the first
    `SAMPLE_SIZE` sample records (as the check shows them) and the most frequent values, without keeping them all."""

    def __init__(self) -> None:
        self.failing = 0
        self.samples: list[dict[str, Any]] = []
        self.values: Counter[str] = Counter()

    def add(self, value: str, sample: dict[str, Any]) -> None:
        """Count one violation with its value; keep its sample record while fewer than `SAMPLE_SIZE` are kept."""
        self.failing += 1
        self.values[value] += 1
        if len(self.samples) < SAMPLE_SIZE:
            self.samples.append(sample)

    def result(
        self, *, severity: dg.AssetCheckSeverity, what: str, passed_description: str | None = None
    ) -> dg.AssetCheckResult:
        """The check's result: fails on any violation; ``passed_description`` replaces ``No <what>.``."""
        return check_result(
            self.failing,
            self.samples,
            self.values.most_common(SAMPLE_SIZE),
            severity=severity,
            what=what,
            passed_description=passed_description,
        )


def check_result(
    failing: int,
    samples: Sequence[dict[str, Any]],
    values: Sequence[tuple[Any, int]],
    *,
    severity: dg.AssetCheckSeverity,
    what: str,
    passed_description: str | None = None,
) -> dg.AssetCheckResult:
    """A rule's result: ``<failing> <what>`` (or ``No <what>.``), with the metadata analysts read: the count, the
    sample records and each value's count."""
    return dg.AssetCheckResult(
        passed=failing == 0,
        severity=severity,
        description=f"{failing} {what}" if failing else passed_description or f"No {what}.",
        metadata={
            "failing_records": dg.MetadataValue.int(failing),
            "sample_records": records_table(samples),
            "values": dg.MetadataValue.json({str(value): int(n) for value, n in values}),
        },
    )


def records_table(records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> dg.TableMetadataValue:
    """Records as a table the UI shows (columns: ``columns``, else those of the records in order of appearance).

    A value in a column whose name contains ``email`` is masked; values that are not text, numbers, booleans or
    NULL are shown as text.
    """
    names = list(columns) if columns is not None else list(dict.fromkeys(name for record in records for name in record))
    rows = [{name: _cell(name, record.get(name)) for name in names} for record in records]
    types = {name: _column_type([row[name] for row in rows]) for name in names}
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, types[name]) for name in names]),
    )


def _cell(column: str, value: Any) -> str | int | float | bool | None:
    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar from a DataFrame
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return mask_email(str(value)) if "email" in column.lower() else str(value)


def _column_type(values: Sequence[Any]) -> str:
    kinds = {type(value) for value in values if value is not None}
    if kinds == {bool}:
        return "bool"
    if kinds == {int}:
        return "int"
    if kinds and kinds <= {int, float}:
        return "float"
    return "string"


def _result(
    failing: int,
    samples: Sequence[Violation],
    values: Sequence[tuple[Any, int]],
    *,
    severity: dg.AssetCheckSeverity,
    what: str,
    labels: tuple[str, str, str],
) -> dg.AssetCheckResult:
    records = [
        {labels[0]: record_id, labels[1]: mask_email(name) if labels[1] == "email" else name, labels[2]: value}
        for record_id, name, value in samples
    ]
    return check_result(failing, records, values, severity=severity, what=what)
