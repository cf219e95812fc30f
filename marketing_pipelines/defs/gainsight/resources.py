"""The Gainsight resource: access key and tenant domain from the environment, pacing and batch settings."""

import dagster as dg
from pydantic import Field

from marketing_pipelines.clients.gainsight import (
    DEFAULT_CALLS_PER_MINUTE,
    MAX_RECORDS_PER_CALL,
    GainsightClient,
    tenant_limiter,
)


class GainsightResource(dg.ConfigurableResource):
    """Gainsight NXT's API. Without ``GAINSIGHT_ACCESS_KEY`` every sync runs in dry-run (requests go to
    ``ops.outbox``).

    ``access_key`` and ``base_url`` left unset are read from ``GAINSIGHT_ACCESS_KEY`` / ``GAINSIGHT_BASE_URL``
    through ``dagster.EnvVar`` when a run starts; the key never reaches logs, metadata or the outbox.
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

    def resolved_access_key(self) -> str | None:
        return self.access_key or dg.EnvVar("GAINSIGHT_ACCESS_KEY").get_value() or None

    def resolved_base_url(self) -> str | None:
        return self.base_url or dg.EnvVar("GAINSIGHT_BASE_URL").get_value() or None

    @property
    def is_dry_run(self) -> bool:
        return self.dry_run or self.resolved_access_key() is None

    def get_client(self) -> GainsightClient | None:
        """A paced, retrying client, or None in dry-run. A key without a tenant domain fails before any request."""
        access_key = self.resolved_access_key()
        if access_key is None:
            return None
        base_url = self.resolved_base_url()
        if base_url is None:
            raise dg.Failure(
                description="GAINSIGHT_ACCESS_KEY is set but GAINSIGHT_BASE_URL is not: set it to the tenant's "
                "API domain (e.g. https://<tenant>.gainsightcloud.com). Nothing was sent.",
                metadata={"missing_setting": "GAINSIGHT_BASE_URL"},
            )
        return GainsightClient(
            access_key,
            base_url,
            limiter=tenant_limiter(base_url.rstrip("/"), self.calls_per_window, self.window_seconds),
        )
