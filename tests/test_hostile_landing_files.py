"""Hostile landed files: every line of every file ends in exactly one place (loaded once, or in `ops.quarantine`
with a reason), entries that are not regular files are refused unread, and the good files of the same run load.

Each kind of hostile file is landed in both folders (trial_signups, free_registrations) and ingested through the
catch-up path (no `files` config) and through the sensor path (the sensor's run requests, their files loaded in
one run), against a temp DuckDB; one end-to-end test runs the sensor and `ingest_signups_job` for real.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from marketing_pipelines.defs.signups.assets import free_registration_events, trial_signup_events
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.signups.landing import EVENT_KINDS, file_run_key
from marketing_pipelines.signups.tables import EVENT_TABLES
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.jobs import signup_sensor_tick
from tests.support.signups import event as signup_event

SECRET = "root:x:0:0:secret-outside-the-landing-folder"
REQUIRED_ONLY = {"event_id", "occurred_at", "email", "user_id", "companyNamespace"}


def event(event_id: str, **overrides) -> dict:
    """A valid trial of a company namespace, at `<event_id>@example.com`."""
    trial = {"latest_trial_start_date": "2026-11-20", "signupReason": "I want to store my code"}
    return signup_event(event_id, **{"email": f"{event_id}@example.com", **trial, **overrides})


def jl(*events: dict | str) -> bytes:
    """JSON lines, newline-terminated (strings are taken as raw lines)."""
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events).encode()


LOADED, DUPLICATE = "loaded", "duplicate line"
#: case -> (content builder (event-id prefix -> bytes), expected outcome of each line in order)
LINE_CASES: dict[str, tuple[Callable[[str], bytes], list[str]]] = {
    "good": (lambda p: jl(event(f"{p}-1"), event(f"{p}-2")), [LOADED, LOADED]),
    "blank_lines": (lambda p: b"\n   \n\t\n", ["empty line"] * 3),
    "bom": (lambda p: b"\xef\xbb\xbf" + jl(event(f"{p}-1")), [LOADED]),
    "crlf": (lambda p: jl(event(f"{p}-1")).replace(b"\n", b"\r\n") * 1 + b"\r\n", [LOADED, "empty line"]),
    "latin1": (
        lambda p: (
            jl(event(f"{p}-1"))
            + json.dumps(event(f"{p}-2", firstName="Zoë"), ensure_ascii=False).encode("latin-1")
            + b"\n"
        ),
        [LOADED, "not UTF-8"],
    ),
    "invalid_utf8": (lambda p: b'{"event_id": "\xc3\x28"}\n', ["not UTF-8"]),
    "binary_garbage": (lambda p: bytes(range(256)) + b"\n", ["not JSON", "not UTF-8"]),
    "huge_line_then_good": (
        lambda p: jl(event(f"{p}-1", company="x" * 2_000_000), event(f"{p}-2")),
        ["line longer than", LOADED],
    ),
    "pretty_printed_array": (
        lambda p: json.dumps([{"event_id": f"{p}-1"}], indent=2).encode() + b"\n",
        ["not JSON Lines"] * 5,
    ),
    "array_on_one_line": (lambda p: jl(json.dumps([event(f"{p}-1"), event(f"{p}-2")])), ["not a JSON object"]),
    "scalars": (lambda p: b'42\n"text"\nnull\ntrue\n', ["not a JSON object"] * 4),
    "duplicate_keys": (
        lambda p: jl(json.dumps(event(f"{p}-1"))[:-1] + f', "event_id": "{p}-2"}}'),
        ["duplicate key"],
    ),
    "wrong_types": (
        lambda p: jl(event(f"{p}-1", user_id="7"), event(f"{p}-2", companyNamespace="yes"), event(f"{p}-3", country=1)),
        ["user_id: not an integer", "companyNamespace", "country"],
    ),
    "missing_fields": (
        lambda p: jl({k: v for k, v in event(f"{p}-1").items() if k != "email"}, {"event_id": f"{p}-2"}),
        ["email: missing", "occurred_at: missing"],
    ),
    "only_required_fields": (
        lambda p: jl({k: v for k, v in event(f"{p}-1").items() if k in REQUIRED_ONLY}),
        [LOADED],
    ),
    "extra_fields": (lambda p: jl(event(f"{p}-1", extra={"nested": [1, 2]}, another="x")), [LOADED]),
    "nan_infinity": (
        lambda p: jl(json.dumps(event(f"{p}-1")).replace('"user_id": 7', '"user_id": NaN'), '{"a": -Infinity}'),
        ["not JSON: NaN", "not JSON: -Infinity"],
    ),
    "very_long_email": (lambda p: jl(event(f"{p}-1", email="a" * 300 + "@example.com")), ["email: longer than"]),
    "odd_case_email": (lambda p: jl(event(f"{p}-1", email="  Jane.DOE@Example.COM \t")), [LOADED]),
    "not_an_email": (lambda p: jl(event(f"{p}-1", email="jane at example")), ["email: not an e-mail"]),
    "no_time_zone": (lambda p: jl(event(f"{p}-1", occurred_at="2026-11-20T10:00:00")), ["occurred_at: no time zone"]),
    "extreme_offsets": (
        lambda p: jl(
            event(f"{p}-1", occurred_at="9999-12-31T23:59:59-23:59"),
            event(f"{p}-2", occurred_at="0001-01-01T00:00:00+23:59"),
            event(f"{p}-3", occurred_at="2026-11-20T10:00:00+99:00"),
        ),
        ["occurred_at: out of range", "occurred_at: out of range", "occurred_at: not an ISO-8601"],
    ),
    "impossible_dates": (
        lambda p: jl(
            event(f"{p}-1", occurred_at="2026-02-30T10:00:00Z"),
            event(f"{p}-2", latest_trial_start_date="2026-13-01"),
        ),
        ["occurred_at: not an ISO-8601", "latest_trial_start_date: not a calendar date"],
    ),
    "far_future": (lambda p: jl(event(f"{p}-1", occurred_at="2999-01-01T00:00:00Z")), ["occurred_at: outside"]),
    "user_id_over_2_63": (
        lambda p: jl(event(f"{p}-1", user_id=2**64), event(f"{p}-2", user_id=-5)),
        ["user_id: out of range", "user_id: out of range"],
    ),
    "huge_integer": (
        lambda p: jl(json.dumps(event(f"{p}-1")).replace('"user_id": 7', '"user_id": ' + "9" * 5000)),
        ["not JSON"],
    ),
    "lone_surrogate": (lambda p: jl(json.dumps(event(f"{p}-1")).replace('"Doe"', '"\\ud800"')), ["lastName: contains"]),
    "nul_escape": (lambda p: jl(json.dumps(event(f"{p}-1")).replace('"Acme"', '"Ac\\u0000me"')), ["company: contains"]),
    "raw_nul_byte": (lambda p: jl(event(f"{p}-1")).replace(b"Acme", b"Ac\x00me"), ["not JSON"]),
    "event_id_over_256_bytes": (lambda p: jl(event(p + "-" + "é" * 130)), ["event_id: longer than 256 bytes"]),
    "empty_event_id": (lambda p: jl(event("")), ["event_id: not a non-empty string"]),
    "deeply_nested": (
        lambda p: ('{"a":' * 50_000 + "1" + "}" * 50_000 + "\n" + "[" * 60_000 + "]" * 60_000 + "\n").encode(),
        ["not JSON: nested too deeply"] * 2,
    ),
    "bad_employee_bucket": (lambda p: jl(event(f"{p}-1", employeeBucket="9000+")), ["employeeBucket"]),
    "sql_and_emoji": (
        lambda p: jl(event(f"{p}-1", lastName="O'Brien'); drop table raw.x; --", firstName="🚀")),
        [LOADED],
    ),
    "duplicate_event_in_file": (lambda p: jl(event(f"{p}-1"), event(f"{p}-1")), [LOADED, DUPLICATE]),
    "half_written_last_line": (
        lambda p: jl(event(f"{p}-1")) + json.dumps(event(f"{p}-2")).encode()[:50],
        [LOADED, "incomplete line"],
    ),
    "complete_last_line_without_newline": (
        lambda p: jl(event(f"{p}-1")) + json.dumps(event(f"{p}-2")).encode(),
        [LOADED, LOADED],
    ),
    "invalid_last_line_without_newline": (
        lambda p: jl(event(f"{p}-1")) + json.dumps(event(f"{p}-2", user_id="x")).encode(),
        [LOADED, "user_id: not an integer"],
    ),
}

#: case -> (how to land it in a folder, outcome in ops.ingested_files, what its reason says)
FILE_CASES: dict[str, tuple[Callable[[Path, str], None], str, str]] = {}


def _file_case(name: str, outcome: str, reason: str):
    def register(make: Callable[[Path, str], None]) -> Callable[[Path, str], None]:
        FILE_CASES[name] = (make, outcome, reason)
        return make

    return register


@_file_case("empty_file", "loaded", "empty file")
def _empty(folder: Path, name: str) -> None:
    (folder / name).write_bytes(b"")


@_file_case("same_content_second_name", "duplicate", "same content as")
def _same_content(folder: Path, name: str) -> None:
    (folder / name).write_bytes((folder / "good.jsonl").read_bytes())


@_file_case("gzip_content", "refused", "gzip-compressed")
def _gzip_content(folder: Path, name: str) -> None:
    (folder / name).write_bytes(gzip.compress(jl(event(f"{folder.name}-gz-1"))))


@_file_case("compressed_name.jsonl.gz", "refused", "gzip-compressed")
def _gz_name(folder: Path, name: str) -> None:
    (folder / name.removesuffix(".jsonl")).write_bytes(gzip.compress(jl(event(f"{folder.name}-gzn-1"))))


@_file_case("directory", "refused", "a directory")
def _directory(folder: Path, name: str) -> None:
    (folder / name).mkdir()
    (folder / name / "inner.jsonl").write_bytes(jl(event("inner")))


@_file_case("fifo", "refused", "named pipe")
def _fifo(folder: Path, name: str) -> None:
    os.mkfifo(folder / name)  # opening it for reading would block forever


@_file_case("socket", "refused", "a socket")
def _socket(folder: Path, name: str) -> None:
    cwd = os.getcwd()
    os.chdir(folder)  # a relative address: AF_UNIX paths are limited to about 100 bytes
    try:
        server = socket.socket(socket.AF_UNIX)
        server.bind(name)
        server.close()
    finally:
        os.chdir(cwd)


@_file_case("symlink_inside", "refused", "symbolic link")
def _symlink_inside(folder: Path, name: str) -> None:
    (folder / name).symlink_to(folder / "good.jsonl")


@_file_case("symlink_outside", "refused", "symbolic link")
def _symlink_outside(folder: Path, name: str) -> None:
    (folder / name).symlink_to(folder.parent.parent / "outside" / "passwd")


@_file_case("dangling_symlink", "refused", "symbolic link")
def _dangling(folder: Path, name: str) -> None:
    (folder / name).symlink_to(folder / "does-not-exist.jsonl")


#: file cases landed under a name other than `<case>.jsonl`: the name as recorded (escaped when not UTF-8)
LANDED_NAMES: dict[str, str] = {"compressed_name.jsonl.gz": "compressed_name.jsonl.gz"}


def _other_name(case: str, landed: str, reason: str = "not a .jsonl file: only *.jsonl files are read") -> None:
    """A file case whose file is named `landed`: a good JSON Lines file that must be refused for its name."""

    @_file_case(case, "refused", reason)
    def _make(folder: Path, name: str) -> None:
        real = os.fsdecode(landed.encode("utf-8").replace(b"\\xff", b"\xff"))  # the raw byte 0xFF in the name
        (folder / real).write_bytes(jl(event(f"{folder.name}-{case}-1")))

    LANDED_NAMES[case] = landed


_other_name("upper_case_suffix", "upper_case_suffix.JSONL")
_other_name("json_suffix", "json_suffix.json")
_other_name("ndjson_suffix", "ndjson_suffix.ndjson")
_other_name("text_suffix", "text_suffix.txt")
_other_name("no_suffix", "no_suffix")
_other_name("name_not_utf8", "name_not_utf8-\\xff.jsonl", "file name not UTF-8")  # the byte 0xFF, shown escaped


@_file_case("utf16_le_bom", "refused", "UTF-16 text (byte order mark FF FE): only UTF-8 is read")
def _utf16_le(folder: Path, name: str) -> None:
    (folder / name).write_bytes(jl(event(f"{folder.name}-u16le-1")).decode().encode("utf-16"))  # FF FE, then LE


@_file_case("utf16_be_bom", "refused", "UTF-16 text (byte order mark FE FF)")
def _utf16_be(folder: Path, name: str) -> None:
    (folder / name).write_bytes(b"\xfe\xff" + jl(event(f"{folder.name}-u16be-1")).decode().encode("utf-16-be"))


@_file_case("utf32_bom", "refused", "UTF-32 text")
def _utf32(folder: Path, name: str) -> None:
    (folder / name).write_bytes(jl(event(f"{folder.name}-u32-1")).decode().encode("utf-32"))


@_file_case("utf16_without_bom", "refused", "bytes are NUL: UTF-16/UTF-32 text without a byte order mark")
def _utf16_no_bom(folder: Path, name: str) -> None:
    (folder / name).write_bytes(jl(event(f"{folder.name}-u16-1")).decode().encode("utf-16-le"))


def _device(folder: Path, name: str) -> None:
    os.mknod(folder / name, 0o600 | 0o020000, os.makedev(1, 3))  # a character device like /dev/null


try:  # creating a device node needs privileges the test machine may not grant
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"probe-device-{os.getpid()}"
    _device(probe.parent, probe.name)
    probe.unlink()
    _file_case("device", "refused", "a device")(_device)
except (PermissionError, OSError):
    pass


#: Names starting with "." (a file being landed under a temporary name, an editor's file): skipped silently.
HIDDEN_NAMES = (".being-landed.jsonl", ".upload.jsonl.x7Gq2", ".notes.txt.swp")


def land_everything(root: Path) -> None:
    """Every line case and every file case in both folders, plus a dot file (being landed: never read)."""
    outside = root / "outside"
    outside.mkdir(parents=True)
    (outside / "passwd").write_text(SECRET + "\n")
    for kind in EVENT_KINDS:
        folder = root / "landing" / kind
        folder.mkdir(parents=True)
        for case, (build, _) in LINE_CASES.items():
            (folder / f"{case}.jsonl").write_bytes(build(f"{kind}-{case}"))
        for case, (make, _, _) in FILE_CASES.items():
            make(folder, f"{case}.jsonl")
        for hidden in HIDDEN_NAMES:
            (folder / hidden).write_bytes(jl(event(f"{kind}-hidden")))


def landed_name(case: str) -> str:
    return LANDED_NAMES.get(case, f"{case}.jsonl")


def assert_every_line_accounted_for(db: DuckDBWarehouse, root: Path) -> None:
    """Each line case: each line loaded or quarantined as expected, nothing else; each file case: its ledger row."""
    ledger = {
        file: (outcome, reason, lines_read, duplicates)
        for file, outcome, reason, lines_read, duplicates in db.query(
            "select file, outcome, reason, lines_read, duplicates from ops.ingested_files"
        )
    }
    quarantined = {(f, n): r for f, n, r in db.query("select file, line_number, reason from ops.quarantine")}
    assert not [raw for (raw,) in db.query("select raw_text from ops.quarantine") if raw and SECRET in raw]
    for kind in EVENT_KINDS:
        folder = root / "landing" / kind
        loaded = db.query(f"select source_file, line_number, email from raw.{EVENT_TABLES[kind]}")
        loaded_lines = {(f, n) for f, n, _ in loaded}
        for case, (_, expected) in LINE_CASES.items():
            file = str(folder / f"{case}.jsonl")
            outcome, _, lines_read, duplicates = ledger[file]
            assert (outcome, lines_read) == ("loaded", len(expected)), (kind, case, ledger[file])
            for number, want in enumerate(expected, start=1):
                where = (kind, case, number)
                if want == LOADED:
                    assert (file, number) in loaded_lines and (file, number) not in quarantined, where
                elif want == DUPLICATE:
                    assert (file, number) not in loaded_lines and (file, number) not in quarantined, where
                else:
                    assert (file, number) not in loaded_lines, where
                    assert want in quarantined.get((file, number), "<not quarantined>"), (
                        where,
                        quarantined.get((file, number)),
                    )
            assert duplicates == expected.count(DUPLICATE), (kind, case)
            assert not {n for f, n in quarantined if f == file} - set(range(1, len(expected) + 1)), (kind, case)
        for case, (_, outcome, reason_part) in FILE_CASES.items():
            file = str(folder / landed_name(case))
            assert ledger[file][0] == outcome and reason_part in (ledger[file][1] or ""), (kind, case, ledger[file])
            assert not [row for row in loaded if row[0] == file], (kind, case)
            if outcome == "refused":
                assert "file refused" in quarantined[(file, 0)], (kind, case)
        assert not {str(folder / hidden) for hidden in HIDDEN_NAMES} & set(ledger)
        emails = {email for f, _, email in loaded if f.endswith("odd_case_email.jsonl")}
        assert emails == {"jane.doe@example.com"}


def warehouse_resource(path: Path) -> dict:
    return {"warehouse": WarehouseResource(duckdb_path=str(path))}


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    (materialization,) = result.asset_materializations_for_node(key)
    return {name: value.value for name, value in materialization.metadata.items()}


@pytest.fixture
def hostile_landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    land_everything(tmp_path)
    monkeypatch.setenv("LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("SIGNUPS_INCOMPLETE_LINE_SECONDS", "0")  # a half line is quarantined at once here
    return tmp_path


def test_there_are_at_least_40_kinds_of_hostile_file():
    assert len(LINE_CASES) + len(FILE_CASES) >= 40


def test_catch_up_accounts_for_every_line_of_every_hostile_file(hostile_landing):
    db_path = hostile_landing / "warehouse.duckdb"
    result = dg.materialize([trial_signup_events, free_registration_events], resources=warehouse_resource(db_path))
    assert result.success
    assert_every_line_accounted_for(DuckDBWarehouse(db_path), hostile_landing)
    meta = metadata(result, "raw__trial_signup_events")
    assert meta["mode"] == "catch-up" and "refused" in meta["files_not_loaded"]

    again = dg.materialize([trial_signup_events, free_registration_events], resources=warehouse_resource(db_path))
    assert metadata(again, "raw__trial_signup_events")["files"] == 0  # every version is handled, refusals too


def test_sensor_path_accounts_for_every_line_of_every_hostile_file(hostile_landing):
    """The sensor requests a run for every entry (never opening a FIFO or following a link to compute the run
    key); the files of all its requests, loaded in sensor mode, end exactly where the catch-up puts them."""
    started = time.monotonic()
    tick = signup_sensor_tick(WarehouseResource(duckdb_path=str(hostile_landing / "warehouse.duckdb")))
    assert time.monotonic() - started < 10
    per_kind = len(LINE_CASES) + len(FILE_CASES)
    assert len(tick.run_requests) == 2 * per_kind
    assert len({request.run_key for request in tick.run_requests}) == 2 * per_kind
    for request in tick.run_requests:  # a name that is not UTF-8 is escaped wherever it is stored or shown
        json.dumps([request.run_key, request.tags, request.run_config], ensure_ascii=False).encode("utf-8")
    files: dict[str, list[str]] = {"raw__trial_signup_events": [], "raw__free_registration_events": []}
    for request in tick.run_requests:
        for asset, config in request.run_config["ops"].items():
            files[asset].extend(config["config"]["files"])
    db_path = hostile_landing / "warehouse.duckdb"
    result = dg.materialize(
        [trial_signup_events, free_registration_events],
        run_config={"ops": {asset: {"config": {"files": paths}} for asset, paths in files.items()}},
        resources=warehouse_resource(db_path),
    )
    assert result.success
    assert_every_line_accounted_for(DuckDBWarehouse(db_path), hostile_landing)


def test_a_path_outside_the_landing_folder_in_run_config_is_refused_unread(hostile_landing):
    db_path = hostile_landing / "warehouse.duckdb"
    outside = hostile_landing / "outside" / "passwd"
    sneaky = hostile_landing / "elsewhere" / "trial_signups" / "x.jsonl"
    sneaky.parent.mkdir(parents=True)
    sneaky.write_text(SECRET + "\n")
    result = dg.materialize(
        [trial_signup_events, free_registration_events],
        run_config={
            "ops": {
                "raw__trial_signup_events": {"config": {"files": [str(outside), str(sneaky)]}},
                "raw__free_registration_events": {"config": {"files": []}},
            }
        },
        resources=warehouse_resource(db_path),
    )
    assert result.success
    db = DuckDBWarehouse(db_path)
    rows = db.query("select file, outcome, reason from ops.ingested_files order by file")
    assert sorted((Path(f).name, o) for f, o, _ in rows) == [("passwd", "refused"), ("x.jsonl", "refused")]
    assert all("not directly in" in reason for _, _, reason in rows)
    assert not [raw for (raw,) in db.query("select raw_text from ops.quarantine") if raw and SECRET in raw]


def test_half_written_last_line_waits_within_the_bound_then_loads_the_rest(tmp_path, monkeypatch):
    """Within SIGNUPS_INCOMPLETE_LINE_SECONDS the catch-up leaves the file for later (nothing recorded); once the
    file is older than that, the half line is quarantined as incomplete and the rest loads."""
    folder = tmp_path / "landing" / "trial_signups"
    folder.mkdir(parents=True)
    (folder / "partial.jsonl").write_bytes(jl(event("p-1")) + b'{"event_id": "p-2", "occ')
    (folder / "good.jsonl").write_bytes(jl(event("g-1")))
    monkeypatch.setenv("LANDING_DIR", str(tmp_path / "landing"))
    db_path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("SIGNUPS_INCOMPLETE_LINE_SECONDS", "600")
    first = dg.materialize([trial_signup_events, free_registration_events], resources=warehouse_resource(db_path))
    meta = metadata(first, "raw__trial_signup_events")
    assert (meta["loaded"], meta["still_being_written"]) == (1, [str(folder / "partial.jsonl")])

    monkeypatch.setenv("SIGNUPS_INCOMPLETE_LINE_SECONDS", "1")
    time.sleep(1.1)
    second = dg.materialize([trial_signup_events, free_registration_events], resources=warehouse_resource(db_path))
    meta = metadata(second, "raw__trial_signup_events")
    assert (meta["files"], meta["loaded"], meta["quarantined"], meta["still_being_written"]) == (1, 1, 1, [])
    db = DuckDBWarehouse(db_path)
    assert db.query("select event_id from raw.trial_signup_events order by 1") == [("g-1",), ("p-1",)]
    ((reason,),) = db.query("select reason from ops.quarantine")
    assert reason.startswith("incomplete line")


def test_catch_up_over_1000_files_with_hostile_ones_loads_the_other_999(tmp_path, monkeypatch):
    folder = tmp_path / "landing" / "free_registrations"
    folder.mkdir(parents=True)
    for i in range(999):
        (folder / f"f{i:04d}.jsonl").write_bytes(jl(event(f"bulk-{i}")))
    (folder / "f0500-hostile.jsonl").write_bytes(jl(event("x", occurred_at="9999-12-31T23:59:59-23:59")) + b"\x00\xff")
    os.mkfifo(folder / "f0501-fifo.jsonl")
    monkeypatch.setenv("LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("SIGNUPS_INCOMPLETE_LINE_SECONDS", "0")
    db_path = tmp_path / "warehouse.duckdb"
    started = time.monotonic()
    result = dg.materialize([trial_signup_events, free_registration_events], resources=warehouse_resource(db_path))
    seconds = time.monotonic() - started
    assert result.success
    meta = metadata(result, "raw__free_registration_events")
    assert (meta["files"], meta["loaded"]) == (1001, 999)
    db = DuckDBWarehouse(db_path)
    assert db.query("select count(*) from raw.free_registration_events") == [(999,)]
    assert db.query("select outcome, count(*) from ops.ingested_files group by 1 order by 1") == [
        ("loaded", 1000),
        ("refused", 1),
    ]
    print(f"\ncatch-up of 1,001 files: {seconds:.1f} s")


def test_sensor_and_job_end_to_end_with_hostile_files(tmp_path, monkeypatch):
    """The sensor's run requests, each run as `ingest_signups_job` against the emulator: every run succeeds; the
    good events reach Iterable; a half-written file is retried, then its half line quarantined (retries are never
    exhausted); a link to a system file and a FIFO are refused unread."""
    from devtools.iterable_emulator import IterableEmulator
    from marketing_pipelines.definitions import build_definitions
    from marketing_pipelines.resources import IterableResource, build_resources
    from marketing_pipelines.sync.iterable import iterable_event_id
    from tests.support.dbt import run_dbt
    from tests.support.raw import load_raw_rows

    db_path = tmp_path / "warehouse.duckdb"
    load_raw_rows(DuckDBWarehouse(db_path), {})
    run_dbt(
        ["build", "--select", "+audiences.iterable_trial_events +stg_marketo__unsubscribes +marketing_contacts"],
        db_path,
    )
    landing = tmp_path / "landing"
    trials, frees = landing / "trial_signups", landing / "free_registrations"
    trials.mkdir(parents=True)
    frees.mkdir()
    (tmp_path / "passwd").write_text(SECRET + "\n")
    (trials / "good.jsonl").write_bytes(jl(event("e2e-1"), event("e2e-2", occurred_at="9999-12-31T23:59:59-23:59")))
    (trials / "half.jsonl").write_bytes(jl(event("e2e-3")) + json.dumps(event("e2e-4")).encode()[:60])
    (trials / "link.jsonl").symlink_to(tmp_path / "passwd")
    os.mkfifo(frees / "pipe.jsonl")
    (frees / "good.jsonl").write_bytes(jl(event("e2e-1")))  # the same id as a trial: another event
    with IterableEmulator(api_key="test-key") as emulator:
        for name, value in {"LANDING_DIR": str(landing), "SIGNUPS_INCOMPLETE_LINE_SECONDS": "5"}.items():
            monkeypatch.setenv(name, value)
        tick = signup_sensor_tick(WarehouseResource(duckdb_path=str(db_path)))
        assert len(tick.run_requests) == 5
        resources = build_resources(
            {},
            warehouse=WarehouseResource(kind="duckdb", duckdb_path=str(db_path)),
            iterable=IterableResource(api_key="test-key", base_url=emulator.base_url),
        )
        job = build_definitions(resources).resolve_job_def("ingest_signups_job")
        results = {}
        for request in tick.run_requests:
            if request.tags["signups/file"] == "trial_signups/half.jsonl":
                os.utime(trials / "half.jsonl")  # still being written when its run starts (its ctime is now)
            results[request.tags["signups/file"]] = job.execute_in_process(
                run_config=request.run_config, tags=request.tags, instance=dg.DagsterInstance.ephemeral()
            )
    assert all(result.success for result in results.values())
    retried = [e for e in results["trial_signups/half.jsonl"].all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retried
    assert set(emulator.events) == {
        iterable_event_id(key) for key in ("trial_signups:e2e-1", "trial_signups:e2e-3", "free_registrations:e2e-1")
    }
    db = DuckDBWarehouse(db_path)
    reasons = dict(db.query("select regexp_extract(file, '[^/]+/[^/]+$'), reason from ops.quarantine"))
    assert reasons["trial_signups/half.jsonl"].startswith("incomplete line")
    assert reasons["trial_signups/good.jsonl"].startswith("occurred_at: out of range")
    assert "symbolic link" in reasons["trial_signups/link.jsonl"]
    assert "named pipe" in reasons["free_registrations/pipe.jsonl"]
    assert not [raw for (raw,) in db.query("select raw_text from ops.quarantine") if raw and SECRET in raw]


def land_name_not_utf8(folder: Path, *lines: dict) -> str:
    """A file named with the byte 0xFF (not UTF-8) holding good lines; returns its path as recorded (escaped)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(os.path.join(os.fsencode(folder), b"bad-\xff.jsonl"), "wb") as handle:
        handle.write(jl(*lines))
    return str(folder / "bad-\\xff.jsonl")


