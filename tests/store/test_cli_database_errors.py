"""Every command that takes `--db`: a database it cannot open is one `error:` line and exit 1, never a traceback;
a `--db` that names no database signalwise can open is exit 2, saying what to give.

The database that cannot be opened is a SQLite "file" that is a directory, which fails the same way on every
machine; a refused PostgreSQL login goes through the same `store.cli_engine` path.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support.cli import in_a_process, signalwise

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

MISSING_DIR_DB = "sqlite:////nonexistent-dir/signalwise.db"


def unopenable(tmp_path: Path) -> str:
    """A SQLite URL whose file is a directory: the driver cannot open it."""
    return f"sqlite:///{tmp_path}"


def _cli(*args, cwd):
    """In this process: a command that only reads and writes the store, or a run refused before it starts SUMO."""
    return signalwise(*args, cwd=cwd)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return execute_run(RunConfig(scenario="single", controller="fixed", duration_s=60, emissions=False),
                       tmp_path_factory.mktemp("published") / "run").run_dir


@pytest.mark.parametrize("args", [  # db purge and keys list refuse a missing file before opening it (below)
    ["db", "upgrade"],
    ["models", "add", "{run}"],
    ["publish", "{run}"],
    ["events", "import", "{run}/events.csv"],
    ["ingest", "{records}"],
])
def test_a_database_that_cannot_be_opened_is_one_line_and_exit_1(tmp_path, run_dir, args):
    records = tmp_path / "r.jsonl"
    records.write_text("{}\n")
    args = [a.format(run=run_dir, records=records) for a in args]
    p = _cli(*args, "--db", unopenable(tmp_path), cwd=tmp_path)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr + p.stdout
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot ") and "unable to open database file" in errors[0]


@pytest.mark.parametrize("command", [["db", "current"], ["keys", "list"], ["keys", "revoke", "ops"],
                                     ["db", "purge", "--dry-run"], ["db", "purge"], ["models", "history"],
                                     ["models", "show", "v1"], ["models", "rollback"], ["models", "remove", "v1"],
                                     ["models", "deploy", "v1"]])
def test_a_command_that_only_reads_or_removes_names_a_missing_database_file_instead_of_creating_it(tmp_path, command):
    """Asking what a database holds, or removing from it, must not leave an empty database behind a typo."""
    missing = tmp_path / "typo.db"
    p = _cli(*command, "--db", f"sqlite:///{missing}", cwd=tmp_path)
    assert p.returncode == 1 and f"error: {missing}: no such database file" in p.stderr, p.stderr
    assert not missing.exists()


def test_db_current_names_a_missing_database_file_instead_of_creating_it(tmp_path):
    missing = tmp_path / "typo.db"
    p = _cli("db", "current", "--db", MISSING_DIR_DB, cwd=tmp_path)
    assert p.returncode == 1 and "no such database file" in p.stderr and "Traceback" not in p.stderr
    assert _cli("db", "upgrade", "--db", f"sqlite:///{missing}", cwd=tmp_path).returncode == 0
    p = _cli("db", "current", "--db", f"sqlite:///{missing}", cwd=tmp_path)
    assert p.returncode == 0 and "(newest: " in p.stdout


@pytest.mark.parametrize("command", [
    ["run", "-s", "single", "--controller", "fixed", "--duration", "60", "--run-dir", "out/r"],
    ["compare", "-s", "single", "--controllers", "fixed,max-pressure", "--seeds", "1", "--duration", "60",
     "--out", "out/c"],
])
def test_run_and_compare_open_the_database_before_simulating_anything(tmp_path, command):
    # compare checks the network with SUMO first (one simulation per process): in a process of its own
    p = (in_a_process if command[0] == "compare" else _cli)(*command, "--db", unopenable(tmp_path), cwd=tmp_path)
    assert p.returncode == 1 and "error: cannot open database" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()  # nothing simulated to be lost


@pytest.mark.parametrize(("db", "says"), [
    ("{tmp}/x.db", "is not a database URL: a SQLite file is sqlite:///relative/path.db or sqlite:////absolute/path.db"),
    ("mysql://x@127.0.0.1/y", "mysql: signalwise stores in SQLite (sqlite:///file.db) or PostgreSQL"),
    ("postgresql+psycopg2://x@127.0.0.1/y", "postgresql+psycopg2: signalwise reaches PostgreSQL through psycopg 3: "
     "give postgresql://user@host/dbname"),
    ("sqlite:///{tmp}/nodir/x.db", "nodir/x.db: no such directory"),
])
@pytest.mark.parametrize("command", [["db", "upgrade"], ["run", "-s", "single", "--duration", "60", "--run-dir", "out/r"]])
def test_a_db_that_names_no_database_says_what_to_give_and_exits_2(tmp_path, db, says, command):
    p = _cli(*command, "--db", db.format(tmp=tmp_path), cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], p.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "nodir").exists()


@pytest.mark.slow
def test_publish_takes_a_compare_directory_as_every_run_in_it(tmp_path):
    out = tmp_path / "cmp"
    p = in_a_process("compare", "-s", "single", "--controllers", "fixed,max-pressure", "--seeds", "2",
                     "--duration", "60", "--out", str(out), cwd=tmp_path)  # runs in worker processes
    assert p.returncode == 0, p.stderr
    db = tmp_path / "pub.db"
    p = _cli("publish", str(out), "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "stored 4 run(s)" in p.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from runs").fetchone()[0] == 4
    (tmp_path / "empty").mkdir()
    p = _cli("publish", str(tmp_path / "empty"), "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert p.returncode == 2 and "not a complete run directory" in p.stderr
