"""Reading the tables a check result carries as plain records."""

from __future__ import annotations

from typing import Any

import dagster as dg


def table_records(result: dg.AssetCheckResult | dg.AssetCheckEvaluation, key: str = "sample_records") -> list[dict]:
    """The rows of the table metadata ``key`` of a check result, as dicts (asserting it is a typed table)."""
    table = result.metadata[key]
    assert isinstance(table, dg.TableMetadataValue), f"{key} should be a table, not {type(table).__name__}"
    assert table.schema is not None and all(column.type for column in table.schema.columns)
    return [dict(record.data) for record in table.records]


def sample_records(result: Any) -> list[dict]:
    """The `sample_records` table of a rule check's result."""
    return table_records(result, "sample_records")