def assert_refused_name_and_good_file_loaded(db: DuckDBWarehouse, shown: str, good_ids: set[str]) -> None:
    ledger = {
        file: (outcome, reason)
        for file, outcome, reason in db.query("select file, outcome, reason from ops.ingested_files")
    }
    assert ledger[shown][0] == "refused" and ledger[shown][1].startswith("file name not UTF-8"), ledger
    ((reason,),) = db.query("select reason from ops.quarantine where file = ? and line_number = 0", [shown])
    assert reason.startswith("file refused: file name not UTF-8")
    assert {event_id for (event_id,) in db.query("select event_id from raw.trial_signup_events")} == good_ids


def test_a_name_that_is_not_utf8_is_refused_unread_and_the_other_files_load_in_the_catch_up(tmp_path, monkeypatch):
    folder = tmp_path / "landing" / "trial_signups"
    shown = land_name_not_utf8(folder, event("never-read"))
    (folder / "good.jsonl").write_bytes(jl(event("good-1")))
    monkeypatch.setenv("LANDING_DIR", str(tmp_path / "landing"))
    db_path = tmp_path / "warehouse.duckdb"
    result = dg.materialize([trial_signup_events, free_registration_events], resources=warehouse_resource(db_path))
    assert result.success
    meta = metadata(result, "raw__trial_signup_events")
    assert meta["loaded"] == 1 and shown in meta["source_files"]
    assert_refused_name_and_good_file_loaded(DuckDBWarehouse(db_path), shown, {"good-1"})
    again = dg.materialize([trial_signup_events, free_registration_events], resources=warehouse_resource(db_path))
    assert metadata(again, "raw__trial_signup_events")["files"] == 0  # the refusal is recorded once


