"""Alerts reach a real SMTP server and a real HTTP webhook on loopback: one message per failed run or held push,
none for a passing run, and no secret in any message or log line.

The runs are tiny jobs on an ephemeral instance; the sensors are evaluated as the daemon does, tick by tick.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from marketing_pipelines.defs.alerts.sensors import held_push_alert, run_failure_alert
from marketing_pipelines.resources import AlertResource, build_resources
from marketing_pipelines.resources.alerts import AlertDeliveryError

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SMTP_USER = "alerts@example.com"
SMTP_PASSWORD = "smtp-pass-never-shown-7f3a"
WEBHOOK_TOKEN = "T0001/B0002/hook-token-never-shown-9c1d"
UI = "https://dagster.example.com"


@dataclass
class Inbox:
    """What the loopback SMTP server accepted: (mail from, recipients, subject, body) per message."""

    port: int
    messages: list[tuple[str, list[str], str, str]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        body = message.get_content()
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), str(message["Subject"]), body))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == (SMTP_USER, SMTP_PASSWORD))


@dataclass
class Webhook:
    """What the loopback webhook accepted: (path, JSON body) per POST; paths outside the token answer 404."""

    port: int
    posts: list[tuple[str, dict]] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    received = Inbox(port=free_port())
    controller = Controller(
        received,
        hostname="127.0.0.1",
        port=received.port,
        authenticator=received.authenticate,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        yield received
    finally:
        controller.stop()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != f"/services/{WEBHOOK_TOKEN}":
                self.send_response(404)
                self.end_headers()
                return
            hook.posts.append((self.path, body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


def alert_resource(inbox: Inbox, webhook: Webhook, token: str = WEBHOOK_TOKEN) -> AlertResource:
    return AlertResource(
        smtp_host="127.0.0.1",
        smtp_port=inbox.port,
        smtp_user=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        email_from="pipelines@example.com",
        email_to="ops@example.com, oncall@example.com",
        slack_webhook_url=f"http://127.0.0.1:{webhook.port}/services/{token}",
        ui_base_url=UI + "/",
    )


@dg.op(description="Reloads the CRM extract into the warehouse.")
def reload_crm() -> None:
    raise dg.Failure(description="the CRM extract is truncated", metadata={"failing_records": 1234})


@dg.op(description="Does nothing wrong.")
def fine() -> None:
    pass


@dg.job
def broken_refresh() -> None:
    reload_crm()


@dg.job
def passing_refresh() -> None:
    fine()


@dg.asset(description="Who would be pushed.")
def audience() -> None:
    pass


@dg.asset_check(asset=audience, blocking=True, description="Nobody who opted out is pushed.")
def audience_only_opted_in() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata={"failing_records": 17, "would_remove": 3}
    )


@dg.asset(deps=[audience], description="Pushes the audience.")
def audience_push() -> None:
    pass


push_job = dg.define_asset_job("push_job", selection=[audience, audience_push, audience_only_opted_in])


def definitions(alerts: AlertResource) -> dg.Definitions:
    return dg.Definitions(
        assets=[audience, audience_push],
        asset_checks=[audience_only_opted_in],
        jobs=[broken_refresh, passing_refresh, push_job],
        sensors=[run_failure_alert, held_push_alert],
        resources={"alerts": alerts},
    )


class Ticks:
    """Evaluates the two alert sensors the way the daemon does, keeping each one's cursor between ticks."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, alerts: AlertResource) -> None:
        self.repository = defs.get_repository_def()
        self.instance = instance
        self.alerts = alerts
        self.cursors: dict[str, str | None] = {}
        self.tick()  # the first tick of a run status sensor only sets its cursor

    def tick(self) -> list[str]:
        """Evaluate each sensor once; the errors its evaluations reported (shown on the tick in the UI)."""
        errors = []
        for sensor in (run_failure_alert, held_push_alert):
            context = dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursors.get(sensor.name),
                repository_def=self.repository,
                resources={"alerts": self.alerts},
            )
            result = sensor.evaluate_tick(context)
            self.cursors[sensor.name] = result.cursor
            errors.extend(str(r.error) for r in result.dagster_run_reactions or [] if r.error is not None)
        return errors


