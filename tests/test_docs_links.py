"""The README and docs/ stand alone: every relative link resolves inside the repository (anchors to a heading of
the target, GitHub's slug rules), product text never points at files or notes outside it, and the README's group
list is the one the definitions have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
FORBIDDEN = {
    "a path outside the repository": re.compile(r"\.\./shared"),
    "the team's design document": re.compile(r"DESIGN\.md|\bDESIGN \d"),
    "the team's style guide": re.compile(r"STYLE\.md"),
    "a numbered source document": re.compile(r"\bseeds? ?0\d\d\b", re.I),
    "internal issue notes": re.compile(r"issue notes|\bissue \d+\b", re.I),
}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (duplicates get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    result = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8")))


def product_text() -> list[Path]:
    code = [*(ROOT / "marketing_pipelines").rglob("*.py")]
    dbt = [p for ext in ("yml", "sql") for p in (ROOT / "dbt_project").rglob(f"*.{ext}")]
    dbt = [p for p in dbt if not {"target", "dbt_packages", "logs"} & set(p.relative_to(ROOT).parts)]
    return [*DOCS, *code, *dbt]


def test_slug_follows_github():
    assert slug("Performance: `make bench`") == "performance-make-bench"
    assert slug("New signups: sensor → ingestion → Iterable profile + event") == (
        "new-signups-sensor--ingestion--iterable-profile--event"
    )
    assert slug("Operational tables (schema `ops`)") == "operational-tables-schema-ops"


def test_the_docs_exist_and_the_readme_links_each():
    readme_links = {target.split("#")[0] for target in links(ROOT / "README.md")}
    for page in ("architecture", "data-contracts", "rules", "destinations", "operations", "deploy", "performance"):
        assert (ROOT / "docs" / f"{page}.md").is_file(), page
        assert f"docs/{page}.md" in readme_links, page


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(doc: Path):
    checked = 0
    for target in links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        assert resolved.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"
        if anchor:
            assert resolved.suffix == ".md", f"{doc.name}: {target} anchors into a file that is not Markdown"
            assert anchor in anchors(resolved), f"{doc.name}: {target}: no heading #{anchor} in {resolved.name}"
        checked += 1
    assert checked or doc.name in ("deploy.md", "performance.md"), f"{doc.name} links nowhere"


def test_product_text_never_points_outside_the_repository():
    offenders = []
    for path in product_text():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            offenders += [
                f"{path.relative_to(ROOT)}:{number}: {what}" for what, rx in FORBIDDEN.items() if rx.search(line)
            ]
    assert not offenders, "\n".join(offenders)


def test_the_forbidden_patterns_catch_what_they_name():
    samples = ["see ../shared/DESIGN.md", "DESIGN 6", "STYLE.md", "Seed 000: updates", "seeds 004", "the issue notes"]
    for sample in samples:
        assert any(rx.search(sample) for rx in FORBIDDEN.values()), sample
    assert not any(rx.search("dbt seeds 'dim_*' and --seed 7") for rx in FORBIDDEN.values())


def test_the_readme_lists_exactly_the_groups_of_the_definitions():
    from marketing_pipelines.definitions import defs

    graph = defs().resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Dagster groups", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert listed == groups


def test_the_data_contracts_list_every_raw_event_and_ops_column():
    from marketing_pipelines.signups.tables import INGESTED_FILES_COLUMNS, QUARANTINE_COLUMNS, event_columns
    from marketing_pipelines.sync.ops_tables import DDL
    from marketing_pipelines.warehouse.raw_tables import RAW_TABLES

    contracts = (ROOT / "docs" / "data-contracts.md").read_text(encoding="utf-8")

    def documented(table: str) -> set[str]:
        section = contracts.split(f"### `{table}`", 1)[1].split("\n#", 1)[0]
        return set(re.findall(r"^\| `(\w+)` \| [^|]+ \|", section, re.M))

    for table, columns in RAW_TABLES.items():
        assert documented(f"raw.{table}") == set(columns), table
    events = contracts.split("## Landed signup events", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", events, re.M)) == {column.name for column in event_columns()}
    assert documented("ops.quarantine") == set(QUARANTINE_COLUMNS)
    assert documented("ops.ingested_files") == set(INGESTED_FILES_COLUMNS)
    for statement in DDL:
        if match := re.match(r"create table if not exists (ops\.\w+) \((.*)\)", " ".join(statement.split())):
            columns = {part.split()[0] for part in match.group(2).split(",")}
            assert columns <= documented(match.group(1)), match.group(1)
        elif match := re.match(r"alter table (ops\.\w+) add column if not exists (\w+)", statement):
            assert match.group(2) in documented(match.group(1)), statement
