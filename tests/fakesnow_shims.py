"""Three fixes to the fakesnow 0.12.1 emulator (not to our code), applied in the process that runs its server.

Each works around an emulator gap, not a Snowflake behaviour:
1. ``write_pandas`` (connector 4.x) loads with ``COPY INTO t FROM (SELECT $1:c FROM '@stage')``; fakesnow only
   reads an unquoted ``@stage`` there and rejects the quoted literal with "invalid URL prefix".
2. NULL ``TIMESTAMP_NTZ`` values come back to the client as 1970-01-01 (the Arrow struct loses its null mask);
   they are stored as NULL, and ``is null`` sees them.
3. DuckDB keeps temporary objects in its own catalog, so ``create temporary view db.schema.x`` (dbt-snowflake's
   incremental models stage their new rows so) fails: such objects are created permanent instead.
4. An emulator crash answers HTTP 500, which the connector retries for minutes: answer a failed query instead,
   so a test fails at once with the emulator's message.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import fakesnow

# `fakesnow.server` is the function that starts a server until the `fakesnow.server` module is imported (the
# import rebinds the package attribute), which patching it does: keep the function.
_start_server = fakesnow.server
_applied = False
# Every server of a process shares one in-memory DuckDB: each server gets its own database, so a test module
# never sees the raw tables another module's server filled.
_databases = itertools.count(1)


@contextlib.contextmanager
def server() -> Iterator[dict[str, Any]]:
    """A patched fakesnow server on loopback; yields its connection keyword arguments and its own `database`."""
    apply()
    with _start_server() as connection:
        yield {**connection, "database": f"MARKETING_{next(_databases)}"}


def snowflake_env(connection: dict[str, Any]) -> dict[str, str]:
    """The `SNOWFLAKE_*` settings (and `MARKETING_WAREHOUSE`) that point the project at a server from `server()`."""
    return {
        "MARKETING_WAREHOUSE": "snowflake",
        "SNOWFLAKE_ACCOUNT": connection["account"],
        "SNOWFLAKE_USER": connection["user"],
        "SNOWFLAKE_PASSWORD": connection["password"],
        "SNOWFLAKE_DATABASE": connection["database"],
        "SNOWFLAKE_SCHEMA": "PUBLIC",
        "SNOWFLAKE_WAREHOUSE": "TRANSFORMING",
        "SNOWFLAKE_ROLE": "TRANSFORMER",
        "SNOWFLAKE_HOST": connection["host"],
        "SNOWFLAKE_PORT": str(connection["port"]),
        "SNOWFLAKE_PROTOCOL": connection["protocol"],
    }


def apply() -> None:
    """Patch the emulator once (idempotent)."""
    global _applied
    if _applied:
        return
    _accept_quoted_stage_in_copy_subquery()
    _keep_null_timestamps()
    _create_qualified_temporary_objects_permanent()
    _fail_queries_instead_of_http_500()
    _applied = True


def _accept_quoted_stage_in_copy_subquery() -> None:
    import fakesnow.copy_into as copy_into
    from sqlglot import exp

    original = copy_into._from_source

    def from_source(expr: exp.Copy) -> str:
        source = expr.args["files"][0].this
        if isinstance(source, exp.Select) and (from_ := source.args.get("from_")) is not None:
            table = from_.this
            if isinstance(table, exp.Table) and isinstance(table.this, exp.Literal) and table.name.startswith("@"):
                return table.name
        return original(expr)

    copy_into._from_source = from_source


def _keep_null_timestamps() -> None:
    import fakesnow.arrow as fake_arrow
    import pyarrow as pa
    import pyarrow.compute as pc

    original = fake_arrow.timestamp_to_sf_struct

    def timestamp_to_sf_struct(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        struct = original(ts)
        children = [struct.field(i) for i in range(struct.type.num_fields)]
        return pa.StructArray.from_arrays(children, fields=list(struct.type), mask=pc.is_null(ts))

    fake_arrow.timestamp_to_sf_struct = timestamp_to_sf_struct


def _create_qualified_temporary_objects_permanent() -> None:
    from fakesnow.cursor import FakeSnowflakeCursor
    from sqlglot import exp

    original = FakeSnowflakeCursor._transform

    def transform(self: FakeSnowflakeCursor, expression: exp.Expr, params: Any) -> exp.Expr:
        if isinstance(expression, exp.Create) and (table := expression.find(exp.Table)) is not None and table.db:
            for temporary in list(expression.find_all(exp.TemporaryProperty)):
                temporary.pop()
        return original(self, expression, params)

    FakeSnowflakeCursor._transform = transform


def _fail_queries_instead_of_http_500() -> None:
    import fakesnow.server as server

    class QueryFailed(server.ServerError):
        def __init__(self, status_code: int, code: str, message: str, **kwargs: Any) -> None:
            super().__init__(status_code=200 if status_code == 500 else status_code, code=code, message=message)

    server.ServerError = QueryFailed
