"""The alert channels: e-mail over SMTP and a Slack incoming webhook, each off until its settings are given.

The code location binds every field to an ``ALERT_*`` variable (``build_resources``). The SMTP password and the
webhook URL (its path is the secret) never appear in a message, a log line or a raised error.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import dagster as dg
import httpx

DEFAULT_UI_BASE_URL = "http://127.0.0.1:3000"
#: Seconds a channel may take to accept one message.
TIMEOUT_SECONDS = 10.0
SMTPS_PORT = 465


class _Redact(logging.Filter):
    """Replaces a secret in log records (httpx logs every request's full URL at INFO)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), ()
        return True


@contextlib.contextmanager
def _redacted_logs(secret: str, *loggers: str) -> Iterator[None]:
    """While open, ``secret`` is replaced by ``***`` in what ``loggers`` log."""
    redact = _Redact(secret)
    for name in loggers:
        logging.getLogger(name).addFilter(redact)
    try:
        yield
    finally:
        for name in loggers:
            logging.getLogger(name).removeFilter(redact)


class AlertDeliveryError(Exception):
    """A channel did not accept a message; the text names the channel, never a secret."""


class AlertResource(dg.ConfigurableResource):
    """Where alerts go. E-mail is on when ``smtp_host`` and ``email_to`` are set; Slack when ``slack_webhook_url``
    is set. With neither, alerts are only logged by the sensors."""

    smtp_host: str | None = None
    smtp_port: int = 587
    """465: TLS from the start; any other port upgrades with STARTTLS when the server offers it."""
    smtp_user: str | None = None
    smtp_password: str | None = None
    email_from: str = "marketing-pipelines@localhost"
    email_to: str | None = None
    """Recipients, separated by commas."""
    slack_webhook_url: str | None = None
    ui_base_url: str = DEFAULT_UI_BASE_URL
    """The Dagster UI's address, for the link to the run in each message."""

    @property
    def recipients(self) -> list[str]:
        return [address.strip() for address in (self.email_to or "").split(",") if address.strip()]

    @property
    def channels(self) -> list[str]:
        """The channels that are on: ``email``, ``slack``."""
        return [
            name
            for name, on in (
                ("email", bool(self.smtp_host and self.recipients)),
                ("slack", bool(self.slack_webhook_url)),
            )
            if on
        ]

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_base_url.rstrip('/')}/runs/{run_id}"

    def redact(self, text: str) -> str:
        """``text`` with the secrets this resource holds replaced by ``***``."""
        for secret in (self.smtp_password, self.slack_webhook_url):
            if secret:
                text = text.replace(secret, "***")
        return text

    def send(self, subject: str, text: str) -> list[str]:
        """Send one message on every channel that is on; the channels that accepted it.

        Every channel is tried; if any refused, ``AlertDeliveryError`` names each failure (secrets redacted).
        """
        delivered: list[str] = []
        failures: list[str] = []
        for channel in self.channels:
            try:
                if channel == "email":
                    self._send_email(subject, text)
                else:
                    self._post_slack(f"*{subject}*\n{text}")
                delivered.append(channel)
            except (OSError, smtplib.SMTPException, httpx.HTTPError) as error:
                reason = f"HTTP {error.response.status_code}" if isinstance(error, httpx.HTTPStatusError) else error
                failures.append(self.redact(f"{channel}: {type(error).__name__}: {reason}"))
        if failures:
            raise AlertDeliveryError(f"alert not delivered ({'; '.join(failures)}); delivered: {delivered or 'none'}")
        return delivered

    def _send_email(self, subject: str, text: str) -> None:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.email_from
        message["To"] = ", ".join(self.recipients)
        message.set_content(text)
        host = self.smtp_host or ""
        if self.smtp_port == SMTPS_PORT:
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, self.smtp_port, timeout=TIMEOUT_SECONDS)
        else:
            client = smtplib.SMTP(host, self.smtp_port, timeout=TIMEOUT_SECONDS)
        with client:
            if self.smtp_port != SMTPS_PORT:
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
            if self.smtp_user:
                client.login(self.smtp_user, self.smtp_password or "")
            client.send_message(message)

    def _post_slack(self, text: str) -> None:
        url = self.slack_webhook_url or ""
        with _redacted_logs(url, "httpx", "httpcore"):
            response = httpx.post(url, json={"text": text}, timeout=TIMEOUT_SECONDS)
        response.raise_for_status()
