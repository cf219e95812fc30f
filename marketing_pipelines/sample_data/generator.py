"""Deterministic generator of realistic B2B SaaS (GitLab-like) marketing raw data.

Everything is pure: :func:`generate` returns pandas DataFrames and raw JSONL text lines and performs no
I/O apart from reading the ``dim_initial_source`` seed of the dbt project. Output depends only on
``(users, seed, as_of)``. One builder per table (``_gitlab_users``, ``_crm_persons``, ...), called in a fixed order
because they share one random generator. Generation is vectorised with numpy; Faker only fills small name pools.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from faker import Faker

from marketing_pipelines.paths import DBT_PROJECT_DIR

INITIAL_SOURCE_SEED = DBT_PROJECT_DIR / "seeds" / "dim_initial_source.csv"

TABLE_NAMES: tuple[str, ...] = (
    "gitlab_users",
    "gitlab_namespaces",
    "gitlab_members",
    "crm_persons",
    "marketo_unsubscribes",
    "cs_accounts",
    "cs_contacts",
)
EVENT_KINDS: tuple[str, ...] = ("trial_signups", "free_registrations")

LEAD_STATUSES: tuple[str, ...] = (
    "Raw",
    "Inquiry",
    "MQL",
    "Accepted",
    "Qualifying",
    "Qualified",
    "Unqualified",
    "Nurture",
    "Bad Data",
    "Web Portal Purchase",
)
ACCESS_LEVELS: tuple[int, ...] = (10, 15, 20, 30, 40, 50)
EMPLOYEE_BUCKETS: tuple[str, ...] = ("1-99", "100-499", "500-1999", "2000+")
PLAN_TITLES: tuple[str, ...] = ("Free", "Premium", "Ultimate", "Ultimate Trial", "Premium Trial")
STAGES: tuple[str, ...] = ("create", "verify", "plan", "secure", "release", "package", "monitor", "govern")

# Seeded upstream violations (values deliberately outside the contracts).
UNKNOWN_INITIAL_SOURCES: tuple[str, ...] = ("Linkedin Ads", "Webinar Series", "Partner Portal", "G2 Crowd")
CASE_VARIANT_INITIAL_SOURCES: tuple[str, ...] = (
    " trial - gitlab.com ",
    "WEBCAST",
    "gitlab.com",
    "Web Direct ",
    " conference",
    "TRIAL - ENTERPRISE",
)
UNKNOWN_STATUSES: tuple[str, ...] = ("Working", "Recycled", "Contacted", "Open")
#: Customer Programs bad input: one account or contact each. A CARR that is not a usable amount is left out (the
#: account is still served) and named by a WARN check, as are two Sold-To contacts without an Admin (both receive);
#: an unknown deployment type and a contact without an e-mail are skipped from the Gainsight push.
CS_VIOLATION_KINDS: tuple[str, ...] = (
    "cs_negative_carr",
    "cs_text_carr",
    "cs_unknown_deployment_type",
    "cs_two_sold_to_contacts",
    "cs_contact_without_email",
)
VIOLATION_KINDS: tuple[str, ...] = (
    "initial_source_changed",
    "unknown_initial_source",
    "initial_source_case_variant",
    "unknown_status",
    "null_email",
    *CS_VIOLATION_KINDS,
)
VIOLATIONS_PER_KIND = 6
NULL_EMAIL_ROWS = 2

SOURCE_BUCKET_WEIGHTS: dict[str, float] = {
    "inbound": 0.35,
    "trial": 0.25,
    "core": 0.05,
    "outbound": 0.10,
    "paid demand gen": 0.10,
    "referral": 0.05,
    "virtual event": 0.05,
    "web direct": 0.03,
    "purchased list": 0.01,
    "Other": 0.01,
}

COUNTRIES: dict[str, float] = {
    "United States": 0.32,
    "India": 0.12,
    "Germany": 0.07,
    "United Kingdom": 0.07,
    "China": 0.04,
    "France": 0.04,
    "Canada": 0.04,
    "Brazil": 0.04,
    "Netherlands": 0.03,
    "Japan": 0.03,
    "Australia": 0.03,
    "Spain": 0.02,
    "Poland": 0.02,
    "Israel": 0.02,
    "Singapore": 0.02,
    "Sweden": 0.02,
    "Mexico": 0.02,
    "Nigeria": 0.02,
    "Ukraine": 0.02,
    "South Korea": 0.01,
}
US_STATES: tuple[str, ...] = (
    "California", "Texas", "New York", "Washington", "Massachusetts", "Illinois", "Florida", "Colorado",
    "Georgia", "Virginia", "North Carolina", "Oregon", "Pennsylvania", "New Jersey", "Ohio", "Utah",
)  # fmt: skip
CA_PROVINCES: tuple[str, ...] = ("Ontario", "Quebec", "British Columbia", "Alberta", "Manitoba")
USER_ROLES: dict[str, float] = {
    "software_developer": 0.38,
    "devops_engineer": 0.18,
    "development_team_lead": 0.07,
    "product_manager": 0.07,
    "systems_administrator": 0.05,
    "security_professional": 0.05,
    "data_analyst": 0.05,
    "product_designer": 0.04,
    "other": 0.11,
}
EMPLOYEE_BUCKET_WEIGHTS = (0.55, 0.20, 0.12, 0.13)
SIGNUP_REASONS: dict[str, float] = {
    "I want to store my code": 0.22,
    "I want to use GitLab CI with my existing repository": 0.18,
    "I want to move my repository to GitLab from somewhere else": 0.16,
    "I want to explore GitLab to see if it's worth switching to": 0.20,
    "I want to learn the basics of Git": 0.14,
    "A different reason": 0.10,
}
PERSONAL_DOMAINS: tuple[str, ...] = (
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "hotmail.com",
    "proton.me",
    "icloud.com",
)

DAY = 86_400
LATEST_LANDING_AGE_S = 1_800
"""The newest row of each extract the arrival checks watch (GitLab users and namespaces, CRM persons) is at most
this old at ``as_of``: a day's extract of a live product holds changes of its last hour. The sample then stays
within the 36-hour arrival window all day long, however small it is."""


@dataclass(frozen=True)
class EventFile:
    """One landing JSONL file: its file name and raw text lines (written verbatim, one per line)."""

    name: str
    lines: list[str]


@dataclass
class SampleData:
    """Generated raw tables (one DataFrame each), landing event files and seeded violations."""

    seed: int
    as_of: dt.date
    gitlab_users: pd.DataFrame
    gitlab_namespaces: pd.DataFrame
    gitlab_members: pd.DataFrame
    crm_persons: pd.DataFrame
    marketo_unsubscribes: pd.DataFrame
    cs_accounts: pd.DataFrame
    cs_contacts: pd.DataFrame
    trial_signups: list[EventFile]
    free_registrations: list[EventFile]
    violations: dict[str, list[int]] = field(default_factory=dict)
    """Violation kind -> affected crm person_ids (see ``VIOLATION_KINDS``); ``cs_*`` account kinds: account ids."""
    malformed_events: dict[str, dict[str, int]] = field(default_factory=dict)
    """Event kind -> malformation kind -> number of malformed lines seeded into that kind's files."""

    def tables(self) -> dict[str, pd.DataFrame]:
        """Raw tables keyed by table name (schema ``raw``)."""
        return {name: getattr(self, name) for name in TABLE_NAMES}

    def event_files(self) -> dict[str, list[EventFile]]:
        """Landing event files keyed by event kind (landing sub-directory)."""
        return {kind: getattr(self, kind) for kind in EVENT_KINDS}


