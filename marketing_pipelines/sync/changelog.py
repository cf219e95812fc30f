"""Questions `ops.sync_changelog` answers, as the README shows them (placeholders `?`, on every engine)."""

from __future__ import annotations

#: Everything sent to one person, across destinations, oldest first. Parameter: the e-mail address.
PERSON_HISTORY_SQL = """select logged_at, destination, action, outcome, record_key, payload_hash, run_id
from ops.sync_changelog
where person = md5(lower(trim(?)))
order by logged_at, destination"""

#: The records a destination held at the end of day D: each record's latest accepted change before then, unless it
#: was a removal. Parameters: the destination, the first moment after D (e.g. '2026-11-21 00:00:00').
AUDIENCE_ON_DATE_SQL = """select record_key
from (
    select record_key, action,
        row_number() over (partition by record_key order by logged_at desc) as latest
    from ops.sync_changelog
    where destination = ? and outcome = 'accepted' and record_key is not null
        and logged_at < cast(? as timestamp)
) as history
where latest = 1 and action <> 'removed'
order by record_key"""
