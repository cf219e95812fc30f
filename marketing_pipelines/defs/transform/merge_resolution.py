"""CRM merge chains resolved in Python from the raw records, apart from the dbt models the checks guard.

The blocking merge checks reach their verdict by this second path: the latest version of each raw record is
streamed in batches into id and merge-target arrays and every chain is followed here, so a fault in
`int_crm_persons_merged` (or in the contacts mart built on it) cannot hide itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from marketing_pipelines.warehouse import Warehouse

if TYPE_CHECKING:  # imported where used: loading the definitions (every run start) skips numpy and pandas
    import numpy as np

BATCH_SIZE = 50_000

LATEST_MERGE_TARGETS_SQL = """
select cast(person_id as bigint) as person_id, cast(merged_into_person_id as bigint) as merged_into_person_id
from raw.crm_persons
where person_id is not null
qualify row_number() over (partition by person_id order by updated_at desc) = 1
"""
HISTORY_SQL = "select person_id, initial_source, first_seen_at from marts.initial_source_history"


@dataclass(frozen=True)
class MergedSets:
    """Every raw CRM record's survivor, and how many records each survivor's merged set holds: arrays, not Python
    dicts (3M records in dicts took over 1 GB; these take 16 bytes a record).

    ids: every record id, ascending; survivors: the survivor of ``ids[i]``; set_ids / set_sizes: the survivors,
    ascending, and the size of each one's merged set."""

    ids: np.ndarray
    survivors: np.ndarray
    set_ids: np.ndarray
    set_sizes: np.ndarray

    def survivor_of(self, person_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(survivor of each id, whether the id is a CRM record at all); the survivor is 0 where it is not."""
        import numpy as np

        position, found = _lookup(self.ids, person_ids)
        return np.where(found, self.survivors[position], 0), found

    def size_of(self, survivors: np.ndarray) -> np.ndarray:
        """The merged-set size of each of `survivors` (0 for an id that survives no set)."""
        import numpy as np

        position, found = _lookup(self.set_ids, survivors)
        return np.where(found, self.set_sizes[position], 0)

    def members(self, survivor: int) -> list[int]:
        """The records of one merged set (a scan: only for the few sets a check names)."""
        return sorted(int(record) for record in self.ids[self.survivors == survivor])


def resolve(ids: np.ndarray, targets: np.ndarray, has_target: np.ndarray) -> np.ndarray:
    """Each record's survivor: follow `merged_into` to a record merged nowhere, into itself or into a missing id.

    ``ids`` ascending and unique, ``targets[i]`` the merge target of ``ids[i]`` where ``has_target[i]``. A chain
    that returns to a record it passed is a cycle: its records, and every record whose chain runs into it,
    survive as the cycle's lowest id. Chains are followed by pointer doubling (log2 of the longest chain passes
    over the arrays); only the records on or into a cycle are walked one by one.
    """
    import numpy as np

    count = len(ids)
    here = np.arange(count)
    position, found = _lookup(ids, targets)
    step = np.where(has_target & found, position, here)  # a record merged nowhere, into itself or a missing id
    terminal = step == here
    root = step.copy()
    for _ in range(max(1, math.ceil(math.log2(max(count, 2)))) + 1):
        jumped = root[root]
        if np.array_equal(jumped, root):
            break
        root = jumped
    survivors = ids[root]
    for start in np.flatnonzero(~terminal[root]):  # root is no end: the chain runs into a cycle
        survivors[start] = _cycle_survivor(ids, step, int(start))
    return survivors


def _cycle_survivor(ids: np.ndarray, step: np.ndarray, start: int) -> int:
    """The lowest id of the cycle the chain from `start` runs into."""
    seen: dict[int, int] = {}
    path: list[int] = []
    record = start
    while record not in seen:
        seen[record] = len(path)
        path.append(record)
        record = int(step[record])
    return int(ids[path[seen[record] :]].min())


def merged_sets(warehouse: Warehouse) -> MergedSets:
    """Resolve the merged sets of `raw.crm_persons` (latest version of each person id), streamed in batches."""
    import numpy as np

    id_parts, target_parts, has_parts = [], [], []
    for frame in warehouse.iter_batches(LATEST_MERGE_TARGETS_SQL, batch_size=BATCH_SIZE):
        merged_into = frame["merged_into_person_id"]
        id_parts.append(frame["person_id"].to_numpy(dtype=np.int64))
        has_parts.append(merged_into.notna().to_numpy())
        target_parts.append(merged_into.fillna(0).to_numpy(dtype=np.int64))
    ids = np.concatenate(id_parts) if id_parts else np.empty(0, np.int64)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    targets = np.concatenate(target_parts)[order] if target_parts else np.empty(0, np.int64)
    has_target = np.concatenate(has_parts)[order] if has_parts else np.empty(0, bool)
    survivors = resolve(ids, targets, has_target)
    set_ids, set_sizes = np.unique(survivors, return_counts=True)
    return MergedSets(ids, survivors, set_ids, set_sizes)


@dataclass(frozen=True)
class OldestSources:
    """Per survivor (ascending), the Initial Source recorded first in its merged set and the record carrying it."""

    survivors: np.ndarray
    sources: list[str | None]
    """The distinct sources (None: recorded without one); `codes` index it."""
    codes: np.ndarray
    carriers: np.ndarray

    def of(self, survivors: np.ndarray) -> tuple[list[str | None], list[int | None]]:
        """(oldest source, its record) of each of `survivors`; None for a set with no history."""
        position, found = _lookup(self.survivors, survivors)
        return (
            [self.sources[self.codes[p]] if ok else None for p, ok in zip(position, found, strict=True)],
            [int(self.carriers[p]) if ok else None for p, ok in zip(position, found, strict=True)],
        )


def oldest_initial_sources(warehouse: Warehouse, sets: MergedSets) -> OldestSources:
    """Per survivor, the Initial Source recorded first in its merged set (from `marts.initial_source_history`,
    oldest `first_seen_at`, then lowest person id) with the record that carried it."""
    import numpy as np
    import pandas as pd

    sources: dict[str | None, int] = {}
    survivor_parts, seen_parts, carrier_parts, code_parts = [], [], [], []
    for frame in warehouse.iter_batches(HISTORY_SQL, batch_size=BATCH_SIZE):
        person_ids = frame["person_id"].to_numpy(dtype=np.int64)
        survivors, found = sets.survivor_of(person_ids)
        survivor_parts.append(survivors[found])
        carrier_parts.append(person_ids[found])
        seen_parts.append(pd.to_datetime(frame["first_seen_at"]).to_numpy(dtype="datetime64[ns]")[found])
        codes = [
            sources.setdefault(None if pd.isna(source) else str(source), len(sources))
            for source in frame["initial_source"][found]
        ]
        code_parts.append(np.array(codes, dtype=np.int32))
    if not survivor_parts:
        empty = np.empty(0, np.int64)
        return OldestSources(empty, [], np.empty(0, np.int32), empty)
    survivors = np.concatenate(survivor_parts)
    carriers = np.concatenate(carrier_parts)
    seen = np.concatenate(seen_parts)
    codes = np.concatenate(code_parts)
    order = np.lexsort((carriers, seen, survivors))  # by survivor, then oldest first, then lowest record
    survivors, carriers, codes = survivors[order], carriers[order], codes[order]
    first = np.ones(len(survivors), dtype=bool)
    first[1:] = survivors[1:] != survivors[:-1]
    return OldestSources(survivors[first], list(sources), codes[first], carriers[first])


def _lookup(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of each of `values` in the ascending `keys`, clipped to a valid index; whether it is there)."""
    import numpy as np

    if len(keys) == 0:
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
    position = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    return position, keys[position] == values
