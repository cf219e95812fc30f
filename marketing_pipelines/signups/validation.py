"""Validate one landed event line: a clean record, or a reason a person understands that names the field.

Never raises for any text: every way a line can be wrong ends in a reason (see the README's bad-input table).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from marketing_pipelines.pii import EMAIL_PATTERN
from marketing_pipelines.signups.tables import event_columns

DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EMPLOYEE_BUCKETS = frozenset({"1-99", "100-499", "500-1999", "2000+"})
MAX_LINE_BYTES = 1024 * 1024
#: Landed event ids longer than this are refused (the Iterable event id is a uuid5 of kind and id, whatever its size).
MAX_EVENT_ID_BYTES = 256
MAX_EMAIL_CHARS = 254
#: GitLab ids are 64-bit signed integers (`bigint`).
MAX_ID = 2**63 - 1
#: Events are accepted from this time on, up to a day after the ingestion time.
EARLIEST_OCCURRED_AT = dt.datetime(1970, 1, 1)
#: Column types whose values arrive as JSON strings.
STRING_TYPES = frozenset({"varchar", "date", "timestamp"})
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


class _DuplicateKey(Exception):
    pass


class _NotJsonConstant(Exception):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise _NotJsonConstant(name)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A short, storable rendering of a value for a reason (no NUL, no lone surrogate)."""
    return safe_text(json.dumps(value)[:40])


def safe_text(text: str) -> str:
    """``text`` with NUL characters and unpaired surrogates escaped, so any warehouse can store it."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def required_fields() -> list[str]:
    """The event fields that must be present and not null (the README's required ones); the rest may be missing."""
    return [column.event_field for column in event_columns() if column.required and column.event_field]


def _bad_characters(event: dict[str, Any]) -> str | None:
    """Which kept field holds a NUL or an unpaired surrogate (they cannot be stored or sent), if any."""
    string_fields = [column.event_field for column in event_columns() if column.sql_type in STRING_TYPES]
    for name in (field for field in string_fields if field):
        value = event.get(name)
        if isinstance(value, str):
            if "\x00" in value:
                return f"{name}: contains a NUL character (\\u0000)"
            if LONE_SURROGATE.search(value):
                return f"{name}: contains an unpaired UTF-16 surrogate escape (e.g. \\ud800), not a character"
    return None


def _occurred_at(value: Any, today: dt.date) -> dt.datetime | str:
    if not isinstance(value, str):
        return "occurred_at: missing or not a string"
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return f"occurred_at: not an ISO-8601 timestamp or not a calendar date/time: {_shown(value)}"
    if parsed.tzinfo is None:
        return f"occurred_at: no time zone (add Z or an offset such as +02:00): {_shown(value)}"
    try:
        utc = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:
        return f"occurred_at: out of range once converted to UTC: {_shown(value)}"
    latest = dt.datetime.combine(today, dt.time()) + dt.timedelta(days=2)
    if not EARLIEST_OCCURRED_AT <= utc < latest:
        return f"occurred_at: outside 1970-01-01 .. tomorrow (UTC): {_shown(value)}"
    return utc


def validate_line(text: str, *, today: dt.date | None = None) -> dict[str, Any] | str:
    """The line as a clean record (snake_case columns of the raw table), or why it cannot be loaded."""
    if not text.strip():
        return "empty line"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
        return f"line longer than {MAX_LINE_BYTES} bytes"
    try:
        event = json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except _DuplicateKey as duplicate:
        return f"duplicate key: {_shown(duplicate.args[0])} appears twice in the object"
    except _NotJsonConstant as constant:
        return f"not JSON: {constant.args[0]} is not a JSON value"
    except RecursionError:
        return "not JSON: nested too deeply"
    except ValueError as error:  # JSONDecodeError, and integers longer than Python's digit limit
        return f"not JSON: {safe_text(str(error))[:200]}"
    if not isinstance(event, dict):
        return f"not a JSON object (a JSON {_JSON_TYPES.get(type(event), 'value')}): one object per line"
    return validate_event(event, today=today)


def validate_event(event: dict[str, Any], *, today: dt.date | None = None) -> dict[str, Any] | str:
    """One parsed event object as a clean record, or why it cannot be loaded."""
    today = today or dt.datetime.now(dt.UTC).date()
    required = required_fields()
    missing = [name for name in required if event.get(name) is None]
    if missing:
        return f"{missing[0]}: missing or null (required: {', '.join(required)})"
    if bad := _bad_characters(event):
        return bad

    event_id = event["event_id"]
    if not isinstance(event_id, str) or not event_id.strip():
        return "event_id: not a non-empty string"
    if len(event_id.encode("utf-8")) > MAX_EVENT_ID_BYTES:
        return f"event_id: longer than {MAX_EVENT_ID_BYTES} bytes"
    occurred_at = _occurred_at(event["occurred_at"], today)
    if isinstance(occurred_at, str):
        return occurred_at
    email = event["email"]
    if not isinstance(email, str):
        return "email: not a string"
    email = email.strip().lower()
    if len(email) > MAX_EMAIL_CHARS:
        return f"email: longer than {MAX_EMAIL_CHARS} characters"
    if not EMAIL_PATTERN.match(email):
        return f"email: not an e-mail address ({len(email)} characters)"
    user_id = event["user_id"]
    if not _int(user_id):
        return "user_id: not an integer"
    if not 0 < user_id <= MAX_ID:
        return f"user_id: out of range (1 .. 2^63-1): {_shown(user_id)}"
    namespace_id = event.get("namespace_id")
    if namespace_id is not None and not (_int(namespace_id) and 0 < namespace_id <= MAX_ID):
        return f"namespace_id: not an integer in 1 .. 2^63-1, or null: {_shown(namespace_id)}"
    if not isinstance(event["companyNamespace"], bool):
        return f"companyNamespace: not a boolean ({_shown(event['companyNamespace'])})"
    bucket = event.get("employeeBucket")
    if bucket is not None and bucket not in EMPLOYEE_BUCKETS:
        return f"employeeBucket: {_shown(bucket)} is not one of {sorted(EMPLOYEE_BUCKETS)} or null"
    trial_date = event.get("latest_trial_start_date")
    trial_start: dt.date | None = None
    if trial_date is not None:
        if not isinstance(trial_date, str) or not DATE_PATTERN.match(trial_date):
            return f"latest_trial_start_date: not a YYYY-MM-DD date: {_shown(trial_date)}"
        try:
            trial_start = dt.date.fromisoformat(trial_date)
        except ValueError:
            return f"latest_trial_start_date: not a calendar date: {_shown(trial_date)}"
        if trial_start > today + dt.timedelta(days=1):
            return f"latest_trial_start_date: in the future: {_shown(trial_date)}"
    setup = event.get("setup_for_company")
    if setup is not None and not isinstance(setup, bool):
        return "setup_for_company: not a boolean or null"

    # the fields checked one by one above; every other event column is free text (null allowed)
    cleaned = {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "email": email,
        "user_id": user_id,
        "namespace_id": namespace_id,
        "company_namespace": event["companyNamespace"],
        "employee_bucket": bucket,
        "latest_trial_start_date": trial_start,
        "setup_for_company": setup,
    }
    record: dict[str, Any] = {}
    for column in event_columns():
        if column.event_field is None:
            continue  # set by the loader
        if column.name in cleaned:
            record[column.name] = cleaned[column.name]
            continue
        value = event.get(column.event_field)
        if value is not None and not isinstance(value, str):
            return f"{column.event_field}: not a string or null"
        record[column.name] = value
    return record
