"""The embedded DuckDB warehouse."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketing_pipelines.warehouse.base import Warehouse

if TYPE_CHECKING:  # imported where used: loading the definitions must not pay for duckdb and pandas
    import duckdb
    import pandas as pd

LOCK_WAIT_SECONDS = 300.0
DUCKDB_MAGIC = b"DUCK"
"""Bytes 8-11 of every DuckDB database file (after the header checksum)."""
REBUILD_HINT = "rebuild it with `make clean-data && make run` (the landing files are kept)"
CORRUPT_MARKERS = ("not a valid duckdb database", "corrupt database")
DEFAULT_DUCKDB_MEMORY_LIMIT = "384MB"
DEFAULT_DUCKDB_THREADS = 1


@dataclass(frozen=True)
class DuckDBLimits:
    """DuckDB's ``memory_limit`` (beyond it, large operators spill to a temporary folder beside the file) and
    ``threads`` for every connection; dbt's profile sets the same from ``DUCKDB_MEMORY_LIMIT``/``DUCKDB_THREADS``."""

    memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    threads: int = DEFAULT_DUCKDB_THREADS

    def apply(self, con: duckdb.DuckDBPyConnection) -> None:
        """Set the limits on the database ``con`` opened (set, not passed as connect config: another connection of
        this process to the same file, opened without that config, would be refused)."""
        con.execute(f"set memory_limit = '{self.memory_limit.replace(chr(39), '')}'")
        con.execute(f"set threads = {int(self.threads)}")


class WarehouseLockTimeout(RuntimeError):
    """Another process held the DuckDB file for longer than we were willing to wait."""


class WarehouseFileError(RuntimeError):
    """The DuckDB file exists but is not a readable database (damaged, truncated, or not DuckDB at all)."""


class DuckDBWarehouse(Warehouse):
    """A DuckDB file. DuckDB allows one writing process, so connecting waits for a lock held elsewhere."""

    kind = "duckdb"

    def __init__(
        self,
        path: str | Path,
        *,
        lock_wait_seconds: float = LOCK_WAIT_SECONDS,
        read_only: bool = False,
        limits: DuckDBLimits | None = None,
    ) -> None:
        self.path = Path(path)
        self.limits = limits or DuckDBLimits()
        self.lock_wait_seconds = lock_wait_seconds
        #: Open the file read-only (a reader that must never take the write lock; writes then fail).
        self.read_only = read_only

    def describe(self) -> str:
        return f"{self.path.resolve()} (DuckDB)"

    def check_file(self) -> None:
        """Raise :class:`WarehouseFileError` if the file exists but has no DuckDB header (reads 12 bytes, no lock)."""
        try:
            with open(self.path, "rb") as handle:
                header = handle.read(12)
        except FileNotFoundError:
            return
        if header[8:12] != DUCKDB_MAGIC:
            raise self._file_error("no DuckDB header")

    def _file_error(self, reason: str) -> WarehouseFileError:
        return WarehouseFileError(f"{self.path.resolve()} is not a readable DuckDB database ({reason}); {REBUILD_HINT}")

    @contextlib.contextmanager
    def connect(self, *, read_only: bool | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file (read-only: as the warehouse was made, unless told), waiting (with jittered backoff) while
        another process holds its lock."""
        import duckdb

        read_only = self.read_only if read_only is None else read_only
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.check_file()
        deadline = time.monotonic() + self.lock_wait_seconds
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.Error as error:
                if _is_corrupt(error):
                    raise self._file_error(str(error).splitlines()[0]) from error
                if not isinstance(error, duckdb.IOException):
                    raise
                if "lock" not in str(error).lower() or time.monotonic() > deadline:
                    if "lock" in str(error).lower():
                        raise WarehouseLockTimeout(
                            f"{self.path} stayed locked by another process for {self.lock_wait_seconds:.0f}s"
                        ) from error
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        try:
            self.limits.apply(con)
            yield con
        except duckdb.Error as error:  # a damaged block shows only when a query reads it
            if _is_corrupt(error):
                raise self._file_error(str(error).splitlines()[0]) from error
            raise
        finally:
            con.close()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connect() as con:
            return con.execute(sql, params).fetchall()

    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(sql, params).df()

    def iter_batches(self, sql: str, batch_size: int = 10_000) -> Iterator[pd.DataFrame]:
        with self.connect() as con:
            reader = con.sql(sql).to_arrow_reader(batch_size)
            for batch in reader:
                yield batch.to_pandas()

    def execute(self, statements: str | Iterable[str], frames: Mapping[str, pd.DataFrame] | None = None) -> None:
        if isinstance(statements, str):
            statements = [statements]
        with self.connect() as con:
            for name, frame in (frames or {}).items():
                con.register(name, frame)
            con.begin()
            for statement in statements:
                con.execute(statement)
            con.commit()

    def write_frame(self, schema: str, table: str, frame: pd.DataFrame, *, replace: bool = False) -> int:
        with self.connect() as con:
            con.execute(f"create schema if not exists {schema}")
            con.register("_incoming_frame", frame)
            if replace:
                con.execute(f"create or replace table {schema}.{table} as select * from _incoming_frame")
            else:
                con.execute(f"create table if not exists {schema}.{table} as select * from _incoming_frame limit 0")
                con.execute(f"insert into {schema}.{table} by name select * from _incoming_frame")
            con.unregister("_incoming_frame")
        return len(frame)

    def table_exists(self, schema: str, table: str) -> bool:
        if not self.path.exists():
            return False
        rows = self.query(
            "select 1 from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        )
        return bool(rows)


def _is_corrupt(error: Exception) -> bool:
    return any(marker in str(error).lower() for marker in CORRUPT_MARKERS)
