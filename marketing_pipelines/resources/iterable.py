"""The Iterable resource: the API key, endpoint and opt-in message type it is given, pacing and batch settings."""

from __future__ import annotations

import dagster as dg
from pydantic import field_validator

from marketing_pipelines.clients.iterable import DEFAULT_USERS_PER_REQUEST, US_BASE_URL, IterableClient
from marketing_pipelines.resources.limits import CommunicationLimitSettings

OPT_IN_MESSAGE_TYPE = "GitLab Marketing"
# The default `Marketing Message` type is opt-out and could e-mail unsubscribed people.
FORBIDDEN_MESSAGE_TYPES = frozenset({"marketing message"})
MESSAGE_TYPE_ID_ENV = "ITERABLE_MARKETING_MESSAGE_TYPE_ID"
#: The id written to the dry-run outbox path when no message type id is configured.
DRY_RUN_PLACEHOLDER_MESSAGE_TYPE_ID = 0


class IterableResource(CommunicationLimitSettings):
    """Iterable's API. Without an ``api_key`` every sync runs in dry-run (requests go to ``ops.outbox``).

    The code location binds ``api_key``, ``base_url`` and ``marketing_message_type_id`` to ``ITERABLE_API_KEY`` /
    ``ITERABLE_BASE_URL`` / ``ITERABLE_MARKETING_MESSAGE_TYPE_ID`` (``build_resources``); the key never reaches
    logs, metadata or the outbox. ``marketing_message_type_id`` is the id of the opt-in ``GitLab Marketing``
    message type that unsubscribes opt people out of; live unsubscribe syncs require it.
    """

    api_key: str | None = None
    base_url: str = US_BASE_URL
    users_per_request: int = DEFAULT_USERS_PER_REQUEST
    bulk_update_per_second: float = 5
    track_bulk_per_second: float = 10
    marketing_message_type_name: str = OPT_IN_MESSAGE_TYPE
    marketing_message_type_id: int | None = None
    dry_run: bool = False
    """Write requests to ``ops.outbox`` instead of sending them, even with an API key."""

    @field_validator("marketing_message_type_name")
    @classmethod
    def _opt_in_only(cls, value: str) -> str:
        if value.strip().lower() in FORBIDDEN_MESSAGE_TYPES:
            raise ValueError(
                f"{value!r} is the opt-out message type and must never be used for marketing sends; "
                f"use the opt-in {OPT_IN_MESSAGE_TYPE!r} type"
            )
        return value

    def configured_message_type_id(self) -> int | None:
        """The opt-in message type's id, None when unset; a negative id fails."""
        message_type_id = self.marketing_message_type_id
        if message_type_id is not None and message_type_id < 0:
            raise dg.Failure(f"marketing_message_type_id ({MESSAGE_TYPE_ID_ENV}) must be >= 0, not {message_type_id}")
        return message_type_id

    def unsubscribe_message_type_id(self, *, dry_run: bool = False) -> tuple[int, bool]:
        """The message type id unsubscribes opt people out of, and whether it was configured.

        Live (an API key is set) it must be configured: without it, fails rather than guess, because the default
        ``Marketing Message`` type is opt-out. In dry-run an unset id becomes
        ``DRY_RUN_PLACEHOLDER_MESSAGE_TYPE_ID`` (0) in the outbox path.
        """
        message_type_id = self.configured_message_type_id()
        if message_type_id is not None:
            return message_type_id, True
        if not (dry_run or self.is_dry_run):
            raise dg.Failure(
                description=(
                    f"Iterable unsubscribe sync needs the id of the opt-in {self.marketing_message_type_name!r} "
                    f"message type: set {MESSAGE_TYPE_ID_ENV} (or the resource's marketing_message_type_id). "
                    "Never use the opt-out 'Marketing Message' type's id. Nothing was sent."
                ),
                metadata={"missing_setting": MESSAGE_TYPE_ID_ENV},
            )
        return DRY_RUN_PLACEHOLDER_MESSAGE_TYPE_ID, False

    @property
    def is_dry_run(self) -> bool:
        return self.dry_run or not self.api_key

    def get_client(self) -> IterableClient | None:
        """A paced, retrying client, or None in dry-run."""
        if not self.api_key:
            return None
        return IterableClient(
            self.api_key,
            self.base_url or US_BASE_URL,
            bulk_update_per_second=self.bulk_update_per_second,
            track_bulk_per_second=self.track_bulk_per_second,
        )
