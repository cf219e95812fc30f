"""The dbt project's SQL passes sqlfluff with the style in .sqlfluff, as `make lint` runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from marketing_pipelines.paths import DBT_PROJECT_DIR, PROJECT_ROOT

SQLFLUFF = str(Path(sys.executable).with_name("sqlfluff"))


def test_dbt_project_sql_passes_sqlfluff(tmp_path: Path) -> None:
    """Every model compiles through the dbt templater and has no violation; linting never opens a warehouse file."""
    warehouse_file = tmp_path / "warehouse.duckdb"
    env = {**os.environ, "DUCKDB_PATH": str(warehouse_file), "MARKETING_WAREHOUSE": "duckdb"}
    result = subprocess.run(
        [SQLFLUFF, "lint", "dbt_project", "--format", "json", "--nofail"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"sqlfluff did not run:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    files = json.loads(result.stdout)

    violations = [
        f"{entry['filepath']}:{v['start_line_no']}:{v['start_line_pos']} {v['code']} {v['description']}"
        for entry in files
        for v in entry["violations"]
    ]
    assert not violations, "sqlfluff violations (see .sqlfluff; `make lint`):\n" + "\n".join(violations)

    models = sorted(str(p.relative_to(PROJECT_ROOT)) for p in (DBT_PROJECT_DIR / "models").rglob("*.sql"))
    linted = sorted(entry["filepath"] for entry in files if entry["statistics"]["templated_chars"] > 0)
    assert linted == models, "every model is compiled by dbt and linted, none skipped"
    assert not warehouse_file.exists(), "linting compiles against the in-memory lint target, not the warehouse"
