"""A run whose worker is killed (`kill -9`) is marked failed and frees its `warehouse` pool slot; the next run starts.

Real processes throughout: a `dagster-daemon` on a temporary instance configured by the shipped `instance/dagster.yaml`,
runs of `tests/pool_holder_location.py` (one step that holds the `warehouse` pool and writes its pid), and real
SIGKILLs. Two kinds of death: a worker launched by the daemon (its code server notices, the daemon frees the slot),
and a `dagster job execute` process as `make run` starts it (only `LocalRunLauncher`'s pid check notices).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.paths import PROJECT_ROOT
from marketing_pipelines.run_health import process_is_alive

BIN = Path(sys.executable).parent
LOCATION = Path(__file__).with_name("pool_holder_location.py")
JOB = "hold_warehouse_job"
SHIPPED_CONFIG = PROJECT_ROOT / "instance" / "dagster.yaml"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh instance with the shipped dagster.yaml, and a workspace with the pool-holder code location."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(SHIPPED_CONFIG, home / "dagster.yaml")
    workspace = {"load_from": [{"python_file": {"relative_path": str(LOCATION), "location_name": "pool_holder"}}]}
    (tmp_path / "workspace.yaml").write_text(json.dumps(workspace))
    return home


@pytest.fixture
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


def env_for(home: Path) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def wait_for(what: str, condition: Callable[[], Any], timeout: float) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def run_config(pid_file: Path, hold_seconds: float) -> str:
    config = {"pid_file": str(pid_file), "hold_seconds": hold_seconds}
    return json.dumps({"ops": {"hold_warehouse": {"config": config}}})


def slot_holders(instance: dg.DagsterInstance) -> list[str]:
    """Run ids holding a `warehouse` pool slot."""
    info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
    return [slot.run_id for slot in info.claimed_slots if slot.run_id]


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return dg.DagsterRunStatus(instance.get_run_by_id(run_id).status)


def start_execute(home: Path, pid_file: Path, log: Path) -> subprocess.Popen[bytes]:
    """`dagster job execute` as `make run` does it: the run executes in this process, no daemon involved."""
    config = log.with_suffix(".yaml")  # `job execute` takes config files only; JSON is YAML
    config.write_text(run_config(pid_file, 300))
    command = [str(BIN / "dagster"), "job", "execute", "-f", str(LOCATION), "-j", JOB, "-c", str(config)]
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, env=env_for(home), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill_execute_run(home: Path, instance: dg.DagsterInstance, tmp_path: Path) -> str:
    """Start a `dagster job execute` run, wait until it holds the slot, SIGKILL it; returns its run id."""
    pid_file = tmp_path / "execute.pid"
    process = start_execute(home, pid_file, tmp_path / "execute.log")
    try:

        def pid_written() -> str | bool:
            assert process.poll() is None, (tmp_path / "execute.log").read_text()[-3000:]
            return pid_file.exists() and pid_file.read_text()

        wait_for("the executed run's pid", pid_written, 90)
        [run_id] = wait_for("the executed run to hold the warehouse slot", lambda: slot_holders(instance), 30)
        assert int(pid_file.read_text()) == process.pid
        assert status(instance, run_id) == dg.DagsterRunStatus.STARTED
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    return run_id


def launch(home: Path, workspace: Path, pid_file: Path, hold_seconds: float) -> str:
    """Submit a run to the queue (the daemon launches it); returns its run id."""
    run_id = str(uuid.uuid4())
    command = [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", JOB, "--run-id", run_id]
    subprocess.run(
        [*command, "--config-json", run_config(pid_file, hold_seconds)],
        env=env_for(home),
        check=True,
        capture_output=True,
        timeout=90,
    )
    return run_id


@pytest.fixture
def daemon(home: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dagster-daemon run` in its own process group (its code server and run workers join it)."""
    with open(tmp_path / "daemon.log", "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(tmp_path / "workspace.yaml")],
            env=env_for(home),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the code server and any run worker left in the group
        process.wait(timeout=10)


def test_shipped_config_enables_run_monitoring_with_the_pid_checking_launcher(instance: dg.DagsterInstance) -> None:
    from marketing_pipelines.run_health import LocalRunLauncher

    assert instance.run_monitoring_enabled
    assert isinstance(instance.run_launcher, LocalRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health
    assert instance.run_monitoring_poll_interval_seconds <= 15
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] <= 15


def test_killed_runs_fail_free_their_slot_and_the_next_run_succeeds(
    home: Path, instance: dg.DagsterInstance, daemon: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace.yaml"
    bound = 2 * instance.run_monitoring_poll_interval_seconds + 20

    # 1. A worker the daemon launched, killed while it holds the slot.
    pid_file = tmp_path / "launched.pid"
    launched = launch(home, workspace, pid_file, hold_seconds=300)
    pid = int(wait_for("the launched run's pid", lambda: pid_file.exists() and pid_file.read_text(), 90))
    wait_for("the launched run to hold the slot", lambda: slot_holders(instance) == [launched], 30)
    os.kill(pid, signal.SIGKILL)
    wait_for("the killed run to fail", lambda: status(instance, launched) == dg.DagsterRunStatus.FAILURE, bound)
    wait_for("its slot to be freed", lambda: not slot_holders(instance), bound)

    # 2. A run executed in its own process (`make run`), killed: nothing but the pid check can tell it died.
    executed = kill_execute_run(home, instance, tmp_path)
    wait_for("the killed run to fail", lambda: status(instance, executed) == dg.DagsterRunStatus.FAILURE, bound)
    wait_for("its slot to be freed", lambda: not slot_holders(instance), bound)
    failure = instance.get_records_for_run(executed, of_type=dg.DagsterEventType.RUN_FAILURE).records
    assert f"run worker pid {int((tmp_path / 'execute.pid').read_text())} is gone" in failure[0].event_log_entry.message

    # 3. The next run of the same job gets the slot and succeeds.
    rerun = launch(home, workspace, tmp_path / "rerun.pid", hold_seconds=0)
    finished = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    wait_for("the rerun to finish", lambda: status(instance, rerun) in finished, 90)
    assert status(instance, rerun) == dg.DagsterRunStatus.SUCCESS
    assert not slot_holders(instance)


def test_run_health_sweep_recovers_a_killed_run_without_the_daemon(
    home: Path, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    run_id = kill_execute_run(home, instance, tmp_path)
    assert status(instance, run_id) == dg.DagsterRunStatus.STARTED  # nothing else noticed
    sweep = [str(BIN / "python"), "-m", "marketing_pipelines.run_health"]
    result = subprocess.run(sweep, env=env_for(home), capture_output=True, text=True, timeout=120, check=True)
    assert f"Recovered run {run_id}" in result.stdout and "marked failed" in result.stdout
    assert "pool slots freed" in result.stdout
    assert status(instance, run_id) == dg.DagsterRunStatus.FAILURE
    assert not slot_holders(instance)
    again = subprocess.run(sweep, env=env_for(home), capture_output=True, text=True, timeout=120, check=True)
    assert again.stdout == ""


def test_process_is_alive_rejects_dead_zombie_and_reused_pids() -> None:
    assert process_is_alive(os.getpid(), time.time())
    child = subprocess.Popen(["sleep", "30"])
    try:
        started = time.time()
        assert process_is_alive(child.pid, started)
        assert not process_is_alive(child.pid, started - 60), "a process started after the pid was reported"
        child.kill()
        wait_for("the child to become a zombie", lambda: not process_is_alive(child.pid, started), 10)
    finally:
        child.kill()
        child.wait()
    assert not process_is_alive(child.pid, started)