def run(defs: dg.Definitions, job: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def client_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line of this process but the test SMTP server's own (it logs the AUTH exchange it receives)."""
    return "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records if not r.name.startswith("mail.log"))


def assert_no_secret(texts: list[str]) -> None:
    for text in texts:
        assert SMTP_PASSWORD not in text
        assert "hook-token" not in text


def test_a_failed_run_sends_one_message_per_channel_and_a_passing_run_none(inbox, webhook, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    alerts = alert_resource(inbox, webhook)
    defs = definitions(alerts)
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance, alerts)
        passing = run(defs, "passing_refresh", instance)
        assert passing.success
        ticks.tick()
        assert (inbox.messages, webhook.posts) == ([], [])

        failing = run(defs, "broken_refresh", instance)
        assert not failing.success
        ticks.tick()
        ticks.tick()  # a later tick does not send the same incident again

    assert len(inbox.messages) == 1 and len(webhook.posts) == 1
    sender, recipients, subject, body = inbox.messages[0]
    assert (sender, recipients) == ("pipelines@example.com", ["ops@example.com", "oncall@example.com"])
    assert inbox.logins == [(SMTP_USER, SMTP_PASSWORD)]
    assert subject == "[marketing_pipelines] Run failed: broken_refresh (reload_crm)"
    slack = webhook.posts[0][1]["text"]
    for text in (body, slack):
        assert "job broken_refresh" in text
        assert "- reload_crm: Reloads the CRM extract into the warehouse." in text
        assert "records involved: failing_records 1,234" in text
        assert "the CRM extract is truncated" in text
        assert f"Run: {UI}/runs/{failing.run_id}" in text
        assert passing.run_id not in text
    assert_no_secret([body, slack, subject, client_logs(caplog), *capsys.readouterr()])


def test_a_held_push_sends_one_message_naming_the_check_and_its_records(inbox, webhook, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    alerts = alert_resource(inbox, webhook)
    defs = definitions(alerts)
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance, alerts)
        held = run(defs, "push_job", instance)
        assert not held.success
        ticks.tick()

    # one incident: the held push; the run-failure sensor leaves the check's failed step to it
    assert len(inbox.messages) == 1 and len(webhook.posts) == 1
    subject, body = inbox.messages[0][2:]
    assert (
        subject == "[marketing_pipelines] Push held by a blocking check: push_job (audience_only_opted_in on audience)"
    )
    for text in (body, webhook.posts[0][1]["text"]):
        assert "- audience_only_opted_in on audience: Nobody who opted out is pushed." in text
        assert "records involved: failing_records 17, would_remove 3" in text
        assert "Not materialized in this run: audience_push" in text
        assert f"Run: {UI}/runs/{held.run_id}" in text
    assert_no_secret([body, subject, webhook.posts[0][1]["text"], client_logs(caplog), *capsys.readouterr()])


def test_channels_are_off_when_unset_and_a_refused_webhook_is_reported_without_its_url(inbox, webhook):
    assert build_resources({})["alerts"].channels == []
    assert AlertResource(smtp_host="127.0.0.1").channels == []  # no recipient: e-mail stays off
    refused = alert_resource(inbox, webhook, token="T0001/B0002/hook-token-revoked")
    with pytest.raises(AlertDeliveryError) as error:
        refused.send("subject", "text")
    assert "slack: HTTPStatusError: HTTP 404" in str(error.value) and "delivered: ['email']" in str(error.value)
    assert "hook-token" not in str(error.value) and str(webhook.port) not in str(error.value)
    assert len(inbox.messages) == 1 and webhook.posts == []

    defs = definitions(refused)  # through the sensor: the tick reports the refusal, without the URL
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance, refused)
        assert not run(defs, "broken_refresh", instance).success
        errors = ticks.tick()
    assert len(errors) == 1 and "slack: HTTPStatusError: HTTP 404" in errors[0], errors
    assert "hook-token" not in errors[0]
    assert len(inbox.messages) == 2 and webhook.posts == []  # the e-mail still went out, once


def test_the_code_location_runs_both_alert_sensors_with_its_alert_resource():
    from marketing_pipelines.definitions import defs

    repository = defs().get_repository_def()
    for name in ("run_failure_alert", "held_push_alert"):
        sensor = repository.get_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.description
        assert "alerts" in sensor.required_resource_keys
    assert "alerts" in repository.get_top_level_resources()
