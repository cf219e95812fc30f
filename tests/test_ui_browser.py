"""The Dagster UI in a real browser: `dg dev` (webserver and daemon, as `make dev` starts them) on a loopback port,
driven by Playwright on the system Chromium.

The daily job runs first on a copy of the sample warehouse, into the UI's own Dagster instance, so the pages show
materializations and check results. The test then reads the rendered pages: the asset graph's groups, the
`marts/marketing_contacts` page (row count, typed columns, passing checks), a failing rule check's sample table,
and a run launched by clicking "Materialize". Screenshots go to `test-artifacts/ui/` (git-ignored).

Browsers cannot be downloaded here: Playwright drives Debian's `chromium` (or the one in ``CHROMIUM_PATH``). Without
it the test skips, saying how to install it; under ``CI=true`` it fails instead (`.ci/run` installs it).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from marketing_pipelines import run_daily
from marketing_pipelines.paths import PROJECT_ROOT
from marketing_pipelines.sample_data.generator import VIOLATIONS_PER_KIND
from tests.support.warehouses import copy_warehouse

pytestmark = pytest.mark.slow

SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "ui"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How long a page may take to show what is asserted (the machine may be busy), and a launched run to succeed.
PAGE_MS, RUN_MS = 60_000, 180_000
SERVER_START_S = 180
VIEWPORT = {"width": 1600, "height": 1000}
CONTACTS = dg.AssetKey(["marts", "marketing_contacts"])
FAILING_CHECK = dg.AssetCheckKey(dg.AssetKey(["staging", "stg_crm__persons"]), "crm_initial_source_unknown")
#: A cheap asset to materialize from the UI: a reference seed.
SEED = dg.AssetKey(["marts", "dim_lead_status"])


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system Chromium (``CHROMIUM_PATH`` or `chromium` on the PATH); skips without it, fails under CI.
    Session-scoped so that it is looked for before the sample warehouse is built."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if path:
        return path
    message = (
        "no Chromium for the browser test: install Debian's (`sudo apt-get install chromium`) or set CHROMIUM_PATH"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class UI:
    """The running UI, a browser page on it, and what the definitions and the warehouse say it must show."""

    base_url: str
    page: Page
    home: Path
    groups: list[str]
    contacts_checks: list[str]
    contacts_rows: int
    contacts_columns: list[tuple[str, str]]
    failing_check_description: str
    initial_sources: set[str]

    def open(self, path: str) -> Page:
        self.page.goto(self.base_url + path)
        return self.page

    def screenshot(self, name: str, height: int = VIEWPORT["height"]) -> None:
        """The page, in a window ``height`` pixels tall (the UI scrolls inside its panes, so a full-page shot
        shows no more than the window)."""
        self.page.set_viewport_size({**VIEWPORT, "height": height})
        self.page.wait_for_timeout(500)  # re-layout
        expect(self.page.get_by_role("heading", name="Join the Dagster community")).to_have_count(0)
        self.page.screenshot(path=SCREENSHOTS / name)
        self.page.set_viewport_size(VIEWPORT)


def start_ui(root: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`dg dev` in its own process group, on the instance in ``root/home`` and the warehouse ``root/warehouse``."""
    venv = Path(sys.executable).parent
    env = {
        **os.environ,
        "DAGSTER_HOME": str(root / "home"),
        "DUCKDB_PATH": str(root / "warehouse.duckdb"),
        "LANDING_DIR": str(root / "landing"),
        "VIRTUAL_ENV": str(venv.parent),
    }
    command = [str(venv / "dg"), "dev", "--no-check-yaml", "-h", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_until_serving(server: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dg dev exited with {server.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{base_url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"the UI did not answer within {SERVER_START_S} s:\n{log.read_text(errors='replace')[-3000:]}")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Ends the whole process group (webserver, daemon, code servers): politely, then for sure (a `dg dev` that
    was interrupted can hang on its way out)."""
    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


@pytest.fixture(scope="module")
def ui(chromium: str, sample_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    root = tmp_path_factory.mktemp("ui")
    (root / "home").mkdir()
    (root / "landing").mkdir()  # empty: the signup sensor launches nothing while the test runs
    shutil.copyfile(PROJECT_ROOT / "instance" / "dagster.yaml", root / "home" / "dagster.yaml")
    warehouse = copy_warehouse(sample_warehouse, root / "warehouse.duckdb")
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    port, log = free_port(), root / "dg-dev.log"
    server = start_ui(root, port, log)  # it starts while the daily job runs
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DAGSTER_HOME", str(root / "home"))
            patch.setenv("DUCKDB_PATH", str(warehouse.path))
            patch.setenv("LANDING_DIR", str(root / "landing"))
            with dg.DagsterInstance.from_config(str(root / "home")) as instance:
                result = run_daily.execute(instance, root / "run.log", console=io.StringIO())
            assert result.success
            graph = run_daily.daily_job_definitions().resolve_asset_graph()
        base_url = f"http://127.0.0.1:{port}"
        wait_until_serving(server, base_url, log)
        ((rows,),) = warehouse.query(f"select count(*) from {'.'.join(CONTACTS.path)}")
        columns = warehouse.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'marketing_contacts' order by ordinal_position"
        )
        sources = {value for (value,) in warehouse.query("select initial_source from marts.dim_initial_source")}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(PAGE_MS)
            # On loopback, a fresh instance greets its first visitor with a "Join the Dagster community" dialog;
            # the browser says it was dismissed already.
            page.add_init_script("localStorage.setItem('communityNux', JSON.stringify('1'))")
            yield UI(
                base_url=base_url,
                page=page,
                home=root / "home",
                groups=sorted({graph.get(key).group_name for key in graph.get_all_asset_keys()}),
                contacts_checks=sorted(key.name for key in graph.asset_check_keys if key.asset_key == CONTACTS),
                contacts_rows=rows,
                contacts_columns=[(name, kind.lower()) for name, kind in columns],
                failing_check_description=graph.get_check_spec(FAILING_CHECK).description or "",
                initial_sources={source.strip().lower() for source in sources},
            )
            browser.close()
    finally:
        stop(server)
        print(f"UI screenshots: {SCREENSHOTS}")


def test_the_asset_graph_shows_every_group(ui: UI) -> None:
    assert len(ui.groups) > 1
    page = ui.open("/asset-groups")
    graph = page.locator("svg")  # the lineage canvas; the folder tree beside it is plain HTML
    for group in ui.groups:
        expect(graph.get_by_text(group, exact=True)).to_be_visible()
    expect(graph.locator("foreignObject")).to_have_count(len(ui.groups))  # one collapsed node per group, no other
    ui.screenshot("asset-graph.png")


def test_marketing_contacts_shows_its_row_count_typed_columns_and_passing_checks(ui: UI) -> None:
    page = ui.open("/assets/" + "/".join(CONTACTS.path))
    row_count = page.get_by_text("Row count", exact=True).locator("xpath=..")
    expect(row_count).to_have_text(re.compile(rf"Row count\s*{ui.contacts_rows:,}$"))
    assert ui.contacts_rows > 0 and len(ui.contacts_columns) > 5
    expect(page.get_by_role("row").filter(has_text=re.compile(r"^Column name\s*Type\s*Description$"))).to_be_visible()
    for name, kind in ui.contacts_columns:  # every column, with the type the warehouse gives it
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=name, exact=True))
        expect(row.get_by_role("cell").nth(1)).to_have_text(kind)
    assert {kind for _, kind in ui.contacts_columns} >= {"varchar", "integer", "timestamp"}
    ui.screenshot("marketing_contacts.png", height=2200)

    page = ui.open("/assets/" + "/".join(CONTACTS.path) + "?view=checks")
    assert len(ui.contacts_checks) > 1
    expect(page.get_by_text(f"Checks ({len(ui.contacts_checks)})", exact=True)).to_be_visible()
    for check in ui.contacts_checks:
        expect(page.get_by_title(check, exact=True).first.locator("xpath=..")).to_contain_text("Succeeded")
    ui.screenshot("marketing_contacts-checks.png")


def test_a_failing_rule_check_shows_its_sample_table(ui: UI) -> None:
    asset, check = FAILING_CHECK.asset_key, FAILING_CHECK.name
    page = ui.open(f"/assets/{'/'.join(asset.path)}?view=checks&checkDetail={check}")
    expect(page.get_by_text(ui.failing_check_description, exact=True)).to_be_visible()
    result = page.get_by_text("Evaluation result", exact=True).locator("xpath=..")
    expect(result).to_contain_text("Failed")  # the latest evaluation
    failing = page.get_by_role("row").filter(has=page.get_by_role("cell", name="failing_records", exact=True))
    expect(failing).to_have_text(re.compile(rf"failing_records\s*{VIOLATIONS_PER_KIND}$"))
    sample = page.get_by_role("row").filter(has_text="sample_records")
    expect(sample.get_by_role("columnheader")).to_have_text(["person_id", "email", "value"])
    records = sample.get_by_role("row").filter(has=page.get_by_role("cell"))
    expect(records).to_have_count(VIOLATIONS_PER_KIND)
    for index in range(VIOLATIONS_PER_KIND):
        cells = records.nth(index).get_by_role("cell")
        expect(cells.nth(0)).to_have_text(re.compile(r"^\d+$"))
        expect(cells.nth(1)).to_have_text(re.compile(r"^\w\*\*\*@[\w.-]+$"))  # e-mails masked
        assert cells.nth(2).inner_text().strip().lower() not in ui.initial_sources  # not an allowed value
    sample.scroll_into_view_if_needed()
    ui.screenshot("failing-check-sample.png")


def test_materialize_on_an_asset_page_launches_a_run_that_succeeds(ui: UI) -> None:
    page = ui.open("/assets/" + "/".join(SEED.path))
    page.get_by_role("button", name="Materialize", exact=False).first.click()
    expect(page.get_by_text(re.compile(r"^Launched run \w+$"))).to_be_visible()
    page.get_by_role("link", name="View", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_MS)
    ui.screenshot("materialize-run.png")
    with dg.DagsterInstance.from_config(str(ui.home)) as instance:
        run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    assert run.asset_selection == {SEED}
