"""Masking of personal data shown in the UI (check metadata, previews, logs)."""

from __future__ import annotations

import re

#: A plausible e-mail address: something, one @, a domain with a dot; no whitespace.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def mask_email(email: str | None) -> str | None:
    """``jane.doe@example.com`` → ``j***@example.com``; values without an ``@`` are fully masked."""
    if email is None:
        return None
    local, at, domain = str(email).partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"
