"""Validate request/response bodies against Iterable's own Swagger 2.0 spec with jsonschema.

The spec's schemas never set `additionalProperties`, so a misspelt key (e.g. `updateSubscriptionRequests`)
would still validate. `strict=True` (the default for requests) closes every schema that lists `properties`
(free-form objects such as `dataFields` stay open), so such typos fail.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

# Vendored in the repository (a public document): tests never read a file outside it.
SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "reference" / "iterable-api-docs.json"


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    """The parsed spec; a missing reference file fails the calling test (it must never pass unchecked)."""
    if not SPEC_PATH.exists():
        pytest.fail(f"Iterable API spec not found at {SPEC_PATH}")
    return json.loads(SPEC_PATH.read_text())


def _closed(schema: Any) -> Any:
    """A copy of `schema` where every object schema with `properties` forbids other keys."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@lru_cache(maxsize=2)
def _definitions(strict: bool) -> dict[str, Any]:
    definitions = copy.deepcopy(load_spec()["definitions"])
    return _closed(definitions) if strict else definitions


def _operation(path: str, method: str) -> dict[str, Any]:
    try:
        return load_spec()["paths"][path][method.lower()]
    except KeyError:
        raise KeyError(f"{method.upper()} {path} is not in the Iterable spec") from None


def request_schema(path: str, method: str = "post", *, strict: bool = True) -> dict[str, Any]:
    """The body schema of an endpoint, with the spec's definitions attached so `#/definitions/...` resolves."""
    params = [p for p in _operation(path, method).get("parameters", []) if p.get("in") == "body"]
    if not params:
        raise KeyError(f"{method.upper()} {path} takes no body")
    schema = _closed(params[0]["schema"]) if strict else params[0]["schema"]
    return {**schema, "definitions": _definitions(strict)}


def response_schema(path: str, status: str = "200", method: str = "post", *, strict: bool = False) -> dict[str, Any]:
    """The response schema of an endpoint for `status`, with definitions attached."""
    schema = _operation(path, method)["responses"][status]["schema"]
    return {**(_closed(schema) if strict else schema), "definitions": _definitions(strict)}


def request_errors(path: str, body: Any, method: str = "post", *, strict: bool = True) -> list[str]:
    """Every validation error of `body` against the endpoint's request schema (empty when valid)."""
    validator = jsonschema.Draft4Validator(request_schema(path, method, strict=strict))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message}" for e in validator.iter_errors(body)]


def validate_request(path: str, body: Any, method: str = "post", *, strict: bool = True) -> None:
    """Raise AssertionError listing every way `body` breaks the spec for `method path`."""
    errors = request_errors(path, body, method, strict=strict)
    assert not errors, f"{method.upper()} {path} body does not match the spec:\n" + "\n".join(errors)


def validate_response(path: str, body: Any, status: str = "200", method: str = "post") -> None:
    """Raise AssertionError when `body` does not match the documented response schema."""
    validator = jsonschema.Draft4Validator(response_schema(path, status, method))
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{method.upper()} {path} response does not match the spec:\n" + "\n".join(errors)
