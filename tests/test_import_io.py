"""Importing the code location does no I/O of its own: no file opened, no process started (no dbt parse, no manifest
or warehouse read). Definitions read the manifest only when they load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from marketing_pipelines.paths import PACKAGE_DIR

# Runs in a fresh interpreter. The libraries the package imports are imported first, unrecorded: some do I/O of their
# own at import (dagster's vendored croniter runs `file` through `platform.architecture()`, pandas reads the time zone
# database). Then an audit hook records every file opened outside the Python installation and the package's own
# source, and every process started, while the package's modules are imported.
PROBE = textwrap.dedent(
    """
    import ast, importlib, json, os, pkgutil, site, sys
    from pathlib import Path

    package = Path(sys.argv[1]).resolve()
    for source in sorted(package.rglob("*.py")):
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] != package.name:
                    importlib.import_module(name)

    installed = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, *site.getsitepackages())})
    own_code = (str(package) + os.sep, (".py", ".pyc"))
    processes = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "pty.spawn")
    recorded = []

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.realpath(os.fsdecode(args[0]))
            if not path.startswith(installed) and not (path.startswith(own_code[0]) and path.endswith(own_code[1])):
                recorded.append(["open", path])
        elif event in processes:
            recorded.append([event, repr(args[:2])])

    sys.addaudithook(hook)
    importlib.import_module(package.name + ".definitions")
    defs = importlib.import_module(package.name + ".defs")
    modules = [info.name for info in pkgutil.walk_packages(defs.__path__, defs.__name__ + ".")]
    for name in modules:
        importlib.import_module(name)
    at_import = list(recorded)
    importlib.import_module(package.name + ".defs.transform.sources").raw_source_specs()
    print(json.dumps({"modules": modules, "at_import": at_import, "at_load": recorded[len(at_import):]}))
    """
)


def test_importing_the_definitions_and_every_defs_module_opens_no_file_and_starts_no_process(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(PACKAGE_DIR)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "marketing_pipelines.defs.transform.assets" in report["modules"]
    assert "marketing_pipelines.defs.signups.jobs" in report["modules"]
    assert report["at_import"] == []
    # the hook sees the package's reads: loading the raw sources opens the manifest
    opened = [path for event, path in report["at_load"] if event == "open"]
    assert any(path.endswith("manifest.json") for path in opened), report["at_load"]
