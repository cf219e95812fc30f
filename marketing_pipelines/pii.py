"""Masking of personal data shown in the UI (check metadata, previews, logs)."""

from __future__ import annotations

import re

#: A plausible e-mail address: something, one @, a domain with a dot; no whitespace.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")  # \Z: `$` would accept a trailing newline


def mask_email(email: str | None) -> str | None:
    """``jane.doe@example.com`` → ``j***@example.com``; values without an ``@`` are fully masked."""
    if email is None:
        return None
    local, at, domain = str(email).partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


#: An e-mail address inside free text (an API's error message, for instance).
EMAIL_IN_TEXT = re.compile(r"[^@\s'\"<>(),;:\[\]]+@[^@\s'\"<>(),;:\[\]]+\.[A-Za-z]{2,}")


def mask_emails_in(text: str) -> str:
    """Every e-mail address in ``text`` masked like ``mask_email`` (``jane@x.com`` → ``j***@x.com``)."""
    return EMAIL_IN_TEXT.sub(lambda match: mask_email(match.group(0)) or "***", text)
