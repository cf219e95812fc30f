"""Which dbt tests a dbt step runs: exactly the checks the run selected.

dagster-dbt also runs the tests of the raw sources upstream of the selected models and reports them as check
results, even when the run did not select those checks (a launch from the UI selects the checks of the assets it
materializes, and the raw sources are observed, not materialized). Dagster then plans fewer checks than it
evaluates and logs "... was yielded which is not selected" for each. Excluding the unselected tests from the dbt
command makes the checks a run evaluates the ones it planned: a source's tests run when its checks are selected.
"""

from __future__ import annotations

import dagster as dg


def unselected_test_args(context: dg.AssetExecutionContext) -> list[str]:
    """`--exclude` arguments naming the step's dbt tests whose checks the run did not select (none if all are)."""
    selected = context.selected_asset_check_keys
    names = sorted(
        spec.key.name
        for spec in context.assets_def.node_check_specs_by_output_name.values()
        if spec.key not in selected
    )
    return ["--exclude", " ".join(names)] if names else []
