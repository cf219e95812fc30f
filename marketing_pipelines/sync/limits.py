"""Communication limits across tools: a person receives at most `per_day` marketing e-mails in any 24 hours and
`per_week` in any 7 days, whichever tool sends them.

Iterable journeys and Gainsight programs each see only their own sends; the warehouse sees both through
`ops.sync_changelog`. A record that starts a journey (a destination's `journey` names one, see `Destination`) is
sent only while the person's accepted journey starts of the last 24 hours and 7 days, across destinations, plus
this run's, stay within the limits. Otherwise it is deferred: not sent and not marked synced, so a later run sends
it once the window allows (never dropped), and listed in `ops.sync_deferrals` with the time it becomes sendable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from marketing_pipelines.sync.ops_tables import SYNC_CHANGELOG
from marketing_pipelines.warehouse import Warehouse

DEFAULT_PER_DAY = 2
DEFAULT_PER_WEEK = 7
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class CommunicationLimits:
    """Marketing e-mails a person may receive in any 24 hours and in any 7 days (positive whole numbers)."""

    per_day: int = DEFAULT_PER_DAY
    per_week: int = DEFAULT_PER_WEEK

    def __post_init__(self) -> None:
        for name in ("per_day", "per_week"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"communication limit {name} must be a positive whole number, not {value!r}")


@dataclass
class Deferral:
    """A journey-starting record held back: whose it is, why, and when the window allows it."""

    record_key: str
    person: str
    reason: str
    sendable_at: datetime


@dataclass
class JourneyWindow:
    """The journey starts of each person within the last 7 days (accepted, from the changelog) plus the ones this
    run admits; decides, record by record, whether a journey start is sent now or deferred (and until when)."""

    limits: CommunicationLimits
    now: datetime
    starts: dict[str, list[datetime]] = field(default_factory=dict)
    """person -> times of their journey starts, oldest first (deferred ones at the time they become sendable)."""
    started: dict[str, str] = field(default_factory=dict)
    """record key -> the journey it starts, for the records admitted in this run and not yet logged (the engine
    drops a record's entry once its outcome is in the changelog)."""
    deferred: list[Deferral] = field(default_factory=list)

    @classmethod
    def load(cls, warehouse: Warehouse, limits: CommunicationLimits, now: datetime) -> JourneyWindow:
        """The window at `now`: every accepted journey start of the last 7 days, across destinations."""
        rows = warehouse.query(
            f"""select person, logged_at from {SYNC_CHANGELOG}
            where outcome = 'accepted' and journey is not null and person is not null
            and logged_at > cast('{(now - WEEK).isoformat(sep=" ")}' as timestamp)
            order by person, logged_at"""
        )
        window = cls(limits, now)
        for person, logged_at in rows:
            window.starts.setdefault(str(person), []).append(_naive(logged_at))
        return window

    def settle(self, warehouse: Warehouse) -> None:
        """Place the deferrals again on the changelog's times, now that this run's accepted starts are logged (a
        start the destination rejected no longer counts): each `sendable_at` is then computed from the changelog."""
        logged = JourneyWindow.load(warehouse, self.limits, self.now)
        for deferral in self.deferred:
            times = logged.starts.setdefault(deferral.person, [])
            deferral.sendable_at = logged._earliest(times)
            times.append(deferral.sendable_at)

    def admit(self, record_key: str, person: str | None, journey: str) -> bool:
        """Whether the journey start `record_key` of `person` goes out now; if not, it is deferred (a record that
        names no person cannot be counted and goes out)."""
        if person is None:
            self.started[record_key] = journey
            return True
        times = self.starts.setdefault(person, [])
        at = self._earliest(times)
        times.append(at)
        if at <= self.now:
            self.started[record_key] = journey
            return True
        self.deferred.append(Deferral(record_key, person, self._reason(times[:-1], at), at))
        return False

    def _earliest(self, times: list[datetime]) -> datetime:
        """The first moment from now (and not before a start already placed) at which one more start keeps both
        windows within their limits: a start at `t` counts until `t` + 24 hours (or 7 days)."""
        floor = max([self.now, *times])
        candidates = sorted({floor, *(t + DAY for t in times), *(t + WEEK for t in times)})
        for at in candidates:
            if at < floor:
                continue
            if _within(times, at, DAY) < self.limits.per_day and _within(times, at, WEEK) < self.limits.per_week:
                return at
        raise AssertionError("unreachable: 7 days after the last start, the windows are empty")

    def _reason(self, times: list[datetime], at: datetime) -> str:
        day, week = _within(times, self.now, DAY), _within(times, self.now, WEEK)
        if week >= self.limits.per_week:
            return f"{week} marketing e-mails in 7 days (limit {self.limits.per_week})"
        if day >= self.limits.per_day:
            return f"{day} marketing e-mails in 24 hours (limit {self.limits.per_day})"
        return "earlier deferred journey starts of this person go first"

    def deferrals_frame(self) -> Any:
        """`deferred_records` of the deferral statements: key, person, reason, sendable_at (as text)."""
        import pandas as pd

        rows = [(d.record_key, d.person, d.reason, d.sendable_at.isoformat(sep=" ")) for d in self.deferred]
        frame = pd.DataFrame(rows, columns=["record_key", "person", "reason", "sendable_at"])
        return frame.astype("string")


def _within(times: list[datetime], at: datetime, span: timedelta) -> int:
    """Starts at or before `at` that still count at `at` (less than `span` ago)."""
    return sum(1 for t in times if at - span < t <= at)


def _naive(value: Any) -> datetime:
    """A timestamp as the engine keeps it: naive UTC."""
    import pandas as pd

    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()
