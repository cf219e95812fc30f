"""Gainsight as sync-engine destinations: program accounts → Company upserts, program recipients → People upserts
with a Company Person association (role, reason, program, surveys). Mostly configuration: which audience columns
become which Gainsight fields; the engine does the diffing, batching, rejections, run history and dry-run.

Companies are matched on our account id (`GitLab_Account_ID__gc`), never on `Name`: two accounts may share a name,
and each must stay its own Company with its own people. A person's association names its company by that id too.

A row the audience marks with a `skip_reason` (bad input: no e-mail, an unknown deployment type) is never sent: it
is recorded in `ops.sync_rejections` with that reason. Money is exact: CARR is sent as a JSON number with exactly its
digits (a Decimal, encoded by `dumps_compact`), never through a binary float.

Mirrored: a recipient who no longer qualifies (a Sold-To fallback whose account now has a GitLab Admin, a person who
left, an account gone) has the program fields of their association with that company cleared (`person_exit`); a
company that leaves the programs has its program cleared (`company_exit`). Only records Gainsight accepted from
us are touched; people and companies are never deleted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from marketing_pipelines.clients.gainsight import (
    COMPANY_KEY_FIELD,
    COMPANY_UPSERT,
    MAX_RECORDS_PER_CALL,
    PEOPLE_UPSERT,
    GainsightClient,
    company_upsert_body,
    people_upsert_body,
)
from marketing_pipelines.sync.destination import Audience, Destination, email_of

#: Company field -> column of `audiences.gainsight_program_companies` (the filter fields of the Customer Digital
#: Journey handbook, the segment and the program).
COMPANY_FIELDS: Mapping[str, str] = {
    COMPANY_KEY_FIELD: "account_id",
    "Name": "account_name",
    "Arr": "carr",
    "Customer_Segment__gc": "segment",
    "Technical_Account_Manager__gc": "technical_account_manager",
    "Account_Owner_Team__gc": "account_owner_team",
    "Products_Purchased__gc": "products_purchased",
    "Deployment_Type__gc": "deployment_type",
    "Support_Level__gc": "support_level",
    "Customer_Program__gc": "program",
    "OriginalContractDate": "account_created_on",
    "RenewalDate": "renewal_date",
}
#: Company fields holding an amount of money (decimal(18,2) in the warehouse).
MONEY_FIELDS = frozenset({"Arr"})
#: The segments program creators filter on (Customer Programs handbook: "Tech Touch | Scale | CSM-Managed").
SEGMENTS = ("Tech Touch", "Scale", "CSM-Managed")
#: Company Person association field -> column of `audiences.gainsight_program_recipients`.
COMPANY_PERSON_FIELDS: Mapping[str, str] = {
    "Company_ID": "account_id",
    "Role__gc": "role",
    "Recipient_Reason__gc": "recipient_reason",
    "Receives_Surveys__gc": "receives_surveys",
    "Customer_Program__gc": "program",
}

COMPANY_AUDIENCE = Audience(
    table="audiences.gainsight_program_companies",
    key_column="account_id",
    columns=(*dict.fromkeys(COMPANY_FIELDS.values()), "skip_reason"),
)
PERSON_AUDIENCE = Audience(
    table="audiences.gainsight_program_recipients",
    key_column="recipient_key",
    columns=("email", *COMPANY_PERSON_FIELDS.values(), "skip_reason"),
)


def _json_value(value: Any) -> Any:
    """A warehouse value as JSON: NULL/NaN/NaT/NA → None, dates as YYYY-MM-DD, numbers and booleans as Python's."""
    import pandas as pd  # rows come from pandas frames, so it is loaded already

    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, Decimal):
        return value
    return value.item() if hasattr(value, "item") else value


