"""Customer Programs: raw CS accounts and contacts, and the built audiences checked and pushed to the emulator."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from devtools.gainsight_emulator import GainsightEmulator
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.metadata import sample_records

#: The reference date the Customer Programs warehouses are built at.
AS_OF = "2026-11-20"


def account(account_id: int, **overrides) -> dict:
    row = {
        "account_id": account_id,
        "account_name": f"Account {account_id}",
        "carr": "25000.00",
        "technical_account_manager": None,
        "account_owner_team": "EMEA",
        "products_purchased": "Self-Managed - Premium",
        "deployment_type": "Self-Managed",
        "support_level": "Standard",
        "namespace_id": None,
        "created_at": "2025-06-01 09:00:00",
        "renewal_date": "2027-06-01",
    }
    return {**row, **overrides}


def contact(account_id: int, person_id: int, role: str, email: str | None = "") -> dict:
    email = f"p{person_id}@example.com" if email == "" else email
    return {"account_id": account_id, "person_id": person_id, "email": email, "gitlab_role": role}


def named(result: dg.AssetCheckResult) -> dict:
    """The accounts a check result names: account id -> value."""
    return {record["account_id"]: record["value"] for record in sample_records(result)}


def recipients(warehouse: DuckDBWarehouse, account_id: int) -> set[tuple]:
    rows = warehouse.query(
        "select coalesce(email, 'NULL'), recipient_reason, receives_surveys, program, skip_reason "
        "from audiences.gainsight_program_recipients where account_id = ?",
        [account_id],
    )
    return set(rows)


def company(warehouse: DuckDBWarehouse, account_id: int, columns: str) -> tuple:
    rows = warehouse.query(
        f"select {columns} from audiences.gainsight_program_companies where account_id = ?", [account_id]
    )
    assert len(rows) == 1, f"account {account_id} is not in the programs"
    return rows[0]


def corrupted_copy(built: DuckDBWarehouse, tmp_path: Path) -> tuple[DuckDBWarehouse, WarehouseResource]:
    """A copy of the built warehouse to change, and a resource on it."""
    copy = DuckDBWarehouse(tmp_path / "corrupted.duckdb")
    shutil.copy(built.path, copy.path)
    return copy, WarehouseResource(duckdb_path=str(copy.path))


def materialize_syncs(built: DuckDBWarehouse, path: Path) -> tuple[GainsightEmulator, dg.ExecuteInProcessResult]:
    """Both Gainsight sync assets, live with the resource against the emulator, on a copy of the built warehouse."""
    from marketing_pipelines.defs.gainsight.assets import gainsight_company_sync, gainsight_person_sync
    from marketing_pipelines.resources.gainsight import GainsightResource

    shutil.copy(built.path, path)
    with GainsightEmulator(access_key="k", calls_per_window=10, window_seconds=1) as emu:
        result = dg.materialize(
            [gainsight_company_sync, gainsight_person_sync],
            resources={
                "warehouse": WarehouseResource(duckdb_path=str(path)),
                "gainsight": GainsightResource(access_key="k", base_url=emu.base_url, window_seconds=1),
            },
        )
    return emu, result


def program_company_rows(ids: list[int]) -> pd.DataFrame:
    """Rows of `audiences.gainsight_program_companies`: onboarding accounts 70,000,000 + id, one per id."""
    return pd.DataFrame(
        [
            {
                "account_id": 70_000_000 + i,
                "account_name": f"Company {i}",
                "carr": 1000.0,
                "segment": "Scale",
                "technical_account_manager": None,
                "account_owner_team": "EMEA",
                "products_purchased": "SaaS - Premium",
                "deployment_type": "SaaS",
                "support_level": "Standard",
                "program": "onboarding",
                "account_created_on": pd.Timestamp("2025-01-01"),
                "renewal_date": pd.Timestamp("2027-01-01"),
                "skip_reason": None,
            }
            for i in ids
        ]
    )
