"""What a dbt step pays before dbt starts: no `dbt --version` subprocess, no in-process adapter, and dbt's
partial-parse state kept per warehouse between steps."""

import functools
import importlib.metadata
from pathlib import Path

import pytest
from dagster_dbt import DbtCliResource
from dagster_dbt.core import resource as dagster_dbt_resource
from packaging.version import Version

from marketing_pipelines.defs.transform.parse_state import KEPT_STATES, PARTIAL_PARSE_FILE, keep_state, state_file
from marketing_pipelines.resources import WarehouseResource, build_resources
from marketing_pipelines.resources.dbt import ProjectDbtCliResource, dbt_executable, dbt_project


def test_the_hooks_the_resource_replaces_still_exist_in_dagster_dbt():
    # an upgrade that renames them would silently bring back both start-up costs
    assert isinstance(DbtCliResource.__dict__["_cli_version"], functools.cached_property)
    assert callable(DbtCliResource.__dict__["_initialize_dbt_core_adapter"])


def test_the_code_location_binds_the_resource_without_the_start_up_costs():
    assert type(build_resources({})["dbt"]) is ProjectDbtCliResource


def test_the_version_is_the_installed_dbt_core_without_a_subprocess(monkeypatch: pytest.MonkeyPatch):
    resource = ProjectDbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable())

    def no_subprocess(*args: object, **kwargs: object) -> bytes:
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(dagster_dbt_resource, "check_output", no_subprocess)  # how dagster-dbt asks the version
    assert resource._cli_version == Version(importlib.metadata.version("dbt-core"))
    assert resource._cli_version.major < 2  # dbt-core's event format, not the fusion engine's
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def test_another_dbt_executable_is_still_asked_its_version(tmp_path: Path):
    script = tmp_path / "dbt"
    script.write_text("#!/bin/sh\necho 'Core:\n  - installed: 9.8.7'\n")
    script.chmod(0o755)
    resource = ProjectDbtCliResource(project_dir=dbt_project(), dbt_executable=str(script))
    assert resource._cli_version == Version("9.8.7")


def test_parse_state_is_kept_per_warehouse_and_replaced_whole(tmp_path: Path):
    first = WarehouseResource(duckdb_path=str(tmp_path / "a.duckdb")).dbt_environment()
    second = WarehouseResource(duckdb_path=str(tmp_path / "b.duckdb")).dbt_environment()
    secret = {**first, "SNOWFLAKE_PASSWORD": "changed"}
    assert state_file(first) != state_file(second)
    assert state_file(first) == state_file(secret)  # a password never names a file
    target = tmp_path / "invocation"
    target.mkdir()
    keep_state(target, first)  # nothing written yet: nothing kept
    assert not state_file(first).exists()
    try:
        (target / PARTIAL_PARSE_FILE).write_bytes(b"state one")
        keep_state(target, first)
        (target / PARTIAL_PARSE_FILE).write_bytes(b"state two")
        keep_state(target, first)
        assert state_file(first).read_bytes() == b"state two"
        assert [p.name for p in state_file(first).parent.glob(f"{state_file(first).name}*")] == [state_file(first).name]
        assert not state_file(second).exists()
    finally:
        state_file(first).unlink(missing_ok=True)


def test_only_the_newest_parse_states_are_kept(tmp_path: Path):
    target = tmp_path / "invocation"
    target.mkdir()
    (target / PARTIAL_PARSE_FILE).write_bytes(b"state")
    settings = [WarehouseResource(duckdb_path=str(tmp_path / f"w{i}.duckdb")).dbt_environment() for i in range(12)]
    try:
        for each in settings:
            keep_state(target, each)
        kept = [state_file(each).exists() for each in settings]
        assert kept[-KEPT_STATES:] == [True] * KEPT_STATES
        assert not any(kept[: len(settings) - KEPT_STATES])
    finally:
        for each in settings:
            state_file(each).unlink(missing_ok=True)
