"""IterableResource configuration: dry-run without a key, opt-in message type only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from marketing_pipelines.clients.iterable import US_BASE_URL
from marketing_pipelines.resources.iterable import IterableResource


@pytest.mark.parametrize("api_key", [None, ""])
def test_missing_api_key_means_dry_run(api_key):
    resource = IterableResource(api_key=api_key)
    assert resource.is_dry_run
    assert resource.get_client() is None


def test_api_key_and_eu_endpoint_are_the_resources_settings():
    resource = IterableResource(api_key="secret", base_url="https://api.eu.iterable.com")
    assert not resource.is_dry_run
    client = resource.get_client()
    assert client is not None and client.base_url == "https://api.eu.iterable.com"
    default = IterableResource(api_key="secret").get_client()
    assert default is not None and default.base_url == US_BASE_URL


@pytest.mark.parametrize("name", ["Marketing Message", " marketing message "])
def test_opt_out_marketing_message_type_cannot_be_configured(name):
    with pytest.raises(ValidationError, match="opt-out message type"):
        IterableResource(marketing_message_type_name=name)
