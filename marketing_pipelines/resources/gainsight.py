"""The Gainsight resource: the access key and tenant domain it is given, pacing and batch settings."""

import dagster as dg
from pydantic import Field

from marketing_pipelines.clients.gainsight import (
    DEFAULT_CALLS_PER_MINUTE,
    MAX_RECORDS_PER_CALL,
    GainsightClient,
    tenant_limiter,
)
from marketing_pipelines.resources.limits import CommunicationLimitSettings


class GainsightResource(CommunicationLimitSettings):
    """Gainsight NXT's API. Without an ``access_key`` every sync runs in dry-run (requests go to ``ops.outbox``).

    The code location binds ``access_key`` and ``base_url`` to ``GAINSIGHT_ACCESS_KEY`` / ``GAINSIGHT_BASE_URL``
    (``build_resources``); the key never reaches logs, metadata or the outbox.
    ``calls_per_window`` calls in any ``window_seconds`` (default: 100 a minute, Gainsight's documented tenant
    limit) pace every call of both syncs together (one limiter per tenant and process); ``records_per_call`` is
    capped at Gainsight's 50.
    """

    access_key: str | None = None
    base_url: str | None = None
    records_per_call: int = Field(default=MAX_RECORDS_PER_CALL, ge=1, le=MAX_RECORDS_PER_CALL)
    calls_per_window: int = Field(default=DEFAULT_CALLS_PER_MINUTE, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)
    dry_run: bool = False
    """Write requests to ``ops.outbox`` instead of sending them, even with an access key."""

    @property
    def is_dry_run(self) -> bool:
        return self.dry_run or not self.access_key

    def get_client(self) -> GainsightClient | None:
        """A paced, retrying client, or None in dry-run. A key without a tenant domain fails before any request."""
        if not self.access_key:
            return None
        base_url = self.base_url
        if not base_url:
            raise dg.Failure(
                description="GAINSIGHT_ACCESS_KEY is set but GAINSIGHT_BASE_URL is not: set it to the tenant's "
                "API domain (e.g. https://<tenant>.gainsightcloud.com). Nothing was sent.",
                metadata={"missing_setting": "GAINSIGHT_BASE_URL"},
            )
        return GainsightClient(
            self.access_key,
            base_url,
            limiter=tenant_limiter(base_url.rstrip("/"), self.calls_per_window, self.window_seconds),
        )