# ----------------------------------------------------------------------------------------------------
# helpers


def _pick(rng: np.random.Generator, weights: dict[str, float] | tuple[str, ...], size: int) -> np.ndarray:
    """Sample ``size`` values (object array) from a weighted dict or a uniform tuple."""
    if isinstance(weights, dict):
        values = np.array(list(weights), dtype=object)
        p = np.array(list(weights.values()), dtype=float)
        return values[rng.choice(len(values), size=size, p=p / p.sum())]
    values = np.array(weights, dtype=object)
    return values[rng.integers(0, len(values), size)]


def _ts(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> naive UTC ``datetime64[us]``."""
    return np.asarray(seconds, dtype=np.int64).astype("datetime64[s]").astype("datetime64[us]")


def _dates(days: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Epoch days -> object array of ``datetime.date`` (None where ``mask`` is False)."""
    days = np.asarray(days, dtype=np.int64)
    out = np.full(len(days), None, dtype=object)
    sel = np.ones(len(days), dtype=bool) if mask is None else mask
    out[sel] = days[sel].astype("datetime64[D]").astype(object)
    return out


def _cat(*parts: object) -> np.ndarray:
    """Element-wise string concatenation of arrays (numbers are formatted with ``str``) and scalars."""

    def as_text(part: object) -> object:
        if isinstance(part, np.ndarray) and part.dtype != object:
            return part.astype(str).astype(object)
        return part

    out = as_text(parts[0])
    for part in parts[1:]:
        out = out + as_text(part)
    return np.asarray(out, dtype=object)


def _fmt(template: str, *columns: np.ndarray) -> np.ndarray:
    """``template.format(*row)`` for each row of the zipped columns (one string allocation per row)."""
    return np.array([template.format(*row) for row in zip(*columns, strict=True)], dtype=object)


def _json_tokens(values: np.ndarray) -> np.ndarray:
    """JSON text of each value of a low-cardinality array (None -> ``null``); encodes distinct values once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    tokens = np.array([json.dumps(v, ensure_ascii=False) for v in uniques] + ["null"], dtype=object)
    return tokens[codes]


def _slug(value: str, sep: str = "") -> str:
    return re.sub(r"[^a-z0-9]+", sep, value.lower()).strip(sep)


def _uuid_strings(namespace: uuid.UUID, prefix: str, count: int) -> np.ndarray:
    return np.array([str(uuid.uuid5(namespace, f"{prefix}:{i}")) for i in range(count)], dtype=object)


def _group_positions(counts: np.ndarray) -> np.ndarray:
    """For rows produced by ``np.repeat(x, counts)``, the 0-based position of each row within its group."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def _unique_names(names: np.ndarray) -> np.ndarray:
    """Append " (2)", " (3)", ... to repeated names so that every name is unique."""
    dup = pd.Series(names).groupby(names).cumcount().to_numpy()
    suffix = np.where(dup > 0, _cat(" (", dup + 1, ")"), "")
    return _cat(names, suffix)


def load_initial_sources(path: Path = INITIAL_SOURCE_SEED) -> pd.DataFrame:
    """Allowed initial sources (``initial_source``, ``source_bucket``) from the dbt seed."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return frame[["initial_source", "source_bucket"]]


def _source_weights(sources: pd.DataFrame) -> np.ndarray:
    bucket_sizes = sources["source_bucket"].map(sources["source_bucket"].value_counts())
    bucket_weight = sources["source_bucket"].map(SOURCE_BUCKET_WEIGHTS).fillna(0.01)
    weights = (bucket_weight / bucket_sizes).to_numpy(dtype=float)
    return weights / weights.sum()


def _seed_cs_violations(accounts: pd.DataFrame, contacts: pd.DataFrame) -> dict[str, list[int]]:
    """Break a few accounts without a TAM (Tech Touch or Scale) in place; returns their ids.

    Account kinds list account ids, `cs_contact_without_email` lists the person id. Selection is by position,
    not by the random generator, so the rest of the data set stays as it was.
    """
    admins = contacts.groupby("account_id")["gitlab_role"].agg(lambda roles: int((roles == "GitLab Admin").sum()))
    sold_to = contacts.groupby("account_id")["gitlab_role"].agg(lambda roles: int((roles == "Sold-To").sum()))
    others = contacts.groupby("account_id")["gitlab_role"].agg(
        lambda roles: int((~roles.isin(["GitLab Admin", "Sold-To"])).sum())
    )
    digital = accounts.loc[accounts["technical_account_manager"].isna(), "account_id"].tolist()
    with_admin = [a for a in digital if admins.get(a, 0) > 0]
    fallback = [a for a in digital if admins.get(a, 0) == 0 and sold_to.get(a, 0) == 1 and others.get(a, 0) > 0]
    chosen: dict[str, list[int]] = {kind: [] for kind in CS_VIOLATION_KINDS}
    if fallback:  # a second Sold-To on an account without a GitLab Admin: both receive, the account is named
        account = fallback[0]
        row = contacts.index[(contacts["account_id"] == account) & ~contacts["gitlab_role"].isin(["Sold-To"])][0]
        contacts.loc[row, "gitlab_role"] = "Sold-To"
        chosen["cs_two_sold_to_contacts"] = [int(account)]
    spare = [a for a in with_admin if a not in chosen["cs_two_sold_to_contacts"]]
    edits = (
        ("cs_negative_carr", "carr", "-1250.00"),
        ("cs_text_carr", "carr", "n/a"),
        ("cs_unknown_deployment_type", "deployment_type", "Dedicated"),
    )
    for (kind, column, value), account in zip(edits, spare[:3], strict=False):
        accounts.loc[accounts["account_id"] == account, column] = value
        chosen[kind] = [int(account)]
    if len(spare) > 3:  # a GitLab Admin contact without an e-mail address
        row = contacts.index[(contacts["account_id"] == spare[3]) & (contacts["gitlab_role"] == "GitLab Admin")][0]
        contacts.loc[row, "email"] = None
        chosen["cs_contact_without_email"] = [int(contacts.loc[row, "person_id"])]
    return chosen


# ----------------------------------------------------------------------------------------------------
# one builder per table; all draw from one random generator, in the order `generate` calls them


@dataclass(frozen=True)
class _Context:
    """What every builder shares: the random generator, the reference time and the namespace of generated ids."""

    rng: np.random.Generator
    as_of: dt.date
    as_of_s: int
    id_namespace: uuid.UUID

    @property
    def as_of_day(self) -> int:
        return self.as_of_s // DAY


@dataclass(frozen=True)
class _Names:
    """Name pools (Faker is slow, so it only fills small pools sampled with numpy) and their slugs."""

    first: np.ndarray
    last: np.ndarray
    company: np.ndarray
    tam: np.ndarray
    first_slug: np.ndarray
    last_slug: np.ndarray
    company_slug: np.ndarray
    company_domain: np.ndarray


@dataclass(frozen=True)
class _Users:
    """``gitlab_users`` and, by user position, the columns later tables and the landing events reuse."""

    table: pd.DataFrame
    user_id: np.ndarray
    created: np.ndarray
    first: np.ndarray
    last: np.ndarray
    company: np.ndarray
    setup: np.ndarray
    email: np.ndarray
    country: np.ndarray
    state: np.ndarray
    role: np.ndarray
    bucket: np.ndarray
    reason: np.ndarray


@dataclass(frozen=True)
class _Namespaces:
    """``gitlab_namespaces`` and, by namespace position, the columns later tables reuse."""

    table: pd.DataFrame
    namespace_id: np.ndarray
    creator: np.ndarray
    created: np.ndarray
    plan: np.ndarray
    is_trial: np.ndarray
    is_paid: np.ndarray
    trial_day: np.ndarray
    for_company: np.ndarray


@dataclass(frozen=True)
class _People:
    """CRM persons (one per person, before record versions), person_id ascending with created_at."""

    person_id: np.ndarray
    first: np.ndarray
    last: np.ndarray
    company: np.ndarray
    email: np.ndarray
    created: np.ndarray
    user: np.ndarray
    """User position of a person linked to a GitLab user, else -1."""
    is_only: np.ndarray
    merge_target: np.ndarray
    """Person position a merged-away record was merged into, else -1."""
    is_loser: np.ndarray


@dataclass(frozen=True)
class _RuleCases:
    """Per person: record versions, initial sources, and who carries the coverage rows and seeded violations."""

    n_versions: np.ndarray
    null_first: np.ndarray
    source: np.ndarray
    source_values: np.ndarray
    cover_status: np.ndarray
    changed: np.ndarray
    unknown_source: np.ndarray
    case_variant: np.ndarray
    unknown_status: np.ndarray
    null_email: np.ndarray
    violation_person: np.ndarray


@dataclass(frozen=True)
class _Accounts:
    """``cs_accounts`` and, by account position, its ids, names and SaaS namespace position (-1: Self-Managed)."""

    table: pd.DataFrame
    account_id: np.ndarray
    names: np.ndarray
    saas_namespace: np.ndarray


def _name_pools(seed: int) -> _Names:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    first = np.array([fake.first_name() for _ in range(1500)], dtype=object)
    last = np.array([fake.last_name() for _ in range(1500)], dtype=object)
    company = np.array(list(dict.fromkeys(fake.company() for _ in range(2000))), dtype=object)
    tam = np.array([fake.name() for _ in range(30)], dtype=object)
    return _Names(
        first=first,
        last=last,
        company=company,
        tam=tam,
        first_slug=np.array([_slug(v) for v in first], dtype=object),
        last_slug=np.array([_slug(v) for v in last], dtype=object),
        company_slug=np.array([_slug(v, "-") for v in company], dtype=object),
        company_domain=np.array([_slug(v) + ".com" for v in company], dtype=object),
    )


def _gitlab_users(ctx: _Context, names: _Names, n: int) -> _Users:
    """``n`` users, user_id ascending with created_at; 40% signed up within the last 59 days."""
    rng = ctx.rng
    recent = rng.random(n) < 0.40
    age_s = np.where(recent, rng.integers(600, 59 * DAY, n), rng.integers(62 * DAY, 3 * 365 * DAY, n))
    age_s = np.sort(age_s)[::-1]
    age_s[-1] = min(age_s[-1], LATEST_LANDING_AGE_S)  # a daily extract holds a signup of its last hour
    created = ctx.as_of_s - age_s
    user_id = np.arange(1, n + 1, dtype=np.int64)
    first = rng.integers(0, len(names.first), n)
    last = rng.integers(0, len(names.last), n)
    company = rng.integers(0, len(names.company), n)
    setup = rng.random(n) < 0.55
    domain = np.where(setup, names.company_domain[company], _pick(rng, PERSONAL_DOMAINS, n))
    email = _fmt("{}.{}{}@{}", names.first_slug[first], names.last_slug[last], user_id, domain)
    country = _pick(rng, COUNTRIES, n)
    state = np.full(n, None, dtype=object)
    is_us, is_ca = country == "United States", country == "Canada"
    state[is_us] = _pick(rng, US_STATES, int(is_us.sum()))
    state[is_ca] = _pick(rng, CA_PROVINCES, int(is_ca.sum()))
    role = _pick(rng, USER_ROLES, n)
    bucket = _pick(rng, dict(zip(EMPLOYEE_BUCKETS, EMPLOYEE_BUCKET_WEIGHTS, strict=True)), n)
    reason = _pick(rng, SIGNUP_REASONS, n)
    table = pd.DataFrame(
        {
            "user_id": user_id,
            "email": email,
            "first_name": names.first[first],
            "last_name": names.last[last],
            "company": names.company[company],
            "country": country,
            "state": state,
            "user_role": role,
            "employee_bucket": bucket,
            "signup_reason": reason,
            "setup_for_company": setup,
            "created_at": _ts(created),
        }
    )
    return _Users(table, user_id, created, first, last, company, setup, email, country, state, role, bucket, reason)


def _stage_lists() -> np.ndarray:
    """The comma-separated stage list of every 8-bit stage mask (None when no stage is set)."""
    return np.array(
        [",".join(s for i, s in enumerate(STAGES) if mask >> i & 1) or None for mask in range(256)],
        dtype=object,
    )


def _gitlab_namespaces(ctx: _Context, names: _Names, users: _Users) -> _Namespaces:
    """~0.7 namespaces per user, namespace_id ascending with created_at; trials and paid plans among them."""
    rng, as_of_s, as_of_day = ctx.rng, ctx.as_of_s, ctx.as_of_day
    n = len(users.user_id)
    m = max(1, round(0.7 * n))
    creator = rng.integers(0, n, m)
    c_age = as_of_s - users.created[creator]
    created = users.created[creator] + (rng.random(m) ** 2 * np.minimum(c_age - 60, 14 * DAY)).astype(np.int64)
    order = np.argsort(created, kind="stable")
    creator, created = creator[order], created[order]
    # the newest namespace, of the extract's last hour (never before its creator signed up: see _gitlab_users)
    created[-1] = max(created[-1], as_of_s - LATEST_LANDING_AGE_S)
    ns_id = np.arange(10_000_001, 10_000_001 + m, dtype=np.int64)
    fresh = as_of_s - created < 30 * DAY
    plan = np.where(
        fresh,
        _pick(rng, dict(zip(PLAN_TITLES, (0.50, 0.02, 0.01, 0.30, 0.17), strict=True)), m),
        _pick(rng, dict(zip(PLAN_TITLES, (0.78, 0.09, 0.05, 0.05, 0.03), strict=True)), m),
    )
    is_trial = (plan == "Ultimate Trial") | (plan == "Premium Trial")
    is_paid = (plan == "Premium") | (plan == "Ultimate")
    created_day = created // DAY
    trial_day = np.where(
        fresh,
        np.minimum(created_day + rng.integers(0, 3, m), as_of_day - 1),
        as_of_day - rng.integers(1, 30, m),
    )
    trial_day = np.maximum(trial_day, created_day)
    for_company = np.where(rng.random(m) < 0.9, users.setup[creator], ~users.setup[creator])
    glm_source = np.where(
        is_trial,
        _pick(rng, ("about.gitlab.com/free-trial/", "gitlab.com/-/trial_registrations/new"), m),
        _pick(
            rng,
            {
                "about.gitlab.com/pricing/": 0.35,
                "about.gitlab.com/": 0.30,
                "gitlab.com/users/sign_up": 0.25,
                "about.gitlab.com/free-trial/": 0.10,
            },
            m,
        ),
    )
    glm_content = np.where(
        is_trial,
        _pick(rng, {"default-saas-trial": 0.8, "trial-registration-page": 0.2}, m),
        _pick(rng, {"free-registration": 0.7, "pricing-page-signup": 0.2, "homepage-signup": 0.1}, m),
    )
    stage_p = np.array([0.92, 0.60, 0.35, 0.20, 0.20, 0.15, 0.10, 0.08])
    stage_mask = ((rng.random((m, len(STAGES))) < stage_p) * (1 << np.arange(len(STAGES)))).sum(axis=1)
    personal_base = _fmt("{}{}", names.first_slug[users.first[creator]], names.last_slug[users.last[creator]])
    base = np.where(for_company, names.company_slug[users.company[creator]], personal_base)
    table = pd.DataFrame(
        {
            "namespace_id": ns_id,
            "namespace_name": _fmt("{}-{}", base, ns_id - 10_000_000),
            "creator_user_id": users.user_id[creator],
            "created_at": _ts(created),
            "plan_title": plan,
            "plan_is_paid": is_paid,
            "trial_start_date": _dates(trial_day, is_trial),
            "trial_end_date": _dates(trial_day + 30, is_trial),
            "is_setup_for_company": for_company,
            "glm_source": glm_source,
            "glm_content": glm_content,
            "is_impacted_by_user_limit": (plan == "Free") & (rng.random(m) < 0.12),
            "is_namespace_pql": rng.random(m) < np.where(is_trial, 0.25, 0.06),
            "list_of_stages": _stage_lists()[stage_mask],
        }
    )
    return _Namespaces(table, ns_id, creator, created, plan, is_trial, is_paid, trial_day, for_company)


def _gitlab_members(ctx: _Context, users: _Users, namespaces: _Namespaces) -> pd.DataFrame:
    """Each creator is an Owner (50) of its namespace; company namespaces get more members. Every level appears."""
    rng = ctx.rng
    n, m = len(users.user_id), len(namespaces.namespace_id)
    extra = rng.poisson(np.where(namespaces.for_company, 2.0, 0.3))
    extra_ns = np.repeat(np.arange(m), extra)
    k = len(extra_ns)
    member_ns = np.concatenate([np.arange(m), extra_ns])
    member_user = np.concatenate([namespaces.creator, rng.integers(0, n, k)])
    level_p = np.array([0.15, 0.05, 0.15, 0.45, 0.15, 0.05])
    member_level = np.concatenate(
        [np.full(m, 50, dtype=np.int64), np.array(ACCESS_LEVELS, dtype=np.int64)[rng.choice(6, k, p=level_p)]]
    )
    members = pd.DataFrame(
        {
            "namespace_id": namespaces.namespace_id[member_ns],
            "user_id": users.user_id[member_user],
            "access_level": member_level,
        }
    )
    members = members.drop_duplicates(["namespace_id", "user_id"], keep="first")
    missing = [lvl for lvl in ACCESS_LEVELS if lvl not in set(members["access_level"].unique())]
    non_creator = np.flatnonzero(members.index.to_numpy() >= m)
    for i, lvl in enumerate(missing):  # tiny inputs only: guarantee every access level appears
        if i < len(non_creator):
            members.iloc[non_creator[i], 2] = lvl
    return members.sort_values(["namespace_id", "user_id"], ignore_index=True)


def _crm_people(ctx: _Context, names: _Names, users: _Users) -> _People:
    """Persons linked to 80% of the users, CRM-only persons, and merge losers (duplicates of a survivor).

    One merge chain of five records: the four oldest merged-away records are merged one into the next, the last
    into its survivor, so the lineage and the contacts show a merge deeper than one hop.
    """
    rng, as_of_s = ctx.rng, ctx.as_of_s
    n = len(users.user_id)
    linked = np.flatnonzero(rng.random(n) < 0.80)
    n_linked, n_only = len(linked), max(1, round(0.20 * n))
    before = rng.random(n_linked) < 0.30
    linked_created = np.where(
        before,
        users.created[linked] - rng.integers(DAY, 400 * DAY, n_linked),
        users.created[linked] + rng.integers(0, 2 * DAY, n_linked),
    )
    only_first = rng.integers(0, len(names.first), n_only)
    only_last = rng.integers(0, len(names.last), n_only)
    only_company = rng.integers(0, len(names.company), n_only)
    only_domain = np.where(
        rng.random(n_only) < 0.7, names.company_domain[only_company], _pick(rng, PERSONAL_DOMAINS, n_only)
    )
    only_email = _fmt(
        "{}_{}{}@{}", names.first_slug[only_first], names.last_slug[only_last], np.arange(1, n_only + 1), only_domain
    )
    only_created = as_of_s - rng.integers(3600, 4 * 365 * DAY, n_only)

    b_first = np.concatenate([users.first[linked], only_first])
    b_last = np.concatenate([users.last[linked], only_last])
    b_company = np.concatenate([users.company[linked], only_company])
    b_email = np.concatenate([users.email[linked], only_email])
    b_created = np.minimum(np.concatenate([linked_created, only_created]), as_of_s - 3600)
    b_user = np.concatenate([linked, np.full(n_only, -1)])
    nb = len(b_email)

    n_losers = max(2, round(0.03 * nb))
    surv = rng.choice(nb, n_losers, replace=False)
    older = rng.random(n_losers) < 0.85
    s_created = b_created[surv]
    l_created = np.where(
        older,
        s_created - rng.integers(DAY, 500 * DAY, n_losers),
        s_created + (rng.random(n_losers) * (as_of_s - 3600 - s_created)).astype(np.int64),
    )
    same_email = rng.random(n_losers) < 0.6
    l_email = np.where(
        same_email,
        b_email[surv],
        _fmt(
            "{}.{}@{}",
            names.first_slug[b_first[surv]],
            names.last_slug[b_last[surv]],
            _pick(rng, PERSONAL_DOMAINS, n_losers),
        ),
    )
    p_created = np.concatenate([b_created, l_created])
    merge_target = np.concatenate([np.full(nb, -1), surv])  # person index of survivor, by raw index

    # person_id ascending with created_at
    p_order = np.argsort(p_created, kind="stable")
    rank = np.empty_like(p_order)
    rank[p_order] = np.arange(len(p_order))
    merge_target = merge_target[p_order]
    merge_target = np.where(merge_target >= 0, rank[np.maximum(merge_target, 0)], -1)
    is_loser = merge_target >= 0
    chained = np.flatnonzero(is_loser)[:4]
    if len(chained) == 4:
        merge_target[chained[:-1]] = chained[1:]
    is_only = np.concatenate([np.zeros(n_linked, bool), np.ones(n_only, bool), np.zeros(n_losers, bool)])
    return _People(
        person_id=np.arange(100_000_001, 100_000_001 + len(p_order), dtype=np.int64),
        first=np.concatenate([b_first, b_first[surv]])[p_order],
        last=np.concatenate([b_last, b_last[surv]])[p_order],
        company=np.concatenate([b_company, b_company[surv]])[p_order],
        email=np.concatenate([b_email, l_email])[p_order],
        created=p_created[p_order],
        user=np.concatenate([b_user, np.full(n_losers, -1)])[p_order],
        is_only=is_only[p_order],
        merge_target=merge_target,
        is_loser=is_loser,
    )


def _rule_cases(ctx: _Context, people: _People) -> _RuleCases:
    """Record versions and initial sources per person, then disjoint, never-merged persons that cover every
    initial source and lead status, and those that carry the seeded violations."""
    rng = ctx.rng
    n_p = len(people.person_id)
    is_survivor = np.zeros(n_p, bool)
    is_survivor[people.merge_target[people.is_loser]] = True
    n_versions = rng.choice([1, 2, 3, 4], size=n_p, p=[0.4, 0.3, 0.2, 0.1])
    n_versions[people.is_loser] = np.maximum(n_versions[people.is_loser], 2)
    null_first = (n_versions >= 2) & (rng.random(n_p) < 1 / 6)

    sources = load_initial_sources()
    source_values = sources["initial_source"].to_numpy(dtype=object)
    source = source_values[rng.choice(len(source_values), size=n_p, p=_source_weights(sources))]

    free = rng.permutation(np.flatnonzero(~people.is_loser & ~is_survivor))
    taken = np.zeros(n_p, bool)

    def take(count: int, mask: np.ndarray | None = None) -> np.ndarray:
        ok = free[~taken[free]] if mask is None else free[~taken[free] & mask[free]]
        chosen = ok[:count]
        taken[chosen] = True
        return chosen

    cover_source = take(len(source_values))
    source[cover_source] = source_values[: len(cover_source)]
    null_first[cover_source] = False
    cover_status = take(len(LEAD_STATUSES))
    changed = take(VIOLATIONS_PER_KIND, n_versions >= 2)
    null_first[changed] = False
    unknown = take(VIOLATIONS_PER_KIND)
    source[unknown] = np.resize(np.array(UNKNOWN_INITIAL_SOURCES, dtype=object), len(unknown))
    case = take(VIOLATIONS_PER_KIND)
    source[case] = np.resize(np.array(CASE_VARIANT_INITIAL_SOURCES, dtype=object), len(case))
    null_first[unknown] = null_first[case] = False
    unknown_status = take(VIOLATIONS_PER_KIND)
    null_email = take(NULL_EMAIL_ROWS, people.is_only)
    n_versions[null_email] = 1
    violation_person = taken.copy()
    violation_person[cover_source] = False
    violation_person[cover_status] = False
    return _RuleCases(
        n_versions=n_versions,
        null_first=null_first,
        source=source,
        source_values=source_values,
        cover_status=cover_status,
        changed=changed,
        unknown_source=unknown,
        case_variant=case,
        unknown_status=unknown_status,
        null_email=null_email,
        violation_person=violation_person,
    )


def _cs_accounts(ctx: _Context, names: _Names, users: _Users, namespaces: _Namespaces) -> _Accounts:
    """One account per 15 users: 60% SaaS (on a paid namespace), the rest Self-Managed; account_id ascending
    with created_at. CARR lands as text, as CS exports do."""
    rng, as_of_s, as_of_day = ctx.rng, ctx.as_of_s, ctx.as_of_day
    ns = namespaces
    n_acc = max(1, len(users.user_id) // 15)
    paid_ns = np.flatnonzero(ns.is_paid)
    n_saas = min(round(0.6 * n_acc), len(paid_ns))
    saas_ns = np.sort(rng.choice(paid_ns, n_saas, replace=False))
    n_sm = n_acc - n_saas
    a_company = np.concatenate([users.company[ns.creator[saas_ns]], rng.integers(0, len(names.company), n_sm)])
    sm_tier = _pick(rng, {"Premium": 0.6, "Ultimate": 0.4}, n_sm)
    a_tier = np.concatenate([ns.plan[saas_ns], sm_tier])
    a_deploy = np.concatenate([np.full(n_saas, "SaaS", dtype=object), np.full(n_sm, "Self-Managed", dtype=object)])
    a_created = np.concatenate(
        [
            ns.created[saas_ns] + (rng.random(n_saas) * (as_of_s - DAY - ns.created[saas_ns])).astype(np.int64),
            as_of_s - rng.integers(30 * DAY, 6 * 365 * DAY, n_sm),
        ]
    )
    a_namespace = pd.array(np.concatenate([ns.namespace_id[saas_ns], np.zeros(n_sm, np.int64)]), dtype="Int64")
    a_namespace[n_saas:] = pd.NA
    a_order = np.argsort(a_created, kind="stable")
    a_company, a_tier, a_deploy, a_created = (
        a_company[a_order],
        a_tier[a_order],
        a_deploy[a_order],
        a_created[a_order],
    )
    a_namespace = a_namespace[a_order]
    a_saas_ns = np.concatenate([saas_ns, np.full(n_sm, -1)])[a_order]
    account_id = np.arange(60_000_001, 60_000_001 + n_acc, dtype=np.int64)
    is_ult = a_tier == "Ultimate"
    carr = np.round(rng.lognormal(np.log(30_000), 1.1, n_acc) * np.where(is_ult, 2.5, 1.0), 2)
    carr[rng.random(n_acc) < 0.08] = 0.0
    tam = np.where(rng.random(n_acc) < 0.25, _pick(rng, tuple(names.tam), n_acc), None)
    a_created_day = a_created // DAY
    renewal_day = as_of_day + 1 + (a_created_day - as_of_day - 1) % 365
    account_names = _unique_names(names.company[a_company])
    table = pd.DataFrame(
        {
            "account_id": account_id,
            "account_name": account_names,
            "carr": np.char.mod("%.2f", carr).astype(object),
            "technical_account_manager": tam,
            "account_owner_team": _pick(rng, {"AMER": 0.45, "EMEA": 0.30, "APAC": 0.15, "PUBSEC": 0.10}, n_acc),
            "products_purchased": _cat(a_deploy, " - ", a_tier),
            "deployment_type": a_deploy,
            "support_level": np.where(
                is_ult,
                _pick(rng, {"Priority": 0.8, "Standard": 0.2}, n_acc),
                _pick(rng, {"Standard": 0.75, "Basic": 0.25}, n_acc),
            ),
            "namespace_id": a_namespace,
            "created_at": _ts(a_created),
            "renewal_date": _dates(renewal_day),
        }
    )
    return _Accounts(table, account_id, account_names, a_saas_ns)


def _cs_contacts(
    ctx: _Context, users: _Users, namespaces: _Namespaces, people: _People, cases: _RuleCases, accounts: _Accounts
) -> tuple[pd.DataFrame, np.ndarray]:
    """Contacts (GitLab Admins, Sold-To, other roles) drawn from persons that are neither merged nor a rule case;
    returns the table and, per person, the position of its account (-1: not a contact)."""
    rng = ctx.rng
    n_acc, n_p = len(accounts.account_id), len(people.person_id)
    cat = rng.random(n_acc)
    n_admin = np.where(cat < 0.77, np.where(rng.random(n_acc) < 0.6, 1, 2), 0)
    n_sold = np.where(cat < 0.77, (rng.random(n_acc) < 0.5).astype(int), np.where(cat < 0.97, 1, 0))
    n_other = rng.poisson(0.6, n_acc)
    per_acc = n_admin + n_sold + n_other
    c_acc = np.repeat(np.arange(n_acc), per_acc)
    pos = _group_positions(per_acc)
    other_role_weights = {
        "Billing": 0.4,
        "Technical Contact": 0.4,
        "Executive Sponsor": 0.1,
        "Procurement": 0.1,
    }
    other_roles = _pick(rng, other_role_weights, len(c_acc))
    c_role = np.where(
        pos < n_admin[c_acc],
        "GitLab Admin",
        np.where(pos < (n_admin + n_sold)[c_acc], "Sold-To", other_roles),
    )
    # SaaS accounts: the namespace creator's CRM person is the first GitLab Admin when available
    person_of_user = np.full(len(users.user_id), -1)
    linked_persons = np.flatnonzero(people.user >= 0)
    person_of_user[people.user[linked_persons]] = linked_persons
    pref = np.full(len(c_acc), -1)
    first_admin = (pos == 0) & (n_admin[c_acc] > 0) & (accounts.saas_namespace[c_acc] >= 0)
    pref[first_admin] = person_of_user[namespaces.creator[accounts.saas_namespace[c_acc[first_admin]]]]
    bad = pref >= 0
    bad[bad] = cases.violation_person[pref[bad]] | people.is_loser[pref[bad]]
    pref[bad] = -1
    _, first_seen = np.unique(pref, return_index=True)
    dup = np.ones(len(pref), bool)
    dup[first_seen] = False
    pref[dup] = -1
    used = np.zeros(n_p, bool)
    used[pref[pref >= 0]] = True
    pool = rng.permutation(np.flatnonzero(~used & ~cases.violation_person & ~people.is_loser))
    need = np.flatnonzero(pref < 0)
    fill = min(len(need), len(pool))
    pref[need[:fill]] = pool[:fill]
    keep = pref >= 0
    c_acc, c_person, c_role = c_acc[keep], pref[keep], c_role[keep]
    person_account = np.full(n_p, -1)
    person_account[c_person] = c_acc
    table = pd.DataFrame(
        {
            "account_id": accounts.account_id[c_acc],
            "person_id": people.person_id[c_person],
            "email": people.email[c_person],
            "gitlab_role": c_role,
        }
    )
    return table, person_account


@dataclass(frozen=True)
class _Versions:
    """Record versions of ``persons`` persons: each row's person position, version number, and if it is the latest."""

    persons: int
    rows: np.ndarray
    ver: np.ndarray
    last: np.ndarray


def _version_updated_at(ctx: _Context, people: _People, versions: _Versions) -> np.ndarray:
    """updated_at per version, increasing within a person; a merged-away record's latest one follows its survivor."""
    rows, ver, last = versions.rows, versions.ver, versions.last
    u = ctx.rng.random(len(rows))
    u[ver == 0] = -1.0
    u = u[np.lexsort((u, rows))]
    u[ver == 0] = 0.0
    span = (ctx.as_of_s - 1 - 4) - people.created[rows]
    updated = people.created[rows] + (u * span).astype(np.int64) + ver
    loser_last = last & people.is_loser[rows]
    updated[loser_last] = np.maximum(updated[loser_last], people.created[people.merge_target[rows[loser_last]]] + 60)
    newest = np.flatnonzero(last)[np.argmax(updated[last])]  # a person's latest version: later than all of theirs
    updated[newest] = max(updated[newest], ctx.as_of_s - LATEST_LANDING_AGE_S)
    return updated


def _version_statuses(ctx: _Context, cases: _RuleCases, versions: _Versions) -> np.ndarray:
    """Lead status per version; the coverage persons end in each status, the unknown-status cases carry one."""
    rows, ver, last = versions.rows, versions.ver, versions.last
    first_status_weights = {
        "Raw": 0.55,
        "Inquiry": 0.35,
        "MQL": 0.05,
        "Bad Data": 0.02,
        "Web Portal Purchase": 0.03,
    }
    first_status = _pick(ctx.rng, first_status_weights, len(rows))
    later_status = _pick(
        ctx.rng,
        dict(zip(LEAD_STATUSES, (0.06, 0.12, 0.18, 0.10, 0.10, 0.10, 0.10, 0.16, 0.04, 0.04), strict=True)),
        len(rows),
    )
    status = np.where(ver == 0, first_status, later_status)
    status_of_person = np.full(versions.persons, None, dtype=object)
    status_of_person[cases.cover_status] = np.array(LEAD_STATUSES, dtype=object)[: len(cases.cover_status)]
    status_of_person[cases.unknown_status] = np.resize(
        np.array(UNKNOWN_STATUSES, dtype=object), len(cases.unknown_status)
    )
    forced = (last & np.isin(rows, cases.cover_status)) | np.isin(rows, cases.unknown_status)
    status[forced] = status_of_person[rows[forced]]
    return status


def _version_sources(ctx: _Context, cases: _RuleCases, versions: _Versions) -> np.ndarray:
    """Initial source per version: sometimes empty on the first one; the changed-source cases change it last."""
    rows, ver, last = versions.rows, versions.ver, versions.last
    values = cases.source_values
    source = cases.source[rows].copy()
    source[(ver == 0) & cases.null_first[rows]] = None
    changed_rows = last & np.isin(rows, cases.changed)
    src_idx = pd.Index(values).get_indexer(source[changed_rows])
    source[changed_rows] = values[(src_idx + ctx.rng.integers(1, len(values), len(src_idx))) % len(values)]
    return source


def _version_scores(ctx: _Context, versions: _Versions, status: np.ndarray) -> np.ndarray:
    """Score per version, growing with the version, with some exactly 99 and 100.

    The CRM moves a lead to MQL at 100 points: a latest version in MQL has reached them, one in Raw or Inquiry not.
    """
    rng, rows, ver, last = ctx.rng, versions.rows, versions.ver, versions.last
    base_score = rng.normal(85, 35, versions.persons)
    score = np.clip(np.round(base_score[rows] + 8 * ver + rng.normal(0, 6, len(rows))), 0, 250).astype(np.int64)
    special = rng.random(len(rows))
    score[special < 0.015] = 100
    score[(special >= 0.015) & (special < 0.03)] = 99
    latest_mql = last & (status == "MQL")
    score[latest_mql] = np.maximum(score[latest_mql], 100)
    latest_pre_mql = last & np.isin(status, ("Raw", "Inquiry"))
    score[latest_pre_mql] = np.minimum(score[latest_pre_mql], 99)
    return score


def _crm_persons(
    ctx: _Context, names: _Names, people: _People, cases: _RuleCases, accounts: _Accounts, person_account: np.ndarray
) -> pd.DataFrame:
    """Each person exploded into its record versions, with status, initial source, score and merge pointer."""
    n_p, n_versions = len(people.person_id), cases.n_versions
    rows = np.repeat(np.arange(n_p), n_versions)
    ver = _group_positions(n_versions)
    versions = _Versions(n_p, rows, ver, ver == n_versions[rows] - 1)
    updated = _version_updated_at(ctx, people, versions)
    status = _version_statuses(ctx, cases, versions)
    source = _version_sources(ctx, cases, versions)
    score = _version_scores(ctx, versions, status)

    is_contact = person_account >= 0
    company_name = names.company[people.company]
    company_name[is_contact] = accounts.names[person_account[is_contact]]
    email = people.email[rows].copy()
    email[np.isin(rows, cases.null_email)] = None
    account = pd.array(
        np.where(is_contact[rows], accounts.account_id[np.maximum(person_account[rows], 0)], 0), dtype="Int64"
    )
    account[~is_contact[rows]] = pd.NA
    loser_last = versions.last & people.is_loser[rows]
    merged_into = pd.array(
        np.where(loser_last, people.person_id[np.maximum(people.merge_target[rows], 0)], 0), dtype="Int64"
    )
    merged_into[~loser_last] = pd.NA
    return pd.DataFrame(
        {
            "person_id": people.person_id[rows],
            "email": email,
            "first_name": names.first[people.first[rows]],
            "last_name": names.last[people.last[rows]],
            "company": company_name[rows],
            "record_type": np.where(is_contact[rows], "contact", "lead").astype(object),
            "status": status,
            "initial_source": source,
            "person_score": score,
            "account_id": account,
            "created_at": _ts(people.created[rows]),
            "updated_at": _ts(updated),
            "merged_into_person_id": merged_into,
        }
    )


def _person_violations(people: _People, cases: _RuleCases) -> dict[str, list[int]]:
    """Violation kind -> the person_ids seeded with it (CRM kinds)."""
    ids = people.person_id
    return {
        "initial_source_changed": ids[np.sort(cases.changed)].tolist(),
        "unknown_initial_source": ids[np.sort(cases.unknown_source)].tolist(),
        "initial_source_case_variant": ids[np.sort(cases.case_variant)].tolist(),
        "unknown_status": ids[np.sort(cases.unknown_status)].tolist(),
        "null_email": ids[np.sort(cases.null_email)].tolist(),
    }


def _marketo_unsubscribes(ctx: _Context, people: _People, cases: _RuleCases) -> pd.DataFrame:
    """~5% of the CRM e-mails unsubscribe, a few twice; ordered by unsubscribed_at."""
    rng, as_of_s = ctx.rng, ctx.as_of_s
    has_email = np.flatnonzero(~np.isin(np.arange(len(people.person_id)), cases.null_email))
    n_unsub = max(1, round(0.05 * len(has_email)))
    unsub_p = rng.choice(has_email, n_unsub, replace=False)
    unsub_at = people.created[unsub_p] + (rng.random(n_unsub) * (as_of_s - 1 - people.created[unsub_p])).astype(
        np.int64
    )
    twice = unsub_p[: max(2, round(0.02 * n_unsub))]
    twice_at = unsub_at[: len(twice)]
    twice_at = twice_at + (rng.random(len(twice)) * (as_of_s - 1 - twice_at)).astype(np.int64)
    unsub_email = np.concatenate([people.email[unsub_p], people.email[twice]])
    unsub_all = np.concatenate([unsub_at, twice_at])
    u_order = np.argsort(unsub_all, kind="stable")
    return pd.DataFrame(
        {
            "event_id": _uuid_strings(ctx.id_namespace, "unsubscribe", len(u_order)),
            "email": unsub_email[u_order],
            "unsubscribed_at": _ts(unsub_all[u_order]),
        }
    )


_EVENT_TEMPLATE = (
    '{{"event_id":"{}","occurred_at":"{}Z","email":"{}","user_id":{},"namespace_id":{},"company":{},'
    '"companyNamespace":{},"country":{},"employeeBucket":{},"firstName":{},"lastName":{},'
    '"latest_trial_start_date":{},"signupReason":{},"state":{},"userRole":{},"setup_for_company":{}}}'
)
"""One landing event line: compact JSON, fixed key order (the order the upstream export writes)."""


def _event_lines(
    ctx: _Context,
    names: _Names,
    users: _Users,
    namespaces: _Namespaces,
    kind: str,
    signups: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Raw JSON lines of ``signups`` (user and namespace positions, epoch seconds) sorted by occurred_at, and
    their times; emails are JSON-safe as built. A trial event carries its trial start date."""
    u_idx, ns_idx, at_s = signups
    order = np.lexsort((u_idx, at_s))
    u_idx, ns_idx, at_s = u_idx[order], ns_idx[order], at_s[order]
    ns_text = np.where(ns_idx >= 0, namespaces.namespace_id[np.maximum(ns_idx, 0)].astype(str), "null")
    trial_text = (
        np.char.add(np.char.add('"', np.datetime_as_string(namespaces.trial_day[ns_idx].astype("datetime64[D]"))), '"')
        if kind == "trial_signups"
        else np.full(len(u_idx), "null")
    )
    event_ids = (str(uuid.uuid5(ctx.id_namespace, f"{kind}:{i}")) for i in range(len(u_idx)))
    setup = np.array(["false", "true"], dtype=object)[users.setup[u_idx].astype(int)]
    columns = (
        event_ids,
        np.datetime_as_string(_ts(at_s).astype("datetime64[s]")),
        users.email[u_idx],
        users.user_id[u_idx],
        ns_text,
        _json_tokens(names.company)[users.company[u_idx]],
        setup,
        _json_tokens(users.country[u_idx]),
        _json_tokens(users.bucket[u_idx]),
        _json_tokens(names.first)[users.first[u_idx]],
        _json_tokens(names.last)[users.last[u_idx]],
        trial_text,
        _json_tokens(users.reason[u_idx]),
        _json_tokens(users.state[u_idx]),
        _json_tokens(users.role[u_idx]),
        setup,
    )
    return np.array([_EVENT_TEMPLATE.format(*row) for row in zip(*columns, strict=True)], dtype=object), at_s


def _event_files(
    ctx: _Context, kind: str, lines: np.ndarray, at: np.ndarray, fallback_email: str
) -> tuple[list[EventFile], dict[str, int]]:
    """Three files (up to 21 and 7 days ago, and today, at 06:00 UTC) plus one malformed line of each kind, kept
    verbatim and spread across the files; returns the files and the malformed counts."""
    as_of_s, as_of = ctx.as_of_s, ctx.as_of
    file_bounds = [as_of_s - 21 * DAY + 6 * 3600, as_of_s - 7 * DAY + 6 * 3600, as_of_s + 6 * 3600]
    files: list[EventFile] = []
    lo = np.iinfo(np.int64).min
    for bound in file_bounds:
        sel = (at >= lo) & (at < bound)
        stamp = dt.datetime.fromtimestamp(bound, dt.UTC).strftime("%Y-%m-%dT%H-%M-%S")
        files.append(EventFile(f"{kind}_{stamp}.jsonl", lines[sel].tolist()))
        lo = bound
    template = (
        json.loads(lines[0])
        if len(lines)
        else {"occurred_at": f"{as_of - dt.timedelta(days=1)}T10:00:00Z", "email": fallback_email, "user_id": 1}
    )
    bad_ids = _uuid_strings(ctx.id_namespace, f"{kind}-malformed", 4)
    missing_email = {**template, "event_id": bad_ids[1]}
    missing_email.pop("email", None)
    bad_date = {**template, "event_id": bad_ids[2], "occurred_at": f"{as_of.year}-02-30T25:61:00Z"}
    if kind == "trial_signups":
        bad_date["latest_trial_start_date"] = "31/02/2024"
    bad_bucket = {**template, "event_id": bad_ids[3], "employeeBucket": "9000+"}
    good = json.dumps({**template, "event_id": bad_ids[0]}, separators=(",", ":"))
    malformed = [
        (0, good[: max(10, len(good) // 2)]),
        (1, json.dumps(missing_email, separators=(",", ":"))),
        (2, json.dumps(bad_date, separators=(",", ":"))),
        (2, json.dumps(bad_bucket, separators=(",", ":"))),
    ]
    for file_no, line in malformed:
        target = files[file_no].lines
        target.insert(int(ctx.rng.integers(0, len(target) + 1)), line)
    counts = {"invalid_json": 1, "missing_email": 1, "bad_date": 1, "unknown_employee_bucket": 1}
    return files, counts


def _landing_events(
    ctx: _Context, names: _Names, users: _Users, namespaces: _Namespaces
) -> dict[str, tuple[list[EventFile], dict[str, int]]]:
    """Event kind -> landing files and malformed counts, for the users who signed up in the last 60 days.

    A trial signup is a recent user's trial namespace; every other recent user is a free registration (with the
    first namespace they created, if any).
    """
    ns = namespaces
    window_start = ctx.as_of_s - 60 * DAY
    trial_ns = np.flatnonzero(
        ns.is_trial & (users.created[ns.creator] >= window_start) & (ns.trial_day * DAY >= window_start)
    )
    trial_at = ns.trial_day[trial_ns] * DAY + ns.created[trial_ns] % DAY
    trial_users = ns.creator[trial_ns]
    reg_users = np.flatnonzero(users.created >= window_start)
    reg_users = reg_users[~np.isin(reg_users, trial_users)]
    first_ns = np.full(len(users.user_id), -1)
    creators, earliest = np.unique(ns.creator, return_index=True)  # namespaces are sorted by created_at
    first_ns[creators] = earliest
    signups = {
        "trial_signups": (trial_users, trial_ns, trial_at),
        "free_registrations": (reg_users, first_ns[reg_users], users.created[reg_users]),
    }
    return {
        kind: _event_files(ctx, kind, *_event_lines(ctx, names, users, ns, kind, chosen), users.email[0])
        for kind, chosen in signups.items()
    }


# ----------------------------------------------------------------------------------------------------
# main entry point


def generate(users: int = 3000, seed: int = 42, as_of: dt.date | None = None) -> SampleData:
    """Generate a deterministic sample data set for ``users`` GitLab users relative to ``as_of``.

    The builders run in a fixed order because they draw from one random generator: the same arguments give the
    same bytes.
    """
    if users < 1:
        raise ValueError("users must be >= 1")
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    ctx = _Context(
        rng=np.random.default_rng(seed),
        as_of=as_of,
        as_of_s=int((as_of - dt.date(1970, 1, 1)).days) * DAY,
        id_namespace=uuid.uuid5(uuid.NAMESPACE_URL, f"marketing_pipelines/sample_data/{seed}/{as_of}/{users}"),
    )
    names = _name_pools(seed)
    gitlab_users = _gitlab_users(ctx, names, users)
    namespaces = _gitlab_namespaces(ctx, names, gitlab_users)
    gitlab_members = _gitlab_members(ctx, gitlab_users, namespaces)
    people = _crm_people(ctx, names, gitlab_users)
    cases = _rule_cases(ctx, people)
    accounts = _cs_accounts(ctx, names, gitlab_users, namespaces)
    cs_contacts, person_account = _cs_contacts(ctx, gitlab_users, namespaces, people, cases, accounts)
    cs_violations = _seed_cs_violations(accounts.table, cs_contacts)
    crm_persons = _crm_persons(ctx, names, people, cases, accounts, person_account)
    marketo_unsubscribes = _marketo_unsubscribes(ctx, people, cases)
    violations = {**cs_violations, **_person_violations(people, cases)}
    del people, cases, person_account
    events = _landing_events(ctx, names, gitlab_users, namespaces)
    return SampleData(
        seed=seed,
        as_of=as_of,
        gitlab_users=gitlab_users.table,
        gitlab_namespaces=namespaces.table,
        gitlab_members=gitlab_members,
        crm_persons=crm_persons,
        marketo_unsubscribes=marketo_unsubscribes,
        cs_accounts=accounts.table,
        cs_contacts=cs_contacts,
        trial_signups=events["trial_signups"][0],
        free_registrations=events["free_registrations"][0],
        violations=violations,
        malformed_events={kind: counts for kind, (_, counts) in events.items()},
    )
