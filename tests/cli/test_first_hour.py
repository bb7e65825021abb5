"""What a new user meets in the first hour, run as they run it: the ``svasim`` command in a
subprocess. Mistakes get one line on stderr and a non-zero exit, never a traceback;
reading never creates; numbers read the same everywhere; output fits 80 columns and pipes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from svasim.model.transition import Transition
from svasim.store import Store

from .processes import SVASIM, up

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def svasim(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the command with its output in pipes (COLUMNS as a pipe user's shell would leave it)."""
    base = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
    return subprocess.run(
        [*SVASIM, *args], capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})}
    )


def on_terminal(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    """Run the command as if on a terminal ``columns`` wide (Rich honours FORCE_COLOR)."""
    r = svasim(*args, env={"FORCE_COLOR": "1", "COLUMNS": str(columns)})
    r.stdout, r.stderr = ANSI.sub("", r.stdout), ANSI.sub("", r.stderr)
    return r


def one_line_error(r: subprocess.CompletedProcess) -> str:
    """The single error line of a failed command (asserting that is all there is)."""
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[str, str, str]:
    """(store URL, run id, output) of one demo run."""
    db = f"sqlite:///{tmp_path_factory.mktemp('first-hour') / 'svasim.db'}"
    r = svasim("demo", "--db", db, env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = re.search(r"run ([0-9a-f]{12}) in", r.stdout).group(1)
    return db, run_id, r.stdout


# -- starting: one line, never a traceback ----------------------------------------------------


@pytest.mark.parametrize("command", [["up"], ["demo"], ["db", "upgrade"]])
@pytest.mark.parametrize("url", ["nonsense://x", "sqlite:////no/such/dir/x.db"])
def test_a_bad_store_url_is_one_line_on_stderr(command: list[str], url: str) -> None:
    line = one_line_error(svasim(*command, "--db", url, *(["--port", "0"] if command == ["up"] else [])))
    assert url in line


@pytest.mark.parametrize("command", [["up", "--port", "0"], ["demo"]])
@pytest.mark.parametrize(
    "variable, value, named", [("SVASIM_EARLY_FREE", "yes", "SVASIM_EARLY_FREE"), ("SVASIM_PORT", "abc", "SVASIM_PORT")]
)
def test_a_malformed_environment_variable_is_one_line_naming_it(
    tmp_path: Path, command: list[str], variable: str, value: str, named: str
) -> None:
    r = svasim(*command, "--db", f"sqlite:///{tmp_path / 'x.db'}", env={variable: value})
    assert named in one_line_error(r)


def test_a_busy_port_is_one_line_and_records_nothing(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = one_line_error(svasim("up", "--port", str(port), "--db", f"sqlite:///{db}"))
    assert str(port) in line and "in use" in line


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize("command", ["up", "serve"])
def test_a_port_past_65535_is_refused_not_wrapped(tmp_path: Path, how: str, command: str) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    if how == "flag":
        r = svasim(command, "--port", "70000", "--db", db)
        assert r.returncode == 2 and "70000" not in r.stdout and "65535" in r.stderr
    else:
        assert "70000" in one_line_error(svasim(command, "--db", db, env={"SVASIM_PORT": "70000"}))
    assert not (tmp_path / "p.db").exists()


# -- reading never creates, errors go to stderr -----------------------------------------------


@pytest.mark.parametrize(
    "command", [["trace", "runs"], ["trace", "show", "r"], ["trace", "state", "r"], ["replay", "r"], ["export", "r"]]
)
def test_reading_a_store_that_is_not_there_is_an_error_and_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "svasmi.db"
    extra = ["-o", str(tmp_path / "out.json")] if command[0] == "export" else []
    line = one_line_error(svasim(*command, "--db", f"sqlite:///{typo}", *extra))
    assert "no store" in line
    assert not typo.exists()


def test_trace_runs_lists_the_newest_first(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with Store.open(db) as store:
        ids = [
            store.create_run(name=name, config={}, policy="lazy-resource-exception", seed=0, version="0").id
            for name in ("first", "second", "third")
        ]
    out = svasim("trace", "runs", "--db", db).stdout
    assert [m for m in re.findall(r"\b(first|second|third)\b", out)] == ["third", "second", "first"]
    # In 80 columns the ids, which a user copies into the next command, stay whole.
    shown = on_terminal("trace", "runs", "--db", db).stdout
    assert all(len(ln) <= 80 for ln in shown.splitlines()) and "…" not in shown
    assert [m for m in re.findall(r"\b[0-9a-f]{12}\b", shown)] == ids[::-1]
    assert shown.count("lazy-resource-exception") == 3


# -- trace show and state ----------------------------------------------------------------------


def test_trace_state_refuses_a_point_outside_the_run(demo: tuple[str, str, str]) -> None:
    db, run_id, _ = demo
    with Store.open(db) as store:
        last = store.get_run(run_id).event_count
    for at in ("-5", str(last + 1), str(2**63)):
        line = one_line_error(svasim("trace", "state", run_id, "--db", db, "--at", at))
        assert at in line
    assert svasim("trace", "state", run_id, "--db", db, "--at", str(last)).returncode == 0
    assert svasim("trace", "state", run_id, "--db", db, "--at", "0").stdout.count("\n") == 1  # nothing yet


def test_trace_show_refuses_a_range_that_ends_before_it_starts(demo: tuple[str, str, str]) -> None:
    db, run_id, _ = demo
    assert "--to 5" in one_line_error(svasim("trace", "show", run_id, "--db", db, "--from", "10", "--to", "5"))
    assert "--from" in one_line_error(svasim("trace", "show", run_id, "--db", db, "--from", str(2**63 + 1)))


def test_trace_show_says_how_many_events_there_are_and_how_to_see_more(demo: tuple[str, str, str]) -> None:
    db, run_id, _ = demo
    with Store.open(db) as store:
        total = store.get_run(run_id).event_count
    r = svasim("trace", "show", run_id, "--db", db, "--limit", "30")
    lines = r.stdout.splitlines()
    assert f"{total} events" in lines[0] and "30 shown" in lines[0]
    assert "<-N: caused by event N" in lines[0]
    assert lines[1].split()[:5] == ["seq", "cause", "svc", "entity", "kind"]
    events = [ln for ln in lines[2:] if re.match(r"\s+\d+ ", ln)]
    assert [int(ln.split()[0]) for ln in events] == list(range(1, 31))
    assert "--from 31" in lines[-1]
    # The suggested command shows the rest.
    r = svasim("trace", "show", run_id, "--db", db, "--from", "31", "--limit", str(total))
    assert "stopped at" not in r.stdout and f"{total - 30} shown" in r.stdout


def _numbers_run(db: str) -> str:
    """A run whose fields hold big counts and addresses, recorded both ways protobuf and the
    model write them."""
    with Store.open(db) as store:
        run = store.create_run(name="numbers", config={}, policy="linux-5.18", seed=0, version="0")
        request = {"method": "cpu.ReadMemory", "request": {"pid": "3", "address": "139637972987904", "length": "65536"}}
        store.append(
            run.id,
            [
                Transition("cpu", "client", "input", after=request),
                Transition("cpu", "cpu/0", "k", after={"count": 70000, "start": 0x7F0000000000}, cycles=100000),
                Transition("cpu", "cpu/0", "k", after={"count": 65535, "start": 4096}, cycles=65535),
            ],
        )
        return run.id


def test_numbers_read_the_same_everywhere_addresses_hex_counts_decimal(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'n.db'}"
    run_id = _numbers_run(db)
    show = svasim("trace", "show", run_id, "--db", db).stdout
    # The request's address, sent as a decimal string by protobuf JSON, reads as an address.
    assert f'"address":"{139637972987904:#x}"' in show and '"length":65536' in show and '"pid":3' in show
    # Counts and cycles stay decimal on both sides of 65536; addresses are hex at any size.
    assert '"count":70000' in show and "+100000c" in show and '"count":65535' in show and "+65535c" in show
    assert '"start":"0x7f0000000000"' in show and '"start":"0x1000"' in show
    state = svasim("trace", "state", run_id, "--db", db, "--at", "2").stdout
    assert '"count":70000' in state and '"start":"0x7f0000000000"' in state


# -- replay --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        {"method": "cpu.Mmap", "request": {"pid": "not a number", "length": "4096"}},
        {"method": "cpu.NoSuchMethod", "request": {}},
        {"method": "cpu.Mmap", "request": ["not", "an", "object"]},
    ],
)
def test_replay_of_an_input_that_does_not_decode_is_one_line(tmp_path: Path, request_: dict) -> None:
    db = f"sqlite:///{tmp_path / 'bad.db'}"
    with Store.open(db) as store:
        run = store.create_run(name="bad", config={}, policy="linux-5.18", seed=0, version="0")
        store.append(run.id, [Transition("cpu", "client", "input", after={"method": "cpu.CreateProcess"})])
        store.append(run.id, [Transition("cpu", "client", "input", after=request_)])
    assert "seq 2" in one_line_error(svasim("replay", "bad", "--db", db))
    assert "seq 2" in one_line_error(svasim("replay", "bad", "--db", db, "--policy", "eager-switch-mm"))
    with Store.open(db) as store:
        assert [r.name for r in store.list_runs()] == ["bad"]  # the what-if left nothing behind


def test_a_what_if_replay_that_refuses_inputs_warns_how_many(demo: tuple[str, str, str]) -> None:
    db, run_id, _ = demo
    r = svasim("replay", run_id, "--db", db, "--cpus", "1", "--name", "one-cpu")
    assert r.returncode == 0, r.stderr
    with Store.open(db) as store:
        new = store.get_run("one-cpu")
        before = len(store.events(run_id, kind="request.rejected", limit=None))
        after = len(store.events(new.id, kind="request.rejected", limit=None))
        n_inputs = len(store.events(run_id, kind="input", limit=None))
        n_replayed = len(store.events(new.id, kind="input", limit=None))
    assert after > before
    # A refused request is recorded as request.rejected, or (refused before it is
    # recorded) leaves no input event in the what-if run.
    refused = (after - before) + (n_inputs - n_replayed)
    warning = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and f"{refused} of {n_inputs} inputs were refused" in warning[0]
    # A what-if that changes nothing refuses nothing and warns of nothing.
    r = svasim("replay", run_id, "--db", db, "--policy", "linux-5.18", "--name", "same")
    assert r.returncode == 0 and "warning" not in r.stderr


# -- 80 columns and pipes ---------------------------------------------------------------------

POLICIES = ["eager-switch-mm", "eager-switch-mm-cmp", "lazy-resource-exception", "linux-5.10", "linux-5.18"]
LABELS = ["cache lines dirtied (switch path)", "switch_mm (CR3 writes)", "cycles per context switch"]


def test_compare_in_80_columns_keeps_names_whole_and_labels_on_one_line() -> None:
    r = on_terminal("compare", "--workload", "one-heavy-submitter")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(len(ln.rstrip()) <= 80 for ln in lines), max(lines, key=len)
    assert "…" not in r.stdout
    for label in LABELS:
        assert any(label in ln for ln in lines), label
    # Each policy's name heads a column, folded only after its hyphens. The headers are
    # right-aligned: the pieces of one name end in the same column of the lines above a rule.
    headers = []
    for i, ln in enumerate(lines):
        if not ln.strip() or set(ln.strip()) != {"─"}:
            continue
        pieces: dict[int, list[str]] = {}
        j = i - 1
        while j >= 0 and lines[j].strip() and "workload" not in lines[j]:
            for m in re.finditer(r"\S+", lines[j]):
                pieces.setdefault(m.end(), []).insert(0, m.group())
            j -= 1
        headers += ["".join(p) for _, p in sorted(pieces.items())]
    assert sorted(headers) == POLICIES


def test_compare_in_a_pipe_prints_one_table_with_whole_names() -> None:
    r = svasim("compare", "--workload", "one-heavy-submitter")
    assert r.returncode == 0 and "…" not in r.stdout
    header = next(ln for ln in r.stdout.splitlines() if "linux-5.18" in ln)
    assert header.split() == POLICIES
    for label in LABELS:
        assert any(ln.strip().startswith(label) for ln in r.stdout.splitlines())


def test_the_demo_s_suggested_command_is_a_line_of_its_own_that_can_be_pasted(demo: tuple[str, str, str]) -> None:
    db, run_id, out = demo
    lines = out.splitlines()
    command = f"svasim trace show {run_id} --db {db}"
    assert len(command) > 80  # the store path of a test is long: it would wrap
    assert any(ln.strip() == command for ln in lines)


def test_compare_refuses_a_plot_it_cannot_write_before_running_anything() -> None:
    line = one_line_error(svasim("compare", "--plot", "/no/such/dir/x.png"))
    assert "/no/such/dir" in line


def test_health_of_an_unknown_service_says_so(tmp_path: Path) -> None:
    with up(f"sqlite:///{tmp_path / 'h.db'}") as (addr, _):
        line = one_line_error(svasim("health", "--addr", addr, "--service", "nosuch"))
        assert "'nosuch'" in line and "svasim.cpu.v1.CpuService" in line
        assert svasim("health", "--addr", addr, "--service", "svasim.cpu.v1.CpuService").returncode == 0


# -- progress ------------------------------------------------------------------------------------


def test_long_work_shows_progress_on_a_terminal_and_is_quiet_in_a_pipe(
    demo: tuple[str, str, str], tmp_path: Path
) -> None:
    db, run_id, _ = demo
    exported = tmp_path / "run.jsonl"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    for args, words in (
        (["replay", run_id, "--db", db], "replaying run"),
        (["trace", "state", run_id, "--db", db], "folding run"),
        (["export", run_id, "--db", db, "--format", "jsonl", "-o", str(exported)], "exporting run"),
        (["import", str(exported), "--db", other], "importing"),
        (["compare", "--workload", "mostly-idle-threads"], "workload mostly-idle-threads"),
    ):
        piped = svasim(*args)
        assert piped.returncode == 0 and piped.stderr == "", (args, piped.stderr)
        shown = on_terminal(*args)
        assert shown.returncode == 0 and words in shown.stderr, (args, shown.stderr)
    assert json.loads(exported.read_text().splitlines()[0])["format"] == "svasim-run"
