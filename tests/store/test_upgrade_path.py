"""Moving a store written by an older release to this one, and back (docs/store.md#upgrades).

The old store is a fresh database migrated to 0016 (the revision the release before 0017 left) holding a run,
a hi-res event and API keys, two of them named as records name other things (the old release accepted them).
A migration waits a bounded time behind another transaction's table lock and then changes nothing (PostgreSQL);
a --dry-run never migrates; a command that migrates a store holding data says so; `db downgrade` takes a store
back; `keys list`'s hint acts on the database it listed. SQLite always, PostgreSQL when 127.0.0.1:5432 answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shlex
import threading
import time

import pytest
from sqlalchemy import inspect, text
from support.cli import signalwise
from support.databases import isolated_database, postgres_unavailable_reason

from signalwise.store import (
    bulk_insert_events,
    create_store_engine,
    current_revision,
    head_revision,
    revisions,
    upgrade,
)
from signalwise.store.key_commands import masked_url

OLD = "0016"
#: keys as 0016's `api_keys` holds them: (id, name, scopes)
OLD_KEYS = [("0a0a0a0a0a", "ops", "read operate"), ("0b0b0b0b0b", "restart", "operate"),
            ("0c0c0c0c0c", "cli:foo", "read")]


def _old_store(url: str):
    """The database at `url` as the release before 0017 left it, with rows in it; its engine (not cached)."""
    engine = create_store_engine(url)
    upgrade(engine, OLD)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO runs (simulation_id, created_at) VALUES ('OLD-RUN', CURRENT_TIMESTAMP)"))
        for key_id, name, scopes in OLD_KEYS:
            conn.execute(text("INSERT INTO api_keys (id, name, scopes, secret_sha256, created_at) "
                              "VALUES (:id, :name, :scopes, :digest, CURRENT_TIMESTAMP)"),
                         {"id": key_id, "name": name, "scopes": scopes,
                          "digest": hashlib.sha256(key_id.encode()).hexdigest()})
    bulk_insert_events(engine, [(dt.datetime(2026, 5, 4, 8), "D1", 1, 2)])
    return engine


def _count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.mark.parametrize("command", [["db", "purge", "--dry-run"], ["db", "forget", "OLD-RUN", "--dry-run"]])
def test_a_dry_run_does_not_migrate_an_old_store_and_says_what_to_do(db_url, tmp_path, command):
    engine = _old_store(db_url)
    p = signalwise(*command, "--db", db_url, cwd=tmp_path)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert f"is at {OLD}, this release needs {head_revision()}: back it up, then signalwise db upgrade" in p.stderr
    assert p.stdout == "" and "Traceback" not in p.stderr
    assert current_revision(engine) == OLD
    engine.dispose()


@pytest.mark.slow
def test_a_command_that_migrates_an_old_store_says_so_and_a_new_store_says_nothing(db_url, tmp_path):
    engine = _old_store(db_url)
    p = signalwise("keys", "list", "--db", db_url, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"upgraded {OLD} -> {head_revision()}" in p.stderr
    assert f"signalwise db downgrade {OLD} takes it back" in p.stderr
    assert current_revision(engine) == head_revision() and _count(engine, "api_keys") == len(OLD_KEYS)
    again = signalwise("keys", "list", "--db", db_url, cwd=tmp_path)
    assert again.returncode == 0 and "upgraded" not in again.stderr
    fresh = tmp_path / "fresh.db"
    made = signalwise("keys", "create", "--name", "ops", "--scope", "read", "--db", f"sqlite:///{fresh}", cwd=tmp_path)
    assert made.returncode == 0 and "upgraded" not in made.stderr, made.stderr
    engine.dispose()


def test_db_upgrade_says_when_there_was_nothing_to_do(db_url, tmp_path):
    engine = _old_store(db_url)
    first = signalwise("db", "upgrade", "--db", db_url, cwd=tmp_path)
    assert first.returncode == 0 and first.stdout == f"schema {OLD} -> {head_revision()}\n", first.stderr
    second = signalwise("db", "upgrade", "--db", db_url, cwd=tmp_path)
    assert second.returncode == 0 and second.stdout == f"schema already at {head_revision()}\n", second.stderr
    engine.dispose()


def test_db_downgrade_takes_a_store_back_and_refuses_without_yes(db_url, tmp_path):
    engine = _old_store(db_url)
    upgrade(engine)
    head = head_revision()
    asked = signalwise("db", "downgrade", OLD, "--db", db_url, cwd=tmp_path)
    assert asked.returncode == 2 and "add --yes" in asked.stderr and "back it up" in asked.stderr, asked.stderr
    listed = signalwise("db", "downgrade", OLD, "--dry-run", "--db", db_url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    undone = re.findall(r"^  (\d{4})  \S", listed.stdout, re.MULTILINE)
    assert undone == [r for r in reversed(revisions()) if r > OLD] and len(undone) >= 4 and f"from {head} back to {OLD}" in listed.stdout
    assert current_revision(engine) == head  # asking and listing changed nothing
    done = signalwise("db", "downgrade", OLD, "--yes", "--db", db_url, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == f"schema {head} -> {OLD}\n", done.stderr
    assert current_revision(engine) == OLD
    assert "created_by" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}  # 0017's column went
    assert (_count(engine, "runs"), _count(engine, "api_keys"), _count(engine, "hires_events")) == (1, 3, 1)
    engine.dispose()


@pytest.mark.slow
def test_db_downgrade_says_how_many_values_go_and_that_sqlite_ids_can_be_given_again(db_url, tmp_path):
    """Two violations stored with their source, frame and image digest, one stored with none (before 0018), and
    a run with its writer (0022): back to 0016 those values go, counted; 0017's key trail holds none; SQLite's `violations` loses AUTOINCREMENT."""
    from signalwise.store.violations import insert_violations

    engine = _old_store(db_url)
    upgrade(engine)
    at = dt.datetime(2026, 11, 28, 10, tzinfo=dt.UTC)
    base = {"camera_id": "cam-1", "device_id": "B1", "approach": "north", "kind": "red_light"}
    assert insert_violations(engine, [
        {**base, "occurred_at": at, "track_id": k, "source": "sha256:" + "ab" * 32, "frame": 10 * k,
         "evidence_sha256": "cd" * 32} for k in (1, 2)] + [{**base, "occurred_at": at, "track_id": 3}]) == 3
    listed = signalwise("db", "downgrade", OLD, "--dry-run", "--db", db_url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    # the run _old_store holds loses the writer 0022 records of it (`source`)
    assert ("dropping these values (a later signalwise db upgrade brings the columns and tables back empty):\n"
            "  runs: 1 row(s) lose source\n"
            "  violations: 2 row(s) lose evidence_sha256, frame and source\n") in listed.stdout, listed.stdout
    assert "api_keys" not in listed.stdout  # created_by and revoked_by hold nothing
    reused = "warning: violations loses AUTOINCREMENT (SQLite)"
    assert (reused in listed.stdout) == db_url.startswith("sqlite"), listed.stdout
    asked = signalwise("db", "downgrade", OLD, "--db", db_url, cwd=tmp_path)
    assert asked.returncode == 2 and "  violations: 2 row(s) lose evidence_sha256, frame and source" in asked.stderr
    assert current_revision(engine) == head_revision()  # counted, not changed
    engine.dispose()


@pytest.mark.parametrize(("target", "says"), [("0099", "0099: no such revision"),
                                              (head_revision(), f"schema already at {head_revision()}")])
def test_db_downgrade_refuses_a_revision_it_cannot_go_back_to(db_url, tmp_path, target, says):
    engine = create_store_engine(db_url)
    upgrade(engine)
    p = signalwise("db", "downgrade", target, "--yes", "--db", db_url, cwd=tmp_path)
    assert says in p.stdout + p.stderr and "Traceback" not in p.stderr
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_a_store_a_newer_release_upgraded_is_refused_saying_so(db_url, tmp_path):
    engine = create_store_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    p = signalwise("keys", "list", "--db", db_url, cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "is at revision 9999, which this release does not know" in p.stderr and "Traceback" not in p.stderr
    engine.dispose()


@pytest.mark.slow
def test_the_reserved_name_hint_acts_on_the_database_listed(db_url, tmp_path):
    engine = _old_store(db_url)
    p = signalwise("keys", "list", "--db", db_url, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if line.startswith("warning: key ")]
    assert len(warnings) == 2, p.stderr
    restart, cli_named = sorted(warnings, key=lambda line: "cli:foo" not in line, reverse=True)
    assert ("which change logs and readers use for a lasting change replayed when a live run starts again: what "
            "the key does") in restart
    assert ("'cli:foo', which change logs and readers read as one of their own (cli:… names what the command line "
            "and the model registry record): what the key does") in cli_named
    hint = re.search(r"`(signalwise keys revoke 0b0b0b0b0b[^`]*)`", restart).group(1)
    assert hint == f"signalwise keys revoke 0b0b0b0b0b --db {shlex.quote(masked_url(db_url))}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # pasted as printed, from another directory: it acts on the store listed, not ./signalwise.db
    revoked = signalwise(*shlex.split(hint)[1:], cwd=elsewhere)
    assert revoked.returncode == 0 and "revoked 0b0b0b0b0b 'restart'" in revoked.stdout, revoked.stderr
    assert not (elsewhere / "signalwise.db").exists()
    engine.dispose()


@pytest.fixture
def postgres_url(tmp_path):
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(f"a table lock held by another transaction is a PostgreSQL wait (SQLite's is its busy timeout): "
                    f"{reason}")
    with isolated_database("postgresql", tmp_path) as url:
        yield url


def _hold_violations(url: str, held: threading.Event, release: threading.Event, out: dict) -> None:
    """A reader (a report, a BI tool, pg_dump) with a transaction open on `violations`: ACCESS SHARE until it
    commits, at `release` or after 20 s."""
    reader = create_store_engine(url)
    with reader.connect() as conn:
        out["pid"] = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        conn.execute(text("SELECT count(*) FROM violations")).scalar_one()
        held.set()
        release.wait(20)
        conn.commit()
    reader.dispose()


@pytest.mark.slow
def test_a_migration_behind_another_transactions_lock_gives_up_within_the_timeout_and_changes_nothing(
        postgres_url, tmp_path):
    from signalwise.store.engine import MIGRATION_LOCK_TIMEOUT_S

    engine = _old_store(postgres_url)
    held, release, reader = threading.Event(), threading.Event(), {}
    holder = threading.Thread(target=_hold_violations, args=(postgres_url, held, release, reader), daemon=True)
    holder.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        p = signalwise("db", "upgrade", "--db", postgres_url, cwd=tmp_path)
        waited_s = time.monotonic() - started
    finally:
        release.set()
        holder.join(30)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert MIGRATION_LOCK_TIMEOUT_S - 0.5 <= waited_s < MIGRATION_LOCK_TIMEOUT_S + 3, waited_s
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, p.stderr
    assert f"gave up after waiting {MIGRATION_LOCK_TIMEOUT_S:g} s for a table lock held by pid {reader['pid']}" \
        in errors[0]
    assert "SELECT count(*) FROM violations) on violations" in errors[0]
    assert f"nothing was changed, the store is still at {OLD}" in errors[0] and "db upgrade again" in errors[0]
    assert current_revision(engine) == OLD
    assert "created_by" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}  # 0017 rolled back too
    retried = signalwise("db", "upgrade", "--lock-timeout", "2", "--db", postgres_url, cwd=tmp_path)
    assert retried.returncode == 0 and retried.stdout == f"schema {OLD} -> {head_revision()}\n", retried.stderr
    engine.dispose()
