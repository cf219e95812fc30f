"""Validate one landed event line (DESIGN 5.1): a clean record, or a reason that names the field."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EMPLOYEE_BUCKETS = frozenset({"1-99", "100-499", "500-1999", "2000+"})
MAX_LINE_BYTES = 1024 * 1024
#: Seed fields that are free text (null allowed).
TEXT_FIELDS = ("company", "country", "firstName", "lastName", "signupReason", "state", "userRole")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_line(text: str, *, today: dt.date | None = None) -> dict[str, Any] | str:
    """The line as a clean record (snake_case columns of the raw table), or why it cannot be loaded."""
    if not text.strip():
        return "empty line"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
        return f"line longer than {MAX_LINE_BYTES} bytes"
    try:
        event = json.loads(text)
    except ValueError as error:
        return f"not JSON: {error}"
    if not isinstance(event, dict):
        return f"not a JSON object (a {type(event).__name__})"

    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not event_id.strip():
        return "event_id: missing or not a non-empty string"
    if len(event_id.encode("utf-8")) > 256:
        return "event_id: longer than 256 bytes"
    occurred = event.get("occurred_at")
    if not isinstance(occurred, str):
        return "occurred_at: missing or not a string"
    try:
        occurred_at = dt.datetime.fromisoformat(occurred.replace("Z", "+00:00"))
    except ValueError:
        return f"occurred_at: not an ISO-8601 timestamp: {occurred[:40]!r}"
    if occurred_at.tzinfo is not None:
        occurred_at = occurred_at.astimezone(dt.UTC).replace(tzinfo=None)
    email = event.get("email")
    if not isinstance(email, str):
        return "email: missing or not a string"
    if not EMAIL_PATTERN.match(email.strip()):
        return f"email: not an e-mail address ({len(email)} characters)"
    if not _int(event.get("user_id")):
        return "user_id: missing or not an integer"
    namespace_id = event.get("namespace_id")
    if namespace_id is not None and not _int(namespace_id):
        return "namespace_id: not an integer or null"
    if not isinstance(event.get("companyNamespace"), bool):
        return f"companyNamespace: not a boolean ({json.dumps(event.get('companyNamespace'))[:40]})"
    bucket = event.get("employeeBucket")
    if bucket not in EMPLOYEE_BUCKETS:
        return f"employeeBucket: {json.dumps(bucket)[:40]} is not one of {sorted(EMPLOYEE_BUCKETS)}"
    trial_date = event.get("latest_trial_start_date")
    trial_start: dt.date | None = None
    if trial_date is not None:
        if not isinstance(trial_date, str) or not DATE_PATTERN.match(trial_date):
            return f"latest_trial_start_date: not a YYYY-MM-DD date: {json.dumps(trial_date)[:40]}"
        try:
            trial_start = dt.date.fromisoformat(trial_date)
        except ValueError:
            return f"latest_trial_start_date: not a calendar date: {trial_date!r}"
        if trial_start > (today or dt.datetime.now(dt.UTC).date()) + dt.timedelta(days=1):
            return f"latest_trial_start_date: in the future: {trial_date!r}"
    for name in TEXT_FIELDS:
        if event.get(name) is not None and not isinstance(event[name], str):
            return f"{name}: not a string or null"
    setup = event.get("setup_for_company")
    if setup is not None and not isinstance(setup, bool):
        return "setup_for_company: not a boolean or null"

    return {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "email": email,
        "user_id": event["user_id"],
        "namespace_id": namespace_id,
        "company": event.get("company"),
        "company_namespace": event["companyNamespace"],
        "country": event.get("country"),
        "employee_bucket": bucket,
        "first_name": event.get("firstName"),
        "last_name": event.get("lastName"),
        "latest_trial_start_date": trial_start,
        "signup_reason": event.get("signupReason"),
        "state": event.get("state"),
        "user_role": event.get("userRole"),
        "setup_for_company": setup,
    }
