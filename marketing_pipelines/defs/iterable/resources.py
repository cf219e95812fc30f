"""The Iterable resource: the API key and endpoint from the environment, pacing and batch settings."""

from __future__ import annotations

import dagster as dg
from pydantic import field_validator

from marketing_pipelines.clients.iterable import DEFAULT_USERS_PER_REQUEST, US_BASE_URL, IterableClient

OPT_IN_MESSAGE_TYPE = "GitLab Marketing"
# Seed 000: the default `Marketing Message` type is opt-out and could e-mail unsubscribed people.
FORBIDDEN_MESSAGE_TYPES = frozenset({"marketing message"})


class IterableResource(dg.ConfigurableResource):
    """Iterable's API. Without ``ITERABLE_API_KEY`` every sync runs in dry-run (requests go to ``ops.outbox``).

    ``api_key`` and ``base_url`` left unset are read from ``ITERABLE_API_KEY`` / ``ITERABLE_BASE_URL`` through
    ``dagster.EnvVar`` when a run starts; the key never reaches logs, metadata or the outbox.
    """

    api_key: str | None = None
    base_url: str | None = None
    users_per_request: int = DEFAULT_USERS_PER_REQUEST
    bulk_update_per_second: float = 5
    track_bulk_per_second: float = 10
    marketing_message_type_name: str = OPT_IN_MESSAGE_TYPE
    marketing_message_type_id: int | None = None

    @field_validator("marketing_message_type_name")
    @classmethod
    def _opt_in_only(cls, value: str) -> str:
        if value.strip().lower() in FORBIDDEN_MESSAGE_TYPES:
            raise ValueError(
                f"{value!r} is the opt-out message type and must never be used for marketing sends; "
                f"use the opt-in {OPT_IN_MESSAGE_TYPE!r} type (seed 000)"
            )
        return value

    def resolved_api_key(self) -> str | None:
        return self.api_key or dg.EnvVar("ITERABLE_API_KEY").get_value() or None

    def resolved_base_url(self) -> str:
        return self.base_url or dg.EnvVar("ITERABLE_BASE_URL").get_value() or US_BASE_URL

    @property
    def is_dry_run(self) -> bool:
        return self.resolved_api_key() is None

    def get_client(self) -> IterableClient | None:
        """A paced, retrying client, or None in dry-run."""
        api_key = self.resolved_api_key()
        if api_key is None:
            return None
        return IterableClient(
            api_key,
            self.resolved_base_url(),
            bulk_update_per_second=self.bulk_update_per_second,
            track_bulk_per_second=self.track_bulk_per_second,
        )
