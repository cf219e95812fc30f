"""The sync-health thresholds: when the WARN health check on every sync escalates to ERROR."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import dagster as dg
from pydantic import model_validator

RATE_ENV = "SYNC_HEALTH_MAX_REJECTION_RATE"
AGE_ENV = "SYNC_HEALTH_MAX_REJECTION_AGE_HOURS"
DEFAULT_MAX_REJECTION_RATE = "0.05"
DEFAULT_MAX_REJECTION_AGE_HOURS = 48


@dataclass(frozen=True)
class SyncHealthThresholds:
    """Above either, a sync's health check fails with ERROR instead of WARN."""

    max_rejection_rate: float
    """The share of the records the latest run considered (audience rows and exits) it may see rejected (0 to 1)."""
    max_rejection_age_hours: int
    """How long the oldest unresolved rejection may wait, in hours."""


def parse_rate(value: Any) -> float:
    """A rejection rate: a decimal from 0 to 1 (``0.05`` is 5%); ValueError naming the variable otherwise."""
    try:
        rate = Decimal(str(value).strip()) if isinstance(value, str | int | float | Decimal) else None
    except InvalidOperation:
        rate = None
    if isinstance(value, bool) or rate is None or not rate.is_finite() or not 0 <= rate <= 1:
        raise ValueError(f"max_rejection_rate ({RATE_ENV}) must be a decimal from 0 to 1 (0.05 is 5%), not {value!r}")
    return float(rate)


def parse_age_hours(value: Any) -> int:
    """A rejection age: a whole number of hours from 1; ValueError naming the variable otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_rejection_age_hours ({AGE_ENV}) must be a positive whole number of hours, not {value!r}")
    return value


class SyncHealthResource(dg.ConfigurableResource):
    """The thresholds of the sync health checks, bound to ``SYNC_HEALTH_MAX_REJECTION_RATE`` (default 0.05) and
    ``SYNC_HEALTH_MAX_REJECTION_AGE_HOURS`` (default 48) by ``build_resources``. A bad value fails the check's step
    with a message naming the variable; the push it follows is already done.

    ``max_rejection_rate`` is text because Dagster binds environment variables as text or whole numbers only.
    """

    max_rejection_rate: str = DEFAULT_MAX_REJECTION_RATE
    max_rejection_age_hours: int = DEFAULT_MAX_REJECTION_AGE_HOURS

    @model_validator(mode="before")
    @classmethod
    def _valid_thresholds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        rate = data.get("max_rejection_rate", DEFAULT_MAX_REJECTION_RATE)
        if not getattr(rate, "env_var_name", None):  # bound to the environment: checked when a run resolves it
            parse_rate(rate)
        age = data.get("max_rejection_age_hours", DEFAULT_MAX_REJECTION_AGE_HOURS)
        if not getattr(age, "env_var_name", None):
            parse_age_hours(age)
        return data

    def thresholds(self) -> SyncHealthThresholds:
        return SyncHealthThresholds(
            max_rejection_rate=parse_rate(self.max_rejection_rate),
            max_rejection_age_hours=parse_age_hours(self.max_rejection_age_hours),
        )