def test_a_name_that_is_not_utf8_never_wedges_the_sensor(tmp_path, monkeypatch):
    """The sensor tick requests a run for the file under its escaped name (tags and config are storable text), the
    run records it as refused without reading it, the good file's run loads, and a file landed later still gets
    its run: the cursor moves on."""
    landing = tmp_path / "landing"
    folder = landing / "trial_signups"
    shown = land_name_not_utf8(folder, event("never-read"))
    (folder / "good.jsonl").write_bytes(jl(event("good-1")))
    monkeypatch.setenv("LANDING_DIR", str(landing))
    db_path = tmp_path / "warehouse.duckdb"
    with dg.instance_for_test() as instance:  # a persistent instance: tags and run config go through its storage
        first = signup_sensor_tick(WarehouseResource(duckdb_path=str(db_path)), instance=instance)
        assert sorted(r.tags["signups/file"] for r in first.run_requests) == [
            "trial_signups/bad-\\xff.jsonl",
            "trial_signups/good.jsonl",
        ]
        for request in first.run_requests:
            result = dg.materialize(
                [trial_signup_events, free_registration_events],
                run_config=request.run_config,
                tags=request.tags,
                resources=warehouse_resource(db_path),
                instance=instance,
            )
            assert result.success
            assert instance.get_run_by_id(result.run_id).tags["signups/file"] == request.tags["signups/file"]
        assert_refused_name_and_good_file_loaded(DuckDBWarehouse(db_path), shown, {"good-1"})

        time.sleep(0.01)
        (folder / "later.jsonl").write_bytes(jl(event("later-1")))
        second = signup_sensor_tick(WarehouseResource(duckdb_path=str(db_path)), instance=instance, cursor=first.cursor)
        assert [r.tags["signups/file"] for r in second.run_requests] == ["trial_signups/later.jsonl"]
        (request,) = second.run_requests
        assert dg.materialize(
            [trial_signup_events, free_registration_events],
            run_config=request.run_config,
            tags=request.tags,
            resources=warehouse_resource(db_path),
            instance=instance,
        ).success
    assert_refused_name_and_good_file_loaded(DuckDBWarehouse(db_path), shown, {"good-1", "later-1"})


