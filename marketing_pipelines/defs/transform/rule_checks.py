"""Shared machinery for business-rule checks: run a violations query, report count, samples and values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import dagster as dg

from marketing_pipelines.pii import mask_email
from marketing_pipelines.warehouse import Warehouse

SAMPLE_SIZE = 20

Violation = tuple[Any, Any, Any]
"""One violating record: ``(person_id, email, value)`` (or the columns ``labels`` names)."""


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
    """
    (failing,) = warehouse.query(f"select count(*) from ({violations_sql}) as violations")[0]
    samples = warehouse.query(
        f"select person_id, email, value from ({violations_sql}) as violations order by person_id limit {SAMPLE_SIZE}"
    )
    values = warehouse.query(
        f"select value, count(*) as n from ({violations_sql}) as violations "
        f"group by value order by n desc, value limit {SAMPLE_SIZE}"
    )
    return _result(int(failing), samples, values, severity=severity, what=what, labels=labels)


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


def _result(
    failing: int,
    samples: Sequence[Violation],
    values: Sequence[tuple[Any, int]],
    *,
    severity: dg.AssetCheckSeverity,
    what: str,
    labels: tuple[str, str, str],
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=failing == 0,
        severity=severity,
        description=f"{failing} {what}" if failing else f"No {what}.",
        metadata={
            "failing_records": dg.MetadataValue.int(failing),
            "sample_records": dg.MetadataValue.json(
                [
                    {
                        labels[0]: record_id,
                        labels[1]: mask_email(name) if labels[1] == "email" else name,
                        labels[2]: value,
                    }
                    for record_id, name, value in samples
                ]
            ),
            "values": dg.MetadataValue.json({str(value): int(n) for value, n in values}),
        },
    )