def exact_money(value: Any) -> Decimal | None:
    """An amount as an exact Decimal in cents, for a JSON number with exactly its digits.

    A Decimal (DuckDB, or Snowflake with decimal fetching) keeps its digits. A float, from a driver that returns
    NUMBER(18,2) as a double, goes through its shortest repr, which gives back the stored cents for amounts of up to
    15 significant digits (below 10^13).
    """
    value = _json_value(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"not an amount: {value!r}")
    amount = value if isinstance(value, Decimal) else Decimal(repr(value))
    return amount.quantize(Decimal("0.01"))


def _mapped(row: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    if row.get("skip_reason"):
        raise ValueError(str(row["skip_reason"]))
    return {field: _json_value(row.get(column)) for field, column in fields.items()}


def company_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Company record for one program account."""
    record = _mapped(row, COMPANY_FIELDS)
    for field in MONEY_FIELDS:
        record[field] = exact_money(record[field])
    if record[COMPANY_KEY_FIELD] is None:
        raise ValueError(f"account has no id (Gainsight matches companies by {COMPANY_KEY_FIELD})")
    if not record["Name"]:
        raise ValueError("account has no name (Gainsight requires a company Name)")
    return record


def person_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The People record for one recipient: the person by e-mail, with its association to the program account."""
    association = _mapped(row, COMPANY_PERSON_FIELDS)
    return {"Email": email_of(row), "companies": [association]}


def _account_id(text: str) -> int:
    """The account id of a record key (`cast(account_id as varchar)`: the ids are integers)."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"not an account id: {text!r}") from None


def person_exit(recipient_key: str, left_at: dt.datetime) -> dict[str, Any]:
    """The People record of a recipient who left the programs (key `<account_id>:<e-mail>`): their association with
    that company keeps its link and loses its program fields (no program, role or reason; no surveys). Their
    other associations, and the person, are untouched."""
    account, _, email = recipient_key.partition(":")
    association = {field: None for field in COMPANY_PERSON_FIELDS}
    association.update(Company_ID=_account_id(account), Receives_Surveys__gc=False)
    return {"Email": email_of({"email": email}), "companies": [association]}


def company_exit(account_id: str, left_at: dt.datetime) -> dict[str, Any]:
    """The Company record of an account that left every program: matched by its id, its program cleared; every
    other field stays as last sent (no `Name`: the upsert updates an existing company and creates none)."""
    return {COMPANY_KEY_FIELD: _account_id(account_id), "Customer_Program__gc": None}


def program_of(record: Mapping[str, Any]) -> str | None:
    """The Customer Programs journey a Company or People record (as sent) belongs to."""
    association = (record.get("companies") or [{}])[0]
    return record.get("Customer_Program__gc") or association.get("Customer_Program__gc")


#: The Company upsert (`PUT /v1/data/objects/Company?keys=GitLab_Account_ID__gc`) and the People upsert: at most
#: 50 records a call, paced by the client (about 100 calls a minute); Gainsight rejects records by position and
#: documents no body limit (50 records stay far below the engine's 4 MB guard). Marketing: a People record that
#: enrols its person in a program, or moves them to another, starts that program's journey (communication limits);
#: Company records, and People changes within the same program, are not sends to a person.
COMPANIES = Destination[GainsightClient](
    "gainsight_companies",
    COMPANY_AUDIENCE,
    f"{COMPANY_UPSERT}?keys={COMPANY_KEY_FIELD}",
    payload=company_payload,
    body=company_upsert_body,
    call=GainsightClient.upsert_companies,
    max_records=MAX_RECORDS_PER_CALL,
    exit=company_exit,
)
PEOPLE = Destination[GainsightClient](
    "gainsight_people",
    PERSON_AUDIENCE,
    PEOPLE_UPSERT,
    payload=person_payload,
    body=people_upsert_body,
    call=GainsightClient.upsert_people,
    max_records=MAX_RECORDS_PER_CALL,
    exit=person_exit,
    person=lambda record: str(record["Email"]),
    journey=program_of,
)


def batched(destination: Destination[GainsightClient], max_records: int) -> Destination[GainsightClient]:
    """`destination` with `max_records` a call, never more than Gainsight's 50."""
    return destination.batched(min(max_records, MAX_RECORDS_PER_CALL))
