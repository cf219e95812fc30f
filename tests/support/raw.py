"""Raw tables from hand-made rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from marketing_pipelines.warehouse import DuckDBWarehouse
from marketing_pipelines.warehouse.raw_tables import RAW_TABLES, create_raw_tables_sql


def load_raw_rows(warehouse: DuckDBWarehouse, rows: Mapping[str, list[dict[str, Any]]]) -> None:
    """Create every raw table empty, then bulk-insert the given hand-made rows (missing columns are NULL)."""
    warehouse.execute(create_raw_tables_sql(replace=True))
    for table, table_rows in rows.items():
        if not table_rows:
            continue
        frame = pd.DataFrame(table_rows, columns=list(RAW_TABLES[table]))
        warehouse.write_frame("raw", table, frame)


def crm_person(person_id: int, updated_at: datetime, **fields: Any) -> dict[str, Any]:
    """One raw CRM record version (a lead in Inquiry with 10 points, the score as text as the CRM exports it)."""
    row: dict[str, Any] = {
        "person_id": person_id,
        "email": f"person{person_id}@example.com",
        "record_type": "lead",
        "status": "Inquiry",
        "initial_source": None,
        "person_score": "10",
        "created_at": datetime(2024, 1, 1),
        "updated_at": updated_at,
    }
    return {**row, **fields}
