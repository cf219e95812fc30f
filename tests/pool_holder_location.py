"""A test-only code location: one job whose single step holds the `warehouse` pool while it sleeps.

The step writes its process id to a file first, so a test can `kill -9` the run worker while it holds the slot.
"""

import os
import time
from pathlib import Path

import dagster as dg

from marketing_pipelines.defs.constants import WAREHOUSE_POOL


@dg.op(
    pool=WAREHOUSE_POOL,
    config_schema={"pid_file": str, "hold_seconds": float},
    description="Write this process's id to `pid_file`, then hold the warehouse pool for `hold_seconds`.",
)
def hold_warehouse(context: dg.OpExecutionContext) -> None:
    Path(context.op_config["pid_file"]).write_text(str(os.getpid()))
    time.sleep(context.op_config["hold_seconds"])


@dg.job(executor_def=dg.in_process_executor, description="Holds the warehouse pool slot (run monitoring tests).")
def hold_warehouse_job() -> None:
    hold_warehouse()


defs = dg.Definitions(jobs=[hold_warehouse_job])
