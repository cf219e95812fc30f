"""IterableResource configuration: dry-run without a key, opt-in message type only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from marketing_pipelines.resources.iterable import IterableResource


def test_missing_api_key_means_dry_run(monkeypatch):
    monkeypatch.delenv("ITERABLE_API_KEY", raising=False)
    resource = IterableResource()
    assert resource.is_dry_run
    assert resource.get_client() is None


def test_api_key_and_eu_endpoint_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ITERABLE_API_KEY", "secret")
    monkeypatch.setenv("ITERABLE_BASE_URL", "https://api.eu.iterable.com")
    resource = IterableResource()
    assert not resource.is_dry_run
    client = resource.get_client()
    assert client is not None and client.base_url == "https://api.eu.iterable.com"


@pytest.mark.parametrize("name", ["Marketing Message", " marketing message "])
def test_opt_out_marketing_message_type_cannot_be_configured(name):
    with pytest.raises(ValidationError, match="opt-out message type"):
        IterableResource(marketing_message_type_name=name)
