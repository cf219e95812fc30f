"""`make run`'s daily run: the refresh job on the Dagster instance, terse progress, then a summary people read.

``python -m marketing_pipelines.run_daily`` executes `refresh_marketing_data_job` on the instance in
``DAGSTER_HOME`` (the run shows in the UI), writes the run's full DEBUG log to ``data/logs/run-<time>.log`` and prints
one line as each asset step starts and finishes (with its duration and its checks' tally), one per failed check and
one per step that fails or is held. It then prints the warehouse report and a "Checks" section read back from the
instance's event log: passed and failed per severity, and each failed check with its description, its failing
records and where to see them. It exits 1 when the run failed, and says so; a failed blocking check (which fails the
run) is named with the pushes it held. ``--run-id ID`` prints the summary of an earlier run without running.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType

from marketing_pipelines.paths import PROJECT_ROOT

JOB = "refresh_marketing_data_job"
LOG_DIR = PROJECT_ROOT / "data" / "logs"
RUN_LOGGER = "run_log"
#: Metadata that counts a failed check's records, first found first: our rules, the sync guards, dbt tests.
RECORD_COUNT_KEYS = ("failing_records", "would_remove", "would_change", "rejected", "dagster_dbt/failed_row_count")
#: A failed check's description is cut to this many characters (its result's, to twice as many).
DESCRIPTION_CHARS = 160
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
#: The console of the `execute` in progress, where `run_log` prints progress while everything else the run prints
#: goes to the log file.
_console: list[TextIO] = []


def _event(record: logging.LogRecord) -> DagsterEvent | None:
    meta = getattr(record, "dagster_meta", None) or {}
    return meta.get("dagster_event")


def _step_and_message(record: logging.LogRecord) -> tuple[str, str]:
    meta = getattr(record, "dagster_meta", None) or {}
    return meta.get("step_key") or "", meta.get("orig_message") or record.getMessage()


def failure_reason(event: DagsterEvent) -> str:
    """The first line of a failed step's error, without the exception's module path."""
    error = event.step_failure_data.error
    message = error.message.strip() if error else ""
    first = message.splitlines()[0] if message else "failed"
    return re.sub(r"^(?:\w+\.)+(?=\w+: )", "", first)


class ProgressHandler(logging.Handler):
    """Turns a run's Dagster log records into terse progress lines: a start and a finish line per asset step (a
    step that materializes assets), a line per failed check, per failed or held step and for the run's end.

    A step that only evaluates checks prints nothing unless it fails; its checks count in the run's summary.
    """

    def __init__(self, stream: TextIO, asset_steps: set[str]) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.asset_steps = asset_steps
        self.started: dict[str, float] = {}
        self.checks: dict[str, Counter[str]] = {}

    def line(self, text: str) -> None:
        self.stream.write(f"  {datetime.now():%H:%M:%S}  {text}\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        event, (step, message) = _event(record), _step_and_message(record)
        if event is None:
            if message.startswith("Dependencies for step"):  # "... failed: [...]. Not executing."
                self.line(f"held   {step}: not run, a step it depends on failed")
            elif record.levelno >= logging.ERROR:
                self.line(f"error  {step or 'run'}: {message.strip().splitlines()[0] if message.strip() else ''}")
            return
        kind = event.event_type
        if kind == DagsterEventType.STEP_START:
            self.started[step] = time.monotonic()
            if step in self.asset_steps:
                self.line(f"start  {step}")
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            self.checks.setdefault(step, Counter())["passed" if evaluation.passed else "failed"] += 1
            if not evaluation.passed:
                count = failing_records(evaluation.metadata)
                counted = f" ({count:,} records)" if count is not None else ""
                self.line(
                    f"{evaluation.severity.value:<6} {evaluation.asset_key.to_user_string()}: "
                    f"{evaluation.check_name} failed{counted}"
                )
        elif kind == DagsterEventType.STEP_SUCCESS and step in self.asset_steps:
            tally = self.checks.get(step)
            checks = f"  ({sum(tally.values())} checks, {tally['failed']} failed)" if tally else ""
            self.line(f"done   {step}  {self._took(step)}{checks}")
        elif kind == DagsterEventType.STEP_FAILURE:
            self.line(f"FAILED {step}  {self._took(step)}: {failure_reason(event)}")
        elif kind == DagsterEventType.STEP_SKIPPED:
            self.line(f"skip   {step}")
        elif kind in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE):
            self.line(f"run {'succeeded' if kind == DagsterEventType.RUN_SUCCESS else 'FAILED'}")

    def _took(self, step: str) -> str:
        return f"{time.monotonic() - self.started.get(step, time.monotonic()):.1f}s"


@dg.logger(
    config_schema={"log_file": dg.Field(str, description="The file the run's full DEBUG log is written to.")},
    description="The full DEBUG log to a file, terse progress (steps, failed checks) to standard output.",
)
def run_log(init_context: dg.InitLoggerContext) -> logging.Logger:
    path = Path(init_context.logger_config["log_file"])
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.Logger("marketing_pipelines.run_daily", logging.DEBUG)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(to_file)
    logger.addHandler(ProgressHandler(_console[-1] if _console else sys.stdout, asset_steps(init_context.job_def)))
    return logger


def asset_steps(job: dg.JobDefinition | None) -> set[str]:
    """The steps of ``job`` that materialize assets (the others only evaluate checks)."""
    from dagster._core.definitions.dependency import NodeHandle

    if job is None:
        return set()
    steps = set()
    for node in job.graph.nodes:
        assets = job.asset_layer.get_assets_def_for_node(NodeHandle(node.name, None))
        if assets is not None and assets.keys:
            steps.add(node.name)
    return steps


def daily_job_definitions() -> dg.Definitions:
    """The code location's definitions, their resources bound to the environment (as ``defs`` binds them)."""
    from marketing_pipelines.definitions import build_definitions
    from marketing_pipelines.resources import build_resources

    return build_definitions(build_resources())


