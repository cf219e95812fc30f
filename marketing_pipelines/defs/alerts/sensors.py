"""Alert sensors: one message per failed run, and one per run whose blocking checks held its pushes.

A blocking check that fails with ERROR fails its step, so both incidents end a run in FAILURE; they are told
apart by the step's events. A step that emitted a failed blocking ERROR check held the assets after it: the
`held_push_alert` sensor reports it, naming the checks. Every other failed step (or a run that failed before any
step, e.g. a killed worker) is reported by `run_failure_alert`. A run holding both gets one message from each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.events import DagsterEventType

from marketing_pipelines.resources.alerts import AlertResource

#: Metadata that counts the records a failure or a check is about, in the order they are named.
RECORD_COUNT_KEYS = ("failing_records", "would_remove", "would_change", "rejected", "records")
#: At most this many characters of an error message go into an alert.
ERROR_CHARS = 300


@dataclass(frozen=True)
class Finding:
    """A failed step or check: its name, description, the record counts its metadata gives, and its error."""

    name: str
    description: str | None
    records: Mapping[str, int]
    error: str | None = None

    def lines(self) -> list[str]:
        counts = ", ".join(f"{key} {value:,}" for key, value in self.records.items())
        lines = [f"- {self.name}: {self.description or '(no description)'}"]
        lines.append(f"  records involved: {counts or 'not reported'}")
        if self.error:
            lines.append(f"  error: {self.error}")
        return lines


@dataclass(frozen=True)
class Incident:
    """What one alert says."""

    title: str
    job: str
    run_url: str
    findings: Sequence[Finding]
    held_assets: Sequence[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        names = ", ".join(finding.name for finding in self.findings)
        return f"[marketing_pipelines] {self.title}: {self.job}" + (f" ({names})" if names else "")

    @property
    def text(self) -> str:
        lines = [f"{self.title} in job {self.job}."]
        for finding in self.findings:
            lines.extend(finding.lines())
        if self.held_assets:
            lines.append(f"Not materialized in this run: {', '.join(self.held_assets)}")
        lines.append(f"Run: {self.run_url}")
        return "\n".join(lines)


def record_counts(metadata: Mapping[str, dg.MetadataValue] | None) -> dict[str, int]:
    """The record counts among ``metadata`` (``failing_records``, ``would_remove``, ...)."""
    counts: dict[str, int] = {}
    for key in RECORD_COUNT_KEYS:
        value = getattr((metadata or {}).get(key), "value", None)
        if isinstance(value, int) and not isinstance(value, bool):
            counts[key] = value
    return counts


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:ERROR_CHARS] + ("..." if len(line) > ERROR_CHARS else "")


def _held_checks(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[dg.AssetCheckEvaluation]]:
    """Per step: the blocking checks it evaluated that failed with ERROR."""
    held: dict[str, list[dg.AssetCheckEvaluation]] = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if (
            isinstance(evaluation, dg.AssetCheckEvaluation)
            and not evaluation.passed
            and evaluation.blocking
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            held.setdefault(entry.step_key or "", []).append(evaluation)
    return held


def _op_descriptions(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict[str, str]:
    """Each op of the run's job by name, with its description (an asset's op carries the asset's)."""
    if not run.job_snapshot_id:
        return {}
    snapshot = instance.get_job_snapshot(run.job_snapshot_id)
    return {op.name: op.description for op in snapshot.node_defs_snapshot.op_def_snaps if op.description}


def _check_description(context: dg.RunStatusSensorContext, evaluation: dg.AssetCheckEvaluation) -> str | None:
    """The check's own description (from the code location), else the result's."""
    repository = context.repository_def
    key = dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name)
    if repository is not None and key in repository.asset_graph.asset_check_keys:
        description = repository.asset_graph.get_check_spec(key).description
        if description:
            return description
    return evaluation.description


def failed_run_incident(context: dg.RunFailureSensorContext, alerts: AlertResource) -> Incident | None:
    """The failed steps of the run that no failed blocking check explains; None when every one is a held push."""
    run = context.dagster_run
    held = _held_checks(context.instance, run.run_id)
    descriptions = _op_descriptions(context.instance, run)
    findings = []
    failures = context.get_step_failure_events()
    for event in failures:
        step = event.step_key or "?"
        if step in held:
            continue
        data = event.step_failure_data
        user = data.user_failure_data
        error = data.error
        message = user.description if user and user.description else error.message if error else None
        findings.append(
            Finding(
                name=step,
                description=descriptions.get(step.split("[")[0].split(".")[-1]),
                records=record_counts(user.metadata if user else None),
                error=_first_line(alerts.redact(f"{error.cls_name}: {message}" if error else message or "")),
            )
        )
    if failures and not findings:
        return None
    if not failures:  # the run failed outside its steps (a killed worker, a launch error)
        findings.append(
            Finding(name="run", description=None, records={}, error=_first_line(context.failure_event.message))
        )
    return Incident("Run failed", run.job_name, alerts.run_url(run.run_id), findings)


def held_push_incident(context: dg.RunFailureSensorContext, alerts: AlertResource) -> Incident | None:
    """The failed blocking checks of the run and the assets they held; None when no blocking check failed."""
    run = context.dagster_run
    held = _held_checks(context.instance, run.run_id)
    if not held:
        return None
    findings = [
        Finding(
            name=f"{evaluation.check_name} on {evaluation.asset_key.to_user_string()}",
            description=_check_description(context, evaluation),
            records=record_counts(evaluation.metadata),
        )
        for evaluations in held.values()
        for evaluation in evaluations
    ]
    events = context.instance.all_logs(
        run.run_id, of_type={DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_MATERIALIZATION}
    )
    planned = {
        e.dagster_event.asset_key
        for e in events
        if e.dagster_event and e.dagster_event.is_asset_materialization_planned
    }
    done = {e.dagster_event.asset_key for e in events if e.dagster_event and e.dagster_event.is_step_materialization}
    not_done = sorted(key.to_user_string() for key in planned - done if key is not None)
    return Incident("Push held by a blocking check", run.job_name, alerts.run_url(run.run_id), findings, not_done)


def deliver(context: dg.RunFailureSensorContext, alerts: AlertResource, incident: Incident | None) -> None:
    """Send ``incident`` on every channel that is on, and log that it was (or why not); never a secret."""
    if incident is None:
        return
    if not alerts.channels:
        context.log.info(f"no alert channel is set; not sent: {incident.subject}")
        return
    delivered = alerts.send(incident.subject, incident.text)
    context.log.info(f"alert sent on {', '.join(delivered)}: {incident.subject}")


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Sends one alert per failed run (e-mail and/or Slack, see AlertResource): the job, each failed step with "
        "its description, error and record counts, and a link to the run. Steps failed by a blocking check are "
        "left to held_push_alert."
    ),
)
def run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
    deliver(context, alerts, failed_run_incident(context, alerts))


@dg.run_failure_sensor(
    name="held_push_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Sends one alert per run whose blocking checks failed with ERROR, holding the pushes after them: the job, "
        "each check with its description and record counts (failing_records, would_remove, ...), the assets not "
        "materialized, and a link to the run."
    ),
)
def held_push_alert(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
    deliver(context, alerts, held_push_incident(context, alerts))
