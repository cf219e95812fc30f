"""A loopback Gainsight NXT emulator for tests and local runs: company and people upserts over real HTTP.

    with GainsightEmulator(access_key="test", calls_per_window=5, window_seconds=1) as emu:
        client = GainsightClient("test", emu.base_url, calls_per_window=5, window_seconds=1)
        ...
        assert emu.company(GitLab_Account_ID__gc=42)["Customer_Program__gc"] == "onboarding"

Standalone: `python -m devtools.gainsight_emulator --port 8766 --access-key test`.

What it enforces, as Gainsight documents it: the `Accesskey` header (401 otherwise), at most 50 records a write call
(400 otherwise), a company update names its match fields in `?keys=` (any Company fields, comma-separated; 400
without), about 100 calls a minute per tenant across every path (429 with a plain-text body beyond; a sliding
window, which is stricter than Gainsight's fixed one).

Companies are stored by `Gsid`, as Gainsight does; names need not be unique. A company record updates the company
whose `keys` fields all equal the record's, and is inserted when none does: keyed by `Name`, two accounts of the same
name are one company (the later overwrites the earlier), keyed by an id they are two. A People association's
`Company_ID` is resolved through the call's `lookups` (the Company field it names -> `Gsid`): no match fails the
record (`onNoMatch: ERROR`), several take the first one (`FIRSTMATCH`) or fail the record otherwise.

Partial failures use the reply shape the client assumes (`data.errors[]` with the record `index`): a new company (its
keys match none) or a record naming a `Name` without one (an update may leave `Name` out), a company without a value
for a key field, a non-numeric `Arr`, a `Customer_Segment__gc` outside its picklist (Tech Touch, Scale,
CSM-Managed), a company record whose keys match several companies (an assumption: Gainsight does not document it), a
person without a valid `Email`, a person whose association no company matches, and any name or e-mail listed
in `invalid_company_names` / `invalid_emails`. Numbers are parsed as Decimal, so `companies` holds exactly the
digits that were sent (`Arr` 972765.41 is `Decimal("972765.41")`). Faults (429, 500, slow) come from the shared
loopback machinery.

A call is refused WHOLE (HTTP 400 with the error envelope, nothing written), as when Gainsight rejects a payload
before writing, when one of its records is a company named in `poison_company_names` or a person whose e-mail is in
`poison_emails`; a body over `max_body_bytes` is refused with HTTP 413.
"""

from __future__ import annotations

import argparse
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from devtools.loopback import BadRequest, LoopbackEmulator, Route, serve_until_interrupted
from marketing_pipelines.clients.gainsight import COMPANY_UPSERT, MAX_RECORDS_PER_CALL, PEOPLE_UPSERT
from marketing_pipelines.sync.gainsight import SEGMENTS

TENANT_WINDOW = "*"
MAX_BODY_BYTES = 10 * 1024 * 1024
GSID_NAMESPACE = uuid.UUID("0b6c1f7e-2f59-4c48-9d0a-51a1c3f4e6b2")
ERROR_CODES = {400: "GS_1004", 401: "GS_1001", 404: "GS_1404", 413: "GS_1005", 500: "GS_1500"}