def daily_job() -> dg.JobDefinition:
    """The code location's refresh job, logging through `run_log`."""
    return daily_job_definitions().resolve_job_def(JOB).with_logger_defs({RUN_LOGGER: run_log})


def execute(instance: dg.DagsterInstance, log_file: Path, console: TextIO | None = None) -> dg.JobExecutionResult:
    """One run of the refresh job on ``instance``: its progress to ``console`` (standard output), its log and
    everything it prints (dbt's output, warnings) to ``log_file``."""
    job = dg.build_reconstructable_job("marketing_pipelines.run_daily", daily_job.__name__)
    run_config = {"loggers": {RUN_LOGGER: {"config": {"log_file": str(log_file)}}}}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if console is None:  # standard output, on its own descriptor: descriptor 1 goes to the log file
            console = stack.enter_context(open(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8"))
        _console.append(console)
        stack.callback(_console.pop)
        stack.enter_context(printed_to(log_file))
        result = dg.execute_job(job, instance=instance, run_config=run_config)
    return result


@contextlib.contextmanager
def printed_to(path: Path) -> Iterator[None]:
    """While open, what this process and its subprocesses (dbt) print, on standard output or error, goes to the
    end of the file ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with path.open("a", encoding="utf-8") as printed:
        try:
            os.dup2(printed.fileno(), 1)
            os.dup2(printed.fileno(), 2)
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                yield
        finally:
            printed.flush()
            for descriptor, original in enumerate(saved, start=1):
                os.dup2(original, descriptor)
                os.close(original)


# --- the summary, from the run's event log ------------------------------------------------------------------------


def failing_records(metadata: Mapping[str, Any] | None) -> int | None:
    """The number of records a check result counts (its first of `RECORD_COUNT_KEYS`), or None."""
    for key in RECORD_COUNT_KEYS:
        value = getattr((metadata or {}).get(key), "value", None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


@dataclass(frozen=True)
class CheckOutcome:
    """One check evaluated in a run."""

    asset: str
    name: str
    step: str
    """The step that evaluated it."""
    passed: bool
    severity: str
    blocking: bool
    result: str | None
    """The result's own description (e.g. ``6 CRM records carry ...``)."""
    records: int | None
    sample: bool
    """Whether the result's metadata lists sample records."""
    dbt_test: str = ""
    """The dbt test's unique id, for a check that is a dbt test."""

    @property
    def held_push(self) -> bool:
        """A failed blocking ERROR check: the steps after it were not run."""
        return not self.passed and self.blocking and self.severity == "ERROR"


@dataclass
class RunSummary:
    """What a run did, read from the instance's event log."""

    run_id: str
    job: str
    status: str
    checks: list[CheckOutcome] = field(default_factory=list)
    failed_steps: dict[str, str] = field(default_factory=dict)
    """Each failed step and the first line of its error."""
    held_steps: list[str] = field(default_factory=list)
    """Steps planned but never run (a step they depend on failed) or skipped."""

    @property
    def failed(self) -> bool:
        return self.status != "SUCCESS"

    @property
    def held_by_checks(self) -> list[CheckOutcome]:
        return [check for check in self.checks if check.held_push]


def read_run(instance: dg.DagsterInstance, run_id: str) -> RunSummary:
    """The checks, failed steps and held steps of run ``run_id``."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ValueError(f"no run {run_id} in this Dagster instance")
    summary = RunSummary(run_id, run.job_name, run.status.value)
    planned: list[str] = []
    started: set[str] = set()
    for entry in instance.all_logs(run_id):
        event, step = entry.dagster_event, entry.step_key or ""
        if event is None:
            continue
        kind = event.event_type
        if kind in (DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED):
            if step and step not in planned:
                planned.append(step)
        elif kind == DagsterEventType.STEP_START:
            started.add(step)
        elif kind == DagsterEventType.STEP_SKIPPED:
            started.discard(step)
        elif kind == DagsterEventType.STEP_FAILURE:
            summary.failed_steps[step] = failure_reason(event)
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            summary.checks.append(
                CheckOutcome(
                    asset=evaluation.asset_key.to_user_string(),
                    name=evaluation.check_name,
                    step=step,
                    passed=evaluation.passed,
                    severity=evaluation.severity.value,
                    blocking=bool(evaluation.blocking),
                    result=evaluation.description,
                    records=failing_records(evaluation.metadata),
                    sample="sample_records" in evaluation.metadata,
                    dbt_test=f"dbt test {dbt_id.value}" if (dbt_id := evaluation.metadata.get("unique_id")) else "",
                )
            )
    summary.held_steps = [step for step in planned if step not in started]
    return summary


def check_descriptions(definitions: dg.Definitions) -> dict[tuple[str, str], str]:
    """Each check's description as the code location defines it, by ``(asset, check name)``."""
    graph = definitions.get_repository_def().asset_graph
    return {
        (key.asset_key.to_user_string(), key.name): graph.get_check_spec(key).description or ""
        for key in graph.asset_check_keys
    }


def shortened(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    """``text`` on one line, cut at a word to at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3].rsplit(" ", 1)[0] + "..."


def where_to_see(check: CheckOutcome, description: str, ui_base_url: str) -> str:
    """The check's page in the UI, and the tables its description names (``ops.sync_rejections``, ...)."""
    where = [f"{ui_base_url.rstrip('/')}/assets/{check.asset}?view=checks"]
    if check.sample:
        where[0] += " (sample_records in the result's metadata)"
    where.extend(sorted(set(re.findall(r"`((?:ops|audiences|marts|staging|raw)\.\w+)`", description))))
    return ", ".join(where)


def print_checks(
    summary: RunSummary, descriptions: Mapping[tuple[str, str], str], ui_base_url: str, out: TextIO = sys.stdout
) -> None:
    """The "Checks" section: passed and failed per severity, then each failed check."""
    write = lambda text="": print(text, file=out)  # noqa: E731
    tally = Counter((check.severity, check.passed) for check in summary.checks)
    write(f"\nChecks of run {summary.run_id} ({len(summary.checks)} evaluated):")
    for severity in ("ERROR", "WARN"):
        write(f"  {severity:<5} passed {tally[(severity, True)]:>3}, failed {tally[(severity, False)]:>3}")
    failed = sorted(
        (check for check in summary.checks if not check.passed), key=lambda c: (c.severity != "ERROR", c.asset)
    )
    for check in failed:
        records = f"{check.records:,} failing records" if check.records is not None else "failing records not counted"
        blocking = ", blocking" if check.blocking else ""
        write(f"  FAILED {check.severity}{blocking}  {check.asset}: {check.name} - {records}")
        description = descriptions.get((check.asset, check.name), "")
        about = [shortened(check.result, 2 * DESCRIPTION_CHARS) if check.result else ""]
        about.append(f"check: {shortened(description)}" if description else check.dbt_test)
        write(f"    {' | '.join(text for text in about if text)}")
        write(f"    see {where_to_see(check, description, ui_base_url)}")


def verdict(summary: RunSummary, out: TextIO = sys.stdout) -> int:
    """The closing line(s): 0 when the run succeeded, else 1 with what failed and which pushes were held."""
    if not summary.failed:
        print(f"Run {summary.run_id} succeeded; no blocking check failed.", file=out)
        return 0
    held = summary.held_by_checks
    if held:
        names = ", ".join(f"{check.asset}: {check.name}" for check in held)
        print(f"BLOCKING CHECK FAILED ({names}): these pushes and steps were held, not run:", file=out)
        print(f"  {', '.join(summary.held_steps) or '(none planned after it)'}", file=out)
    holding_steps = {check.step for check in held}
    for step, error in summary.failed_steps.items():
        if step not in holding_steps:
            print(f"FAILED step {step}: {error}", file=out)
    print(f"Run {summary.run_id} {summary.status}: exit status 1.", file=out)
    return 1


def summarize(
    instance: dg.DagsterInstance,
    run_id: str,
    descriptions: Mapping[tuple[str, str], str],
    ui_base_url: str,
    out: TextIO = sys.stdout,
) -> int:
    """Print the "Checks" section and the verdict of run ``run_id``; returns the exit status."""
    summary = read_run(instance, run_id)
    print_checks(summary, descriptions, ui_base_url, out)
    return verdict(summary, out)


def ui_base_url() -> str:
    """The Dagster UI's address, as the alerts link to it."""
    from marketing_pipelines.resources.alerts import DEFAULT_UI_BASE_URL

    return os.environ.get("DAGSTER_UI_BASE_URL") or DEFAULT_UI_BASE_URL


def shown(path: Path) -> str:
    """``path`` relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the refresh job (or read ``--run-id``), print the warehouse report and the checks; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m marketing_pipelines.run_daily", description=__doc__)
    parser.add_argument("--run-id", help="summarize this earlier run instead of running the job")
    args = parser.parse_args(argv)

    from marketing_pipelines.report import report
    from marketing_pipelines.resources import warehouse_from_environment

    with dg.DagsterInstance.get() as instance:
        run_id, log_file = args.run_id, None
        if run_id is not None and instance.get_run_by_id(run_id) is None:
            print(f"No run {run_id} in the Dagster instance of DAGSTER_HOME.", file=sys.stderr)
            return 2
        if run_id is None:
            log_file = LOG_DIR / f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"
            print(f"Running {JOB}; full log: {shown(log_file)}")
            run_id = execute(instance, log_file).run_id
        with warehouse_from_environment() as warehouse:
            report(warehouse)
        descriptions = check_descriptions(daily_job_definitions())
        status = summarize(instance, run_id, descriptions, ui_base_url())
        if log_file is not None:
            print(f"Full log: {shown(log_file)}")
        return status


if __name__ == "__main__":
    # The job is rebuilt from the module by name (`daily_job`): run that module's `main`, not this copy's, so the
    # run's logger and `execute` share one console.
    from marketing_pipelines import run_daily

    raise SystemExit(run_daily.main())
