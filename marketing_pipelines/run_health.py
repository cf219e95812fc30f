"""Find runs whose worker process died (``kill -9``, OOM) and let Dagster fail them and free their pool slots.

Dagster's ``DefaultRunLauncher`` cannot tell whether a run worker is alive, so run monitoring never fails a run
whose whole process tree died (``make run``'s run process, or ``make dev`` killed with its code
server): the run stays STARTED and keeps its ``warehouse`` pool slot. Every run worker records its pid in the
run's first engine event ("Started process for run (pid: N)" / "Executing steps in process (pid: N)");
:class:`LocalRunLauncher` answers run monitoring's health check from that pid, for an instance whose runs all
execute on this machine (the shipped ``instance/dagster.yaml``). :func:`release_dead_runs` does the same sweep once,
without the daemon (``make run`` calls it first).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

if TYPE_CHECKING:
    from dagster import DagsterInstance, DagsterRun

PID_EVENT_LOOKAHEAD = 20
"""Engine events read from the start of a run to find its worker's pid (it is the first or second)."""
START_TIME_SLACK_SECONDS = 30.0
"""A process that started this long after the worker reported its pid holds a reused pid. The slack absorbs
/proc's whole-second boot time and wall-clock steps; a pid reused within 30 s would need the pid space to wrap."""


def run_worker_pid(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The run worker's pid and when it reported it, from the run's first engine event that names a pid."""
    from dagster._core.events import DagsterEventType

    entries = instance.event_log_storage.get_logs_for_run(
        run_id, of_type={DagsterEventType.ENGINE_EVENT}, limit=PID_EVENT_LOOKAHEAD
    )
    for entry in entries:
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = data.metadata.get("pid") if data else None
        if pid is not None and str(pid.value).isdigit():
            return int(pid.value), entry.timestamp
    return None


def process_is_alive(pid: int, reported_at: float) -> bool:
    """Whether ``pid`` is a live process started before ``reported_at`` (a reused pid or a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    try:  # Linux: state and start time; elsewhere os.kill is all we know
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line[:5] == "btime")
    except (OSError, StopIteration, IndexError, ValueError):
        return True
    if stat[0] in ("Z", "X"):
        return False
    started_at = boot + int(stat[19]) / os.sysconf("SC_CLK_TCK")
    return started_at <= reported_at + START_TIME_SLACK_SECONDS


def worker_status(instance: DagsterInstance, run: DagsterRun) -> CheckRunHealthResult:
    """FAILED when the run's worker process is gone; RUNNING while it lives or before it reported its pid."""
    found = run_worker_pid(instance, run.run_id)
    if found is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "the run worker has not reported its pid yet")
    pid, reported_at = found
    if process_is_alive(pid, reported_at):
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive")
    return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker pid {pid} is gone (killed or crashed)")


class LocalRunLauncher(DefaultRunLauncher):
    """Dagster's default launcher plus a worker health check by pid, for run monitoring.

    Only for an instance whose run workers all run on this machine: a pid seen from another host means nothing.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        return worker_status(self._instance, run)


def release_dead_runs(instance: DagsterInstance) -> list[str]:
    """Fail every STARTED run whose worker is gone and free the pool slots of finished runs; returns messages."""
    from dagster import DagsterRunStatus, RunsFilter

    messages = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        run = record.dagster_run
        status = worker_status(instance, run)
        if status.status == WorkerStatus.FAILED:
            instance.report_run_failed(run, f"Marked as failed: {status.msg}.")
            messages.append(f"run {run.run_id} ({run.job_name}): {status.msg}; marked failed")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holders = storage.get_concurrency_run_ids()  # runs holding or waiting for a pool slot
        for run in instance.get_runs(filters=RunsFilter(run_ids=list(holders))) if holders else []:
            if run.is_finished:
                storage.free_concurrency_slots_for_run(run.run_id)
                messages.append(f"run {run.run_id} ({run.job_name}, {run.status.value}): pool slots freed")
    return messages


def main() -> int:
    """``python -m marketing_pipelines.run_health``: the sweep, on the instance in ``DAGSTER_HOME``."""
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        for message in release_dead_runs(instance):
            print(f"Recovered {message}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
