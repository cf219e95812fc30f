"""A loopback Gainsight NXT emulator for tests and local runs: company and people upserts over real HTTP.

    with GainsightEmulator(access_key="test", calls_per_window=5, window_seconds=1) as emu:
        client = GainsightClient("test", emu.base_url, calls_per_window=5, window_seconds=1)
        ...
        assert emu.companies["Acme"]["Customer_Program__gc"] == "onboarding"

Standalone: `python -m marketing_pipelines.devtools.gainsight_emulator --port 8766 --access-key test`.

What it enforces, as Gainsight documents it: the `Accesskey` header (401 otherwise), at most 50 records a write call
(400 otherwise), about 100 calls a minute per tenant across every path (429 with a plain-text body beyond; a
sliding window, which is stricter than Gainsight's fixed one). Partial failures use the reply shape the client
assumes (`data.errors[]` with the record `index`): a company without a `Name`, a non-numeric `Arr`, a
`Customer_Segment__gc` outside its picklist (Tech Touch, Scale, CSM-Managed), a person without a valid `Email`, a
person whose company association names no known company, and any name or e-mail listed in `invalid_company_names` /
`invalid_emails`. Numbers are parsed as Decimal, so `companies` holds exactly the digits that were sent (`Arr`
972765.41 is `Decimal("972765.41")`). Faults (429, 500, slow) come from the shared loopback machinery.

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

from marketing_pipelines.clients.gainsight import COMPANY_UPSERT, MAX_RECORDS_PER_CALL, PEOPLE_UPSERT
from marketing_pipelines.devtools.loopback import BadRequest, LoopbackEmulator, Route, serve_until_interrupted
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
        self.companies: dict[str, dict[str, Any]] = {}
        self.people: dict[str, dict[str, Any]] = {}
        self.company_people: dict[tuple[str, str], dict[str, Any]] = {}
        self.records_received: Counter[str] = Counter()
        self.records_per_call: list[int] = []
        #: Records written per (object, key): ("Company", name) or ("Person", email).
        self.writes: Counter[tuple[str, str]] = Counter()

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
        if path == COMPANY_UPSERT and "keys=Name" not in query:
            raise BadRequest("the company upsert needs ?keys=Name")
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
                    written.append(upsert(record, body))
                except BadRequest as invalid:
                    code, _, message = str(invalid).partition(" ")
                    errors.append({"index": index, "errorCode": code, "errorMessage": message})
        data = {"count": len(written), "records": written, "errors": errors or None}
        return {"result": True, "errorCode": None, "errorDesc": None, "requestId": str(uuid.uuid4()), "data": data}

    def _upsert_company(self, record: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        name = record.get("Name")
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("GS_2501 Name is required")
        if name in self.invalid_company_names:
            raise BadRequest(f"GS_2502 company {name!r} failed validation")
        arr = record.get("Arr")
        if arr is not None and (isinstance(arr, bool) or not isinstance(arr, int | float | Decimal)):
            raise BadRequest(f"GS_2503 Arr must be a number, not {arr!r}")
        segment = record.get("Customer_Segment__gc")
        if segment is not None and segment not in SEGMENTS:
            raise BadRequest(f"GS_2504 Customer_Segment__gc {segment!r} is not a picklist value")
        gsid = str(uuid.uuid5(GSID_NAMESPACE, f"Company:{name}"))
        self.companies[name] = {**self.companies.get(name, {}), **record, "Gsid": gsid}
        self.writes[("Company", name)] += 1
        return {"Name": name, "Gsid": gsid}

    def _upsert_person(self, record: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        email = record.get("Email")
        if not isinstance(email, str) or "@" not in email or email in self.invalid_emails:
            raise BadRequest(f"GS_3501 invalid Email {email!r}")
        associations = record.get("companies") or []
        lookup = (body.get("lookups") or {}).get("Company_ID", {})
        if associations and lookup.get("objectName") != "Company":
            raise BadRequest("GS_3502 company associations need a Company_ID lookup")
        for association in associations:
            if association.get("Company_ID") not in self.companies:
                raise BadRequest(f"GS_3503 no Company named {association.get('Company_ID')!r} (lookup onNoMatch)")
        person = {key: value for key, value in record.items() if key != "companies"}
        gsid = str(uuid.uuid5(GSID_NAMESPACE, f"Person:{email}"))
        self.people[email] = {**self.people.get(email, {}), **person, "Gsid": gsid}
        self.writes[("Person", email)] += 1
        for association in associations:
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
