"""CRM merge chains resolved in Python from the raw records, apart from the dbt models the checks guard.

The blocking merge checks reach their verdict by this second path: the latest version of each raw record is
streamed in batches into an id -> merge target dict and every chain is walked here, so a fault in
`int_crm_persons_merged` (or in the contacts mart built on it) cannot hide itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketing_pipelines.warehouse import Warehouse

BATCH_SIZE = 50_000

LATEST_MERGE_TARGETS_SQL = """
select cast(person_id as bigint) as person_id, cast(merged_into_person_id as bigint) as merged_into_person_id
from raw.crm_persons
where person_id is not null
qualify row_number() over (partition by person_id order by updated_at desc) = 1
"""


@dataclass(frozen=True)
class MergedSets:
    """Every raw CRM record's survivor, and how many records each survivor's merged set holds."""

    survivor_of: dict[int, int]
    sizes: Counter[int]

    def members(self, survivor: int) -> list[int]:
        """The records of one merged set (a scan: only for the few sets a check names)."""
        return sorted(person for person, kept in self.survivor_of.items() if kept == survivor)


def rows(warehouse: Warehouse, sql: str) -> Iterator[tuple[Any, ...]]:
    """The rows of a query, fetched in batches of `BATCH_SIZE`."""
    for frame in warehouse.iter_batches(sql, batch_size=BATCH_SIZE):
        yield from frame.itertuples(index=False, name=None)


def resolve_survivors(merge_targets: dict[int, int | None]) -> dict[int, int]:
    """Each record's survivor: follow `merged_into` to a record merged nowhere, into itself or into a missing id.

    A chain that returns to a record it passed is a cycle: its records, and every record whose chain runs into
    it, survive as the cycle's lowest id. Each record is walked once (later walks stop at a resolved record).
    """
    survivor_of: dict[int, int] = {}
    for start in merge_targets:
        if start in survivor_of:
            continue
        path: list[int] = []
        position: dict[int, int] = {}
        record = start
        while True:
            if record in survivor_of:
                survivor = survivor_of[record]
                break
            position[record] = len(path)
            path.append(record)
            target = merge_targets[record]
            if target is None or target == record or target not in merge_targets:
                survivor = record
                break
            if target in position:
                survivor = min(path[position[target] :])
                break
            record = target
        for walked in path:
            survivor_of[walked] = survivor
    return survivor_of


def merged_sets(warehouse: Warehouse) -> MergedSets:
    """Resolve the merged sets of `raw.crm_persons` (latest version of each person id)."""
    import pandas as pd  # here, not at import: loading the definitions (every run start) skips pandas

    targets: dict[int, int | None] = {}
    for person_id, merged_into in rows(warehouse, LATEST_MERGE_TARGETS_SQL):
        targets[int(person_id)] = None if pd.isna(merged_into) else int(merged_into)
    survivor_of = resolve_survivors(targets)
    return MergedSets(survivor_of, Counter(survivor_of.values()))


def oldest_initial_sources(warehouse: Warehouse, sets: MergedSets) -> dict[int, tuple[str, int]]:
    """Per survivor, the Initial Source recorded first in its merged set (from `marts.initial_source_history`,
    oldest `first_seen_at`, then lowest person id) with the record that carried it."""
    oldest: dict[int, tuple[datetime, int, str]] = {}
    history = "select person_id, initial_source, first_seen_at from marts.initial_source_history"
    for person_id, source, first_seen_at in rows(warehouse, history):
        survivor = sets.survivor_of.get(int(person_id))
        if survivor is None:
            continue
        candidate = (first_seen_at, int(person_id), source)
        if survivor not in oldest or candidate[:2] < oldest[survivor][:2]:
            oldest[survivor] = candidate
    return {survivor: (source, person_id) for survivor, (_, person_id, source) in oldest.items()}
