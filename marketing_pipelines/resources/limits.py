"""The communication limits every destination resource carries: marketing e-mails a person may receive in any
24 hours and any 7 days, across tools."""

import dagster as dg
from pydantic import Field, model_validator

from marketing_pipelines.sync.limits import DEFAULT_PER_DAY, DEFAULT_PER_WEEK, CommunicationLimits


class CommunicationLimitSettings(dg.ConfigurableResource):
    """``emails_per_day`` / ``emails_per_week`` (bound to ``MARKETING_EMAILS_PER_DAY`` /
    ``MARKETING_EMAILS_PER_WEEK`` on every destination resource, so one value holds across tools): positive whole
    numbers, the daily one at most the weekly one; anything else fails configuration before any request."""

    emails_per_day: int = Field(default=DEFAULT_PER_DAY, ge=1)
    emails_per_week: int = Field(default=DEFAULT_PER_WEEK, ge=1)

    @model_validator(mode="after")
    def _day_within_week(self) -> "CommunicationLimitSettings":
        if self.emails_per_day > self.emails_per_week:
            raise ValueError(
                f"emails_per_day ({self.emails_per_day}) must not exceed emails_per_week ({self.emails_per_week})"
            )
        return self

    def communication_limits(self) -> CommunicationLimits:
        return CommunicationLimits(per_day=self.emails_per_day, per_week=self.emails_per_week)
