"""The warehouse interface every engine implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where it is used: loading the definitions must stay fast
    import pandas as pd


class Warehouse(abc.ABC):
    """Read and write access to the warehouse behind the dbt project.

    Implementations open connections lazily: constructing one never touches the network or a file. Result
    columns are lower-case and unquoted names resolve the same way on every engine. ``close()`` (or ``with``)
    releases a session an implementation keeps open.
    """

    kind: str

    def describe(self) -> str:
        """Where the data lives, for people (a file path, an account and database)."""
        return self.kind

    def close(self) -> None:
        """Release any open session (a no-op for engines that connect per call)."""
        return None

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return all rows as tuples (for small results)."""

    @abc.abstractmethod
    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a query and return the result as a DataFrame (for small results and previews)."""

    @abc.abstractmethod
    def iter_batches(self, sql: str, batch_size: int = 10_000) -> Iterator[pd.DataFrame]:
        """Stream a query's result in DataFrames of at most ``batch_size`` rows."""

    @abc.abstractmethod
    def execute(self, statements: str | Iterable[str], frames: Mapping[str, pd.DataFrame] | None = None) -> None:
        """Run one or more statements in one transaction; ``frames`` are readable in them by name."""

    @abc.abstractmethod
    def write_frame(self, schema: str, table: str, frame: pd.DataFrame, *, replace: bool = False) -> int:
        """Bulk-write a DataFrame to ``schema.table`` (created if missing); returns rows written."""

    @abc.abstractmethod
    def table_exists(self, schema: str, table: str) -> bool:
        """Whether ``schema.table`` exists."""

    def row_counts(self, relations: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Row counts of existing relations, in one round trip."""
        existing = [(s, t) for s, t in relations if self.table_exists(s, t)]
        if not existing:
            return {}
        sql = " union all ".join(
            f"select '{s}' as schema_name, '{t}' as table_name, count(*) as n from {s}.{t}" for s, t in existing
        )
        return {(s, t): int(n) for s, t, n in self.query(sql)}


def frame_columns_sql(frame: pd.DataFrame) -> str:
    """Column definitions (``name type, ...``) for a table that holds ``frame``, from its Arrow types."""
    import pyarrow as pa

    def sql_type(arrow_type: pa.DataType) -> str:
        if pa.types.is_boolean(arrow_type):
            return "boolean"
        if pa.types.is_integer(arrow_type):
            return "bigint"
        if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
            return "double"
        if pa.types.is_timestamp(arrow_type):
            return "timestamp"
        if pa.types.is_date(arrow_type):
            return "date"
        return "varchar"

    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    return ", ".join(f"{field.name} {sql_type(field.type)}" for field in schema)