class GainsightEmulator(LoopbackEmulator):
    """The Gainsight Company and People write endpoints, with the tenant's call limit and partial failures."""

    key_header = "Accesskey"
    server_name = "GainsightEmulator"
    parse_float = Decimal

    def __init__(
        self,
        *,
        access_key: str = "test",
        host: str = "127.0.0.1",
        port: int = 0,
        calls_per_window: int = 100,
        window_seconds: float = 60.0,
        fault_rates: Mapping[str, float] | None = None,
        scripted_faults: Iterable[str | None] = (),
        slow_seconds: float = 2.0,
        retry_after: str | None = None,
        seed: int = 0,
        invalid_company_names: Iterable[str] = (),
        invalid_emails: Iterable[str] = (),
        poison_company_names: Iterable[str] = (),
        poison_emails: Iterable[str] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.invalid_company_names = set(invalid_company_names)
        self.invalid_emails = set(invalid_emails)
        self.poison_company_names = set(poison_company_names)
        self.poison_emails = set(poison_emails)
        super().__init__(
            api_key=access_key,
            host=host,
            port=port,
            rate_limits={TENANT_WINDOW: calls_per_window},
            rate_window_seconds=window_seconds,
            max_body_bytes=max_body_bytes,
            fault_rates=fault_rates,
            scripted_faults=scripted_faults,
            slow_seconds=slow_seconds,
            retry_after=retry_after,
            seed=seed,
        )

    def reset_state(self) -> None:
        #: Companies by Gsid.
        self.companies: dict[str, dict[str, Any]] = {}
        self.people: dict[str, dict[str, Any]] = {}
        #: Company Person associations by (e-mail, company Gsid); `Company_ID` holds the resolved Gsid.
        self.company_people: dict[tuple[str, str], dict[str, Any]] = {}
        self.records_received: Counter[str] = Counter()
        self.records_per_call: list[int] = []
        #: Records written per (object, key): ("Company", the record's key field values joined by "|"), or
        #: ("Person", email).
        self.writes: Counter[tuple[str, str]] = Counter()

    # -- reading the state (tests) ---------------------------------------------------------------------------
    def find_companies(self, **fields: Any) -> list[dict[str, Any]]:
        """The stored companies whose fields equal all of `fields`."""
        return [c for c in self.companies.values() if all(c.get(k) == v for k, v in fields.items())]

    def company(self, **fields: Any) -> dict[str, Any]:
        """The one stored company whose fields equal all of `fields` (LookupError when none or several)."""
        found = self.find_companies(**fields)
        if len(found) != 1:
            raise LookupError(f"{len(found)} companies with {fields}")
        return found[0]

    def association(self, email: str, **company_fields: Any) -> dict[str, Any]:
        """The Company Person association of `email` with the one company matching `company_fields`."""
        return self.company_people[(email, self.company(**company_fields)["Gsid"])]

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        return {
            "result": False,
            "errorCode": ERROR_CODES.get(status, "GS_1000"),
            "errorDesc": f"{code}: {message}",
            "requestId": str(uuid.uuid4()),
            "data": None,
        }

    def route(self, method: str, path: str, query: str) -> Route | None:
        if method != "PUT":
            return None
        if path == COMPANY_UPSERT:
            return partial(self._write, path, self._upsert_company, query=query)
        if path == PEOPLE_UPSERT:
            return partial(self._write, path, self._upsert_person, query=query)
        return None

    # -- writes ----------------------------------------------------------------------------------------------
    def _write(self, path: str, upsert: Any, body: Any, *, query: str) -> dict[str, Any]:
        """Validate the call, then upsert record by record: failures are reported by index, the rest written."""
        keys: tuple[str, ...] = ()
        if path == COMPANY_UPSERT:
            keys = tuple(k.strip() for k in ",".join(parse_qs(query).get("keys", [])).split(",") if k.strip())
            if not keys:
                raise BadRequest("the company update needs ?keys=<field>[,<field>...] to match records on")
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise BadRequest("'records' must be a list of objects")
        if len(records) > MAX_RECORDS_PER_CALL:
            raise BadRequest(f"at most {MAX_RECORDS_PER_CALL} records a call, got {len(records)}")
        for index, record in enumerate(records):
            if record.get("Name") in self.poison_company_names or record.get("Email") in self.poison_emails:
                key = "Name" if path == COMPANY_UPSERT else "Email"
                raise BadRequest(f"records[{index}].{key} {record.get(key)!r} failed validation; nothing written")
        written, errors = [], []
        with self._lock:
            self.records_received[path] += len(records)
            self.records_per_call.append(len(records))
            for index, record in enumerate(records):
                try:
                    written.append(upsert(record, body, keys))
                except BadRequest as invalid:
                    code, _, message = str(invalid).partition(" ")
                    errors.append({"index": index, "errorCode": code, "errorMessage": message})
        data = {"count": len(written), "records": written, "errors": errors or None}
        return {"result": True, "errorCode": None, "errorDesc": None, "requestId": str(uuid.uuid4()), "data": data}

    def _upsert_company(self, record: dict[str, Any], body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        name = record.get("Name")
        if ("Name" in record or not self._matches_one(record, keys)) and (
            not isinstance(name, str) or not name.strip()
        ):
            raise BadRequest("GS_2501 Name is required")  # to create a company; an update may leave it out
        if name in self.invalid_company_names:
            raise BadRequest(f"GS_2502 company {name!r} failed validation")
        arr = record.get("Arr")
        if arr is not None and (isinstance(arr, bool) or not isinstance(arr, int | float | Decimal)):
            raise BadRequest(f"GS_2503 Arr must be a number, not {arr!r}")
        segment = record.get("Customer_Segment__gc")
        if segment is not None and segment not in SEGMENTS:
            raise BadRequest(f"GS_2504 Customer_Segment__gc {segment!r} is not a picklist value")
        missing = [key for key in keys if record.get(key) in (None, "")]
        if missing:
            raise BadRequest(f"GS_2505 key field {missing[0]} has no value")
        matches = self.find_companies(**{key: record[key] for key in keys})
        if len(matches) > 1:
            raise BadRequest(f"GS_2506 {len(matches)} companies match keys {', '.join(keys)}")
        gsid = matches[0]["Gsid"] if matches else str(uuid.uuid5(GSID_NAMESPACE, f"Company:{len(self.companies)}"))
        self.companies[gsid] = {**self.companies.get(gsid, {}), **record, "Gsid": gsid}
        self.writes[("Company", "|".join(str(record[key]) for key in keys))] += 1
        return {"Name": self.companies[gsid]["Name"], "Gsid": gsid}

    def _matches_one(self, record: dict[str, Any], keys: tuple[str, ...]) -> bool:
        """Whether the record's key fields all have values and match exactly one stored company (an update)."""
        if not keys or any(record.get(key) in (None, "") for key in keys):
            return False
        return len(self.find_companies(**{key: record[key] for key in keys})) == 1

    def _upsert_person(self, record: dict[str, Any], body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        email = record.get("Email")
        if not isinstance(email, str) or "@" not in email or email in self.invalid_emails:
            raise BadRequest(f"GS_3501 invalid Email {email!r}")
        associations = record.get("companies") or []
        lookup = (body.get("lookups") or {}).get("Company_ID", {})
        field = (lookup.get("fields") or {}).get("Company_ID")
        if associations and (lookup.get("objectName") != "Company" or lookup.get("lookupField") != "Gsid" or not field):
            raise BadRequest("GS_3502 company associations need a Company_ID lookup of a Company field to its Gsid")
        resolved = []
        for association in associations:
            value = association.get("Company_ID")
            matches = self.find_companies(**{field: value}) if value is not None else []
            if not matches:
                raise BadRequest(f"GS_3503 no Company with {field} {value!r} (lookup onNoMatch)")
            if len(matches) > 1 and lookup.get("multiMatchOption") != "FIRSTMATCH":
                raise BadRequest(f"GS_3504 {len(matches)} companies with {field} {value!r} (lookup multiMatchOption)")
            resolved.append({**association, "Company_ID": matches[0]["Gsid"]})
        person = {key: value for key, value in record.items() if key != "companies"}
        gsid = str(uuid.uuid5(GSID_NAMESPACE, f"Person:{email}"))
        self.people[email] = {**self.people.get(email, {}), **person, "Gsid": gsid}
        self.writes[("Person", email)] += 1
        for association in resolved:
            key = (email, association["Company_ID"])
            self.company_people[key] = {**self.company_people.get(key, {}), **association}
        return {"Email": email, "Gsid": gsid}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the loopback Gainsight API emulator.")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--access-key", default="test")
    parser.add_argument("--calls-per-minute", type=int, default=100)
    parser.add_argument("--fault-429", type=float, default=0.0, help="probability of an injected 429")
    parser.add_argument("--fault-500", type=float, default=0.0, help="probability of an injected 500")
    args = parser.parse_args(argv)
    emulator = GainsightEmulator(
        access_key=args.access_key,
        port=args.port,
        calls_per_window=args.calls_per_minute,
        fault_rates={"429": args.fault_429, "500": args.fault_500},
    )
    serve_until_interrupted(emulator, "Gainsight")


if __name__ == "__main__":
    main()
