"""A typed client for the two Gainsight NXT write endpoints the Customer Programs sync uses.

- Company upsert: `PUT /v1/data/objects/Company?keys=GitLab_Account_ID__gc` with `{"records": [...]}`, matched on
  our account id (a custom Company field; Gainsight takes any Data Management field names as `keys`). Never on
  `Name`: two accounts may share a name, and keyed by name one would overwrite the other.
- People upsert: `PUT /v1.0/api/people` with `{"records": [...], "lookups": {...}}`; each person carries its
  Company Person associations in `companies`, the company resolved by account id through `lookups`.

Gainsight documents: header `Accesskey`, at most 50 records a write call, about 100 synchronous calls
a minute per tenant (a fixed window; one shared limiter paces every endpoint). Response shapes are assumed from
Gainsight's public docs, which do not show partial failures in full: every reply is the envelope
`{"result": bool, "errorCode", "errorDesc", "requestId", "data": {"count", "records": [...], "errors": [...]}}`,
and a record that failed validation is one item of `data.errors` with the `index` of the record in the request
and `errorCode`/`errorMessage` (the others were written). `result: false` with no per-record errors fails the
whole call: every record is reported rejected with `errorDesc`. 429 bodies may be plain text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx

from marketing_pipelines.clients._http import DEFAULT_TIMEOUT, JsonApiClient, RateLimiter, RetryPolicy

logger = logging.getLogger(__name__)

COMPANY_UPSERT = "/v1/data/objects/Company"
PEOPLE_UPSERT = "/v1.0/api/people"
#: The Company field that identifies a company: our account id (a custom field), unique where names are not.
COMPANY_KEY_FIELD = "GitLab_Account_ID__gc"
MAX_RECORDS_PER_CALL = 50
DEFAULT_CALLS_PER_MINUTE = 100
PACING_SAFETY_MARGIN = 0.25
#: The People API resolves each association's `Company_ID` from our account id (`GitLab_Account_ID__gc` -> `Gsid`).
COMPANY_LOOKUP = {
    "Company_ID": {
        "fields": {"Company_ID": COMPANY_KEY_FIELD},
        "lookupField": "Gsid",
        "objectName": "Company",
        "multiMatchOption": "FIRSTMATCH",
        "onNoMatch": "ERROR",
    }
}


@dataclass
class UpsertResult:
    """Outcome of one write call: records written, and rejected records by their position in the request."""

    written: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def parse_upsert_response(response: Mapping[str, Any], sent: int) -> UpsertResult:
    """Per-record failures of a Gainsight write reply (see the module docstring for the assumed shape)."""
    data = response.get("data") if isinstance(response.get("data"), Mapping) else {}
    failed: dict[int, str] = {}
    for error in data.get("errors") or []:
        if isinstance(error, Mapping) and isinstance(error.get("index"), int) and 0 <= error["index"] < sent:
            code, message = error.get("errorCode") or "error", error.get("errorMessage") or "rejected"
            failed.setdefault(error["index"], f"{code}: {message}")
    if response.get("result") is False and not failed:
        reason = f"{response.get('errorCode') or 'error'}: {response.get('errorDesc') or 'call failed'}"
        failed = dict.fromkeys(range(sent), reason)
    return UpsertResult(written=sent - len(failed), failed=failed, raw=dict(response))


class GainsightClient(JsonApiClient):
    """Gainsight NXT REST client: company and people upserts, paced per tenant and retried like every client."""

    def __init__(
        self,
        access_key: str,
        base_url: str,
        *,
        http: httpx.Client | None = None,
        calls_per_window: int = DEFAULT_CALLS_PER_MINUTE,
        window_seconds: float = 60.0,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        limiter: RateLimiter | None = None,
    ) -> None:
        """`limiter` lets several clients of one tenant share its call budget (see `tenant_limiter`)."""
        if not access_key:
            raise ValueError("a Gainsight access key is required")
        if not base_url:
            raise ValueError("a Gainsight base URL (the tenant's API domain) is required")
        super().__init__(
            base_url,
            headers={"Accesskey": access_key},
            secrets=[access_key],
            http=http,
            retry=retry,
            timeout=timeout,
            sleep=sleep,
            log=logger,
        )
        self.limiter = limiter or RateLimiter(
            calls_per_window,
            clock=clock,
            sleep=sleep,
            window_seconds=window_seconds,
            safety_margin=PACING_SAFETY_MARGIN * min(window_seconds, 1.0),
        )

    def _upsert(self, endpoint: str, body: dict[str, Any], params: Mapping[str, str] | None) -> UpsertResult:
        records: Sequence[Any] = body["records"]
        if len(records) > MAX_RECORDS_PER_CALL:
            raise ValueError(f"Gainsight takes at most {MAX_RECORDS_PER_CALL} records a call, not {len(records)}")
        response = self.request_json("PUT", endpoint, body, params=params, limiter=self.limiter)
        return parse_upsert_response(response, len(records))

    def upsert_companies(self, records: list[dict[str, Any]]) -> UpsertResult:
        """PUT /v1/data/objects/Company?keys=GitLab_Account_ID__gc `{"records": records}`: update by account id,
        insert when new."""
        return self._upsert(COMPANY_UPSERT, company_upsert_body(records), {"keys": COMPANY_KEY_FIELD})

    def upsert_people(self, records: list[dict[str, Any]]) -> UpsertResult:
        """PUT /v1.0/api/people `{"records": records, "lookups": ...}`: upsert by `Email` with associations."""
        return self._upsert(PEOPLE_UPSERT, people_upsert_body(records), None)


@lru_cache(maxsize=16)
def tenant_limiter(base_url: str, calls_per_window: int, window_seconds: float) -> RateLimiter:
    """The one limiter of a tenant in this process: Gainsight's call limit is per tenant, not per endpoint, so
    the company and person syncs of a run (one process, steps in sequence) draw on the same budget."""
    return RateLimiter(
        calls_per_window,
        window_seconds=window_seconds,
        safety_margin=PACING_SAFETY_MARGIN * min(window_seconds, 1.0),
    )


def company_upsert_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of a company upsert call."""
    return {"records": records}


def people_upsert_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of a people upsert call: the records and the lookup that resolves `Company_ID` by account id."""
    return {"records": records, "lookups": COMPANY_LOOKUP}
