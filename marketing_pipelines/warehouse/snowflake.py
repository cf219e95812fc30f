"""Snowflake, the production warehouse, through one session opened lazily and kept until ``close()``.

Bulk writes go through ``snowflake.connector.pandas_tools.write_pandas`` (Parquet files staged and loaded with
``COPY INTO``), never row inserts; reads stream Arrow result chunks. Unquoted identifiers resolve upper-case in
Snowflake, so result columns are lower-cased and ``information_schema`` lookups are upper-cased: callers see the
same lower-case names as on DuckDB.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from marketing_pipelines.warehouse.base import Warehouse, frame_columns_sql

if TYPE_CHECKING:  # imported where used: loading the definitions must not pay for the connector and pandas
    import pandas as pd
    from snowflake.connector import SnowflakeConnection

ConnectionFactory = Callable[[], contextlib.AbstractContextManager["SnowflakeConnection"]]


class SnowflakeWarehouse(Warehouse):
    """A Snowflake database. ``connect`` opens a session (e.g. dagster-snowflake's ``SnowflakeResource.get_connection``)
    with the database and schema set and ``paramstyle='qmark'``; the session is reused until ``close()``."""

    kind = "snowflake"

    def __init__(self, connect: ConnectionFactory, *, description: str = "Snowflake") -> None:
        self._connect = connect
        self._description = description
        self._session: contextlib.ExitStack | None = None
        self._connection: SnowflakeConnection | None = None

    def describe(self) -> str:
        return self._description

    def connection(self) -> SnowflakeConnection:
        """The open session, logging in on first use."""
        if self._connection is None:
            session = contextlib.ExitStack()
            self._connection = session.enter_context(self._connect())
            self._session = session
        return self._connection

    def close(self) -> None:
        session, self._session, self._connection = self._session, None, None
        if session is not None:
            session.close()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.connection().cursor()) as cursor:
            cursor.execute(sql, params)
            return [tuple(row) for row in cursor.fetchall()]

    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with contextlib.closing(self.connection().cursor()) as cursor:
            cursor.execute(sql, params)
            return _lower_columns(cursor.fetch_pandas_all())

    def iter_batches(self, sql: str, batch_size: int = 10_000) -> Iterator[pd.DataFrame]:
        with contextlib.closing(self.connection().cursor()) as cursor:
            cursor.execute(sql)
            for chunk in cursor.fetch_pandas_batches():  # one frame per result chunk, of the server's size
                for start in range(0, len(chunk), batch_size):
                    yield _lower_columns(chunk.iloc[start : start + batch_size].reset_index(drop=True))

    def execute(self, statements: str | Iterable[str], frames: Mapping[str, pd.DataFrame] | None = None) -> None:
        """Frames become session temporary tables (bulk-loaded) named like the frame; then the statements run,
        the DML among them in one transaction. Snowflake commits an open transaction before any DDL statement,
        so DDL runs between transactions, never inside one."""
        if isinstance(statements, str):
            statements = [statements]
        with contextlib.closing(self.connection().cursor()) as cursor:
            for name, frame in (frames or {}).items():
                cursor.execute(f"create or replace temporary table {name} ({frame_columns_sql(frame)})")
                self._load(frame, name)
            in_transaction = False
            try:
                for statement in statements:
                    is_ddl = _is_ddl(statement)
                    if in_transaction and is_ddl:
                        cursor.execute("commit")
                    elif not in_transaction and not is_ddl:
                        cursor.execute("begin")
                    in_transaction = not is_ddl
                    cursor.execute(statement)
            except BaseException:
                if in_transaction:
                    cursor.execute("rollback")
                raise
            if in_transaction:
                cursor.execute("commit")
            for name in frames or {}:
                cursor.execute(f"drop table if exists {name}")

    def write_frame(self, schema: str, table: str, frame: pd.DataFrame, *, replace: bool = False) -> int:
        verb = "create or replace table" if replace else "create table if not exists"
        with contextlib.closing(self.connection().cursor()) as cursor:
            cursor.execute(f"create schema if not exists {schema}")
            cursor.execute(f"{verb} {schema}.{table} ({frame_columns_sql(frame)})")
        return self._load(frame, f"{schema}.{table}")

    def table_exists(self, schema: str, table: str) -> bool:
        """Tables and views (``information_schema.views`` too: some Snowflake emulators leave views out of
        ``tables``, where Snowflake lists them)."""
        rows = self.query(
            "select 1 from information_schema.tables where table_schema = ? and table_name = ? "
            "union all select 1 from information_schema.views where table_schema = ? and table_name = ?",
            [schema.upper(), table.upper()] * 2,
        )
        return bool(rows)

    def _load(self, frame: pd.DataFrame, table: str) -> int:
        """Bulk-load a frame into an existing table, matching columns by name; returns rows loaded.

        ``table`` may be schema-qualified: with unquoted identifiers write_pandas passes it to ``identifier()``
        as is, and stages the Parquet files in the session's current schema.
        """
        from snowflake.connector.pandas_tools import write_pandas

        if frame.empty:
            return 0
        success, _, rows, _ = write_pandas(
            self.connection(),
            frame,
            table,
            quote_identifiers=False,
            use_logical_type=True,  # naive datetimes load as TIMESTAMP_NTZ, not as integers
            auto_create_table=False,
        )
        if not success or rows != len(frame):
            raise RuntimeError(f"bulk load into {table} loaded {rows} of {len(frame)} rows")
        return int(rows)


DDL_KEYWORDS = ("create", "drop", "alter", "truncate", "comment", "grant", "revoke", "use")


def _is_ddl(statement: str) -> bool:
    words = statement.split(None, 1)
    return bool(words) and words[0].lower() in DDL_KEYWORDS


def _lower_columns(frame: pd.DataFrame) -> pd.DataFrame:
    frame.columns = [str(column).lower() for column in frame.columns]
    return frame
