"""The production instance config (`deploy/dagster.yaml`) is valid and loads against a live Postgres."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketing_pipelines.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow

PRODUCTION_CONFIG = PROJECT_ROOT / "deploy" / "dagster.yaml"
DAGSTER = str(Path(sys.executable).with_name("dagster"))
PG_ENV = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD")


def test_production_config_validates_against_dagsters_instance_schema(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    for name in PG_ENV:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "set")
    shutil.copy(PRODUCTION_CONFIG, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert set(config["storage"]) == {"postgres"}
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_retries"]["enabled"] is True
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True and monitoring["max_resume_run_attempts"] == 0
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= monitoring["poll_interval_seconds"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres() -> Iterator[dict[str, str]]:
    """A throwaway Postgres cluster on loopback (as `nobody` when running as root, which initdb refuses)."""
    if not (shutil.which("initdb") and shutil.which("pg_ctl") and shutil.which("createdb")):
        pytest.skip("no Postgres server binaries (initdb, pg_ctl) on this machine")
    as_user: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: initdb refuses root")
        as_user = ["runuser", "-u", "nobody", "--"]
    with tempfile.TemporaryDirectory(prefix="pg-") as directory:  # under /tmp: reachable for `nobody`
        Path(directory).chmod(0o777)
        yield from _cluster(Path(directory), as_user)


def _cluster(root: Path, as_user: list[str]) -> Iterator[dict[str, str]]:
    data, port = root / "pgdata", _free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run([*as_user, "initdb", "-D", str(data), "-U", "dagster", "--auth=trust"], **run)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    start = [*as_user, "pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "pg.log"), "-w", "start"]
    subprocess.run(start, **run)
    try:
        subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "dagster", "dagster"], **run)
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_DB": "dagster",
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        }
    finally:
        subprocess.run([*as_user, "pg_ctl", "-D", str(data), "-m", "fast", "stop"], capture_output=True, timeout=60)


def test_dagster_instance_info_loads_the_production_config_on_postgres(postgres, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PRODUCTION_CONFIG, home / "dagster.yaml")
    env = {**os.environ, **postgres, "DAGSTER_HOME": str(home)}
    result = subprocess.run([DAGSTER, "instance", "info"], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PostgresRunStorage" in result.stdout and "PostgresEventLogStorage" in result.stdout
    assert "unused-with-trust-auth" not in result.stdout, "the Postgres password must not be printed"
