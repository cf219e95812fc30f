"""The communication limits every destination resource carries: marketing e-mails a person may receive in any
24 hours and any 7 days, across tools."""

from typing import Any

import dagster as dg
from pydantic import model_validator

from marketing_pipelines.sync.limits import DEFAULT_PER_DAY, DEFAULT_PER_WEEK, CommunicationLimits

DEFAULTS = {"emails_per_day": DEFAULT_PER_DAY, "emails_per_week": DEFAULT_PER_WEEK}


class CommunicationLimitSettings(dg.ConfigurableResource):
    """``emails_per_day`` / ``emails_per_week`` (bound to ``MARKETING_EMAILS_PER_DAY`` /
    ``MARKETING_EMAILS_PER_WEEK`` on every destination resource, so one value holds across tools): positive whole
    numbers, the daily one at most the weekly one; anything else fails configuration before any request."""

    emails_per_day: int = DEFAULT_PER_DAY
    emails_per_week: int = DEFAULT_PER_WEEK

    @model_validator(mode="before")
    @classmethod
    def _positive_day_within_week(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        values = {name: data.get(name, default) for name, default in DEFAULTS.items()}
        if any(getattr(value, "env_var_name", None) for value in values.values()):
            return data  # bound to the environment: checked when a run resolves it
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, not {value!r}")
        if values["emails_per_day"] > values["emails_per_week"]:
            raise ValueError(
                f"emails_per_day ({values['emails_per_day']}) must not exceed emails_per_week "
                f"({values['emails_per_week']})"
            )
        return data

    def communication_limits(self) -> CommunicationLimits:
        return CommunicationLimits(per_day=self.emails_per_day, per_week=self.emails_per_week)