def test_a_path_that_is_not_utf8_given_directly_is_recorded_escaped(tmp_path):
    """`ingest_file` with the real path (Python's surrogate-escaped str) refuses it without reading it."""
    from marketing_pipelines.signups.ingest import ensure_tables, ingest_file

    folder = tmp_path / "trial_signups"
    shown = land_name_not_utf8(folder, event("never-read"))
    db = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    ensure_tables(db)
    real = os.fsdecode(os.path.join(os.fsencode(folder), b"bad-\xff.jsonl"))
    report = ingest_file(db, real)
    assert (report.file, report.outcome) == (shown, "refused")
    assert db.query("select file, outcome from ops.ingested_files") == [(shown, "refused")]


def _bytes_read() -> int | None:
    try:
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    except OSError:
        return None
    return int(fields["rchar"])


def test_run_key_of_a_huge_file_reads_only_its_edges_and_changes_with_the_file(tmp_path):
    """A 2 GB sparse file: the run key reads at most its first and last MiB (counted by the kernel where it can
    tell), is stable between ticks, and changes when the file changes, also in the middle with the mtime reset."""
    folder = tmp_path / "trial_signups"
    folder.mkdir()
    huge = folder / "huge.jsonl"
    with open(huge, "wb") as handle:
        handle.truncate(2 * 1024**3)
    before = _bytes_read()
    key = file_run_key(huge)
    after = _bytes_read()
    if before is not None and after is not None:
        assert after - before < 4 * 1024**2
    assert file_run_key(huge) == key
    stat = huge.stat()
    with open(huge, "r+b") as handle:
        handle.seek(1024**3)
        handle.write(b"x")  # the middle: not hashed, the mtime and ctime change
    os.utime(huge, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime back-dated: the ctime still moves on
    middle = file_run_key(huge)
    assert middle != key
    with open(huge, "ab") as handle:
        handle.write(b"\n")
    assert file_run_key(huge) not in (key, middle)


def test_a_touched_file_gets_a_new_run_key_and_its_run_loads_nothing_twice(tmp_path, monkeypatch):
    """The run key changes with the file's times, not only its content; ingestion dedupes by the full content."""
    folder = tmp_path / "landing" / "trial_signups"
    folder.mkdir(parents=True)
    path = folder / "a.jsonl"
    path.write_bytes(jl(event("a-1")))
    monkeypatch.setenv("LANDING_DIR", str(tmp_path / "landing"))
    db_path = tmp_path / "warehouse.duckdb"
    config = {
        "ops": {
            "raw__trial_signup_events": {"config": {"files": [str(path)]}},
            "raw__free_registration_events": {"config": {"files": []}},
        }
    }
    key = file_run_key(path)
    first = dg.materialize(
        [trial_signup_events, free_registration_events], run_config=config, resources=warehouse_resource(db_path)
    )
    time.sleep(0.01)
    os.utime(path)
    assert file_run_key(path) != key
    second = dg.materialize(
        [trial_signup_events, free_registration_events], run_config=config, resources=warehouse_resource(db_path)
    )
    assert (
        metadata(first, "raw__trial_signup_events")["loaded"],
        metadata(second, "raw__trial_signup_events")["loaded"],
    ) == (1, 0)
    assert DuckDBWarehouse(db_path).query("select count(*) from ops.ingested_files") == [(1,)]


def test_a_utf16_file_is_refused_at_once_not_waited_for(tmp_path, monkeypatch):
    """UTF-16 text ends in a NUL byte after its last newline: refused as a whole at once, never held as a
    half-written line, in the catch-up and in the sensor's run."""
    folder = tmp_path / "landing" / "free_registrations"
    folder.mkdir(parents=True)
    path = folder / "utf16.jsonl"
    path.write_bytes(jl(event("u-1")).decode().encode("utf-16"))
    assert path.read_bytes().endswith(b"\n\x00")
    monkeypatch.setenv("LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("SIGNUPS_INCOMPLETE_LINE_SECONDS", "600")
    config = {
        "ops": {
            "raw__trial_signup_events": {"config": {"files": []}},
            "raw__free_registration_events": {"config": {"files": [str(path)]}},
        }
    }
    sensor_db = tmp_path / "sensor.duckdb"
    sensor = dg.materialize(
        [trial_signup_events, free_registration_events], run_config=config, resources=warehouse_resource(sensor_db)
    )
    assert not [e for e in sensor.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    catch_up_db = tmp_path / "catch_up.duckdb"
    catch_up = dg.materialize(
        [trial_signup_events, free_registration_events], resources=warehouse_resource(catch_up_db)
    )
    assert metadata(catch_up, "raw__free_registration_events")["still_being_written"] == []
    for db_path in (sensor_db, catch_up_db):
        db = DuckDBWarehouse(db_path)
        ((outcome, reason),) = db.query("select outcome, reason from ops.ingested_files")
        assert outcome == "refused" and reason.startswith("UTF-16 text (byte order mark FF FE): only UTF-8 is read")
        assert db.query("select line_number from ops.quarantine") == [(0,)]
