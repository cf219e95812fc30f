"""HTTP clients for the reverse-ETL destinations (plain classes; Dagster resources wrap them)."""

from __future__ import annotations

from marketing_pipelines.clients._http import (
    ApiError,
    ClientStats,
    JsonApiClient,
    OversizedRecordError,
    RateLimiter,
    RetryPolicy,
    batches_by_size,
    dumps_compact,
    envelope_size,
    parse_retry_after,
    redact,
)
from marketing_pipelines.clients.iterable import (
    DEFAULT_EVENTS_PER_REQUEST,
    DEFAULT_USERS_PER_REQUEST,
    EU_BASE_URL,
    MAX_BODY_BYTES,
    US_BASE_URL,
    BulkResult,
    IterableClient,
)

__all__ = [
    "DEFAULT_EVENTS_PER_REQUEST",
    "DEFAULT_USERS_PER_REQUEST",
    "EU_BASE_URL",
    "MAX_BODY_BYTES",
    "US_BASE_URL",
    "ApiError",
    "BulkResult",
    "ClientStats",
    "IterableClient",
    "JsonApiClient",
    "OversizedRecordError",
    "RateLimiter",
    "RetryPolicy",
    "batches_by_size",
    "dumps_compact",
    "envelope_size",
    "parse_retry_after",
    "redact",
]
