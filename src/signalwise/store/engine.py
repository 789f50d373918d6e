"""Engines: one per URL, migrated to head on first use.

SQLite gets WAL (readers never block the writer), `synchronous=NORMAL`
(durable at checkpoints, much faster than FULL under WAL), foreign keys on and
a busy timeout so the API and an ingest command can share a file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def database_url(url: str | None = None) -> str:
    """Explicit URL, else the settings' (`SIGNALWISE_DATABASE_URL`), else `signalwise.db` here."""
    if not url:
        from .settings import Settings

        url = Settings().database_url
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class DatabaseURLError(ValueError):
    """A `--db` that names no database signalwise can open: bad input, said before any connection is tried."""


def parsed_url(url: str) -> URL:
    """`url` parsed, or why it cannot name a store: SQLAlchemy's own errors ('Could not parse SQLAlchemy URL',
    'No module named MySQLdb', 'unable to open database file') do not say what to give instead."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseURLError(f"{url!r} is not a database URL: a SQLite file is sqlite:///relative/path.db or "
                               "sqlite:////absolute/path.db, PostgreSQL postgresql://user@host/dbname") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseURLError(f"{parsed.drivername}: signalwise stores in SQLite (sqlite:///file.db) or "
                               "PostgreSQL (postgresql://user@host/dbname)")
    if backend == "postgresql" and parsed.get_driver_name() != "psycopg":
        # SQLAlchemy would import that driver (psycopg2, asyncpg, pg8000), which signalwise neither ships nor uses
        raise DatabaseURLError(f"{parsed.drivername}: signalwise reaches PostgreSQL through psycopg 3: give "
                               "postgresql://user@host/dbname (or postgresql+psycopg://user@host/dbname)")
    name = parsed.database or ""
    if backend == "sqlite" and name not in ("", ":memory:") and not name.startswith("file:"):
        folder = Path(name).parent
        if not folder.is_dir():
            raise DatabaseURLError(f"{name}: no such directory {folder}/ for the database file")
    return parsed


#: seconds a PostgreSQL connection attempt may take, unless the URL says (`?connect_timeout=`)
PG_CONNECT_TIMEOUT_S = 5
#: libpq's TCP settings of every PostgreSQL connection, unless the URL says: an open connection whose host stops
#: answering (its packets dropped) is found dead by the keepalives (idle for 30 s, then 3 probes 10 s apart) or by
#: `tcp_user_timeout` (data sent and not acknowledged for 30 s), not after the system's TCP timeout (about 15 min).
#: A host that acknowledges and never answers (a frozen proxy) is what the live writer's own watch is for
PG_TCP_SETTINGS = {"keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "3",
                   "tcp_user_timeout": "30000"}


def create_store_engine(url: str | None = None) -> Engine:
    """A new engine with our pragmas; not migrated, not cached."""
    url = database_url(url)
    parsed = parsed_url(url)
    kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        _install_sqlite_pragmas(engine, wal=not memory)
        if not memory:
            event.listen(engine, "do_connect", _sqlite_file_private)
        return engine
    # JIT off: our queries are short (index probes, roll-up reads) and JIT compiling them cost
    # 30 ms per analytics call, measured, before any row was read. Kept beside the URL's own options
    options = " ".join(filter(None, (parsed.query.get("options"), "-c jit=off")))
    connect_args: dict = {"options": options}
    if "connect_timeout" not in parsed.query:
        # a database host that drops packets would hold each key check, /health and write for the system's TCP
        # timeout (minutes); the URL's own `connect_timeout` wins
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    connect_args.update({key: value for key, value in PG_TCP_SETTINGS.items() if key not in parsed.query})
    kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args)
    return create_engine(url, **kwargs)


#: the mode a SQLite store is created with: it holds the key digests, the evidence access log and the records;
#: SQLite gives its -wal and -shm files the mode of the database file
SQLITE_FILE_MODE = 0o600


def _sqlite_file_private(_dialect, _record, cargs, cparams) -> None:  # noqa: ANN001 - SQLAlchemy's do_connect
    """Create a SQLite store's file, when it is not there, readable and writable by its owner only (sqlite3 would
    create it 0644 under the usual umask 022, for every local user to read). A file that is there keeps its mode,
    and a URI (`file:...?mode=ro`) is left to SQLite."""
    path = cargs[0] if cargs else cparams.get("database")
    if not isinstance(path, str) or cparams.get("uri") or path in ("", ":memory:") or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE))
    except (FileExistsError, FileNotFoundError, NotADirectoryError, PermissionError):
        pass  # there already, or SQLite says what is wrong with where it is to go


def _install_sqlite_pragmas(engine: Engine, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        cur = dbapi_conn.cursor()
        # the wait first: switching a new, empty file to WAL takes its lock, and processes opening it at once
        # (a server and an ingest started together) would otherwise be refused "database is locked" at once
        cur.execute("PRAGMA busy_timeout=30000")
        if wal:
            _journal_mode_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
        cur.execute("PRAGMA mmap_size=268435456")
        cur.close()


def _journal_mode_wal(cur) -> None:  # noqa: ANN001 - a sqlite3 cursor
    """Switch to WAL, waiting for another process doing the same: SQLite answers a journal-mode change that meets
    another connection's lock with "database is locked" at once, without its busy handler, so processes opening a
    new store at the same moment (a server and an ingest started together) would fail."""
    import sqlite3

    deadline = time.monotonic() + 30.0
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _alembic_config(connection=None):  # noqa: ANN001
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


#: PostgreSQL advisory lock a migrating process holds (any constant all signalwise processes share)
MIGRATION_LOCK_KEY = 0x5167_0001
#: seconds each statement of a PostgreSQL migration may wait for a table lock (`lock_timeout`). A migration
#: holds each table it has altered until it commits: waiting without end behind a reader of the next table
#: (a report's open transaction, a pg_dump) kept every API key check waiting on `api_keys` for as long
MIGRATION_LOCK_TIMEOUT_S = 5.0
#: SQLSTATE of PostgreSQL's "canceling statement due to lock timeout"
_LOCK_NOT_AVAILABLE = "55P03"

log = logging.getLogger("signalwise.store")


class MigrationLockTimeout(RuntimeError):
    """A migration gave up waiting for a table lock another transaction holds; it rolled back whole."""


class StoreNotAtHead(RuntimeError):
    """An existing store at another revision than this release's, opened by a command that does not migrate."""


def _lock_migrations(conn, lock_timeout_s: float = MIGRATION_LOCK_TIMEOUT_S) -> None:  # noqa: ANN001
    """Hold the database's migration lock until `conn`'s transaction ends.

    Two processes opening a new database at once (a server and an ingest)
    would otherwise both create its tables and one would fail; with the lock
    the second waits, then finds the schema at its revision and does nothing.
    On PostgreSQL each later lock wait is bounded by `lock_timeout_s` (0: none), set only once the migration lock
    is held, so that a second migrating process still waits for the first to finish.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{max(0, round(lock_timeout_s * 1000))}ms'")
        # a migration may build an index over every stored event: the `statement_timeout` a connection carries (the
        # live writer's) is for writes, not for this
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
    elif conn.dialect.name == "sqlite":
        dbapi = conn.connection.dbapi_connection
        if not dbapi.in_transaction:
            dbapi.cursor().execute("BEGIN IMMEDIATE")  # the write lock, waited for up to the busy timeout


def _migrate(engine: Engine, step: str, revision: str, lock_timeout_s: float) -> tuple[str | None, str | None]:
    """Run alembic's `step` ("upgrade" or "downgrade") to `revision` in one transaction under the migration lock:
    (the revision found under the lock, the revision left). A new, empty database taken to the newest revision is
    made from tables.py at once (`_create_at_head`) instead."""
    try:
        with engine.begin() as conn:
            _lock_migrations(conn, lock_timeout_s)
            before = _read_revision(conn)
            if step == "upgrade" and before is None and revision in ("head", head_revision()) and _is_empty(conn):
                _create_at_head(conn)
            else:
                from alembic import command

                getattr(command, step)(_alembic_config(conn), revision)
            return before, _read_revision(conn)
    except Exception as exc:
        if getattr(getattr(exc, "orig", exc), "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        raise MigrationLockTimeout(_lock_timeout_message(engine, exc, step, revision, lock_timeout_s)) from None


def create_if_new(engine: Engine, lock_timeout_s: float = MIGRATION_LOCK_TIMEOUT_S) -> bool:
    """Make the store at the newest revision when the database is new (no revision, none of the store's tables),
    under the migration lock; a database that holds a schema, whichever, is left as it is. Whether it made it."""
    with engine.begin() as conn:
        _lock_migrations(conn, lock_timeout_s)
        if _read_revision(conn) is not None or not _is_empty(conn):
            return False
        _create_at_head(conn)
        return True


def _is_empty(conn) -> bool:  # noqa: ANN001
    """Whether the database holds none of the store's tables (a PostgreSQL database may hold others' tables: those
    are left alone, and one named as ours stops the creation with the database's own error)."""
    from sqlalchemy import inspect

    from .tables import Base

    return not set(inspect(conn).get_table_names()) & set(Base.metadata.tables)


def _create_at_head(conn) -> None:  # noqa: ANN001
    """Make a new store from tables.py (its tables, indexes, checks and triggers) and record it at the newest
    revision, as alembic records one. The same schema as running every migration from the first, which a test
    holds table by table on SQLite and PostgreSQL, in a few hundredths of a second instead of alembic's import
    and twenty migrations (a few tenths, paid by the first command on every new store)."""
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table

    from .tables import Base

    Base.metadata.create_all(conn, checkfirst=False)
    version = Table("alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
                    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
    version.create(conn, checkfirst=True)  # a store downgraded to base keeps alembic's table, empty
    conn.execute(version.insert().values(version_num=head_revision()))


def _lock_timeout_message(engine: Engine, exc: Exception, step: str, revision: str, lock_timeout_s: float) -> str:
    """One line: what the migration waited for, who holds it, and that nothing changed."""
    target = head_revision() if revision == "head" else revision
    holders = _lock_holders(engine, getattr(exc, "statement", None) or "")
    return (f"{step} to {target} gave up after waiting {lock_timeout_s:g} s for a table lock "
            f"{'held by ' + holders if holders else 'another transaction holds'}; nothing was changed, the store "
            f"is still at {current_revision(engine) or 'empty'}: end that transaction (or stop the servers and "
            f"readers of the store), then run signalwise db {step} again (--lock-timeout S waits longer)")


def _lock_holders(engine: Engine, statement: str) -> str:
    """The other sessions holding locks on the store's tables, those the failed statement names first:
    `pid 4242 (psql, idle in transaction for 14 s: SELECT count(*) FROM violations) on violations`. Empty
    when they cannot be read (the message then says less, never fails for it)."""
    import re

    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT DISTINCT ON (a.pid, c.relname) a.pid, c.relname, a.application_name, a.state, "
                "extract(epoch FROM now() - a.xact_start)::int, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 60) "
                "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid() "
                "AND c.relkind IN ('r', 'p') AND c.relnamespace = current_schema()::regnamespace")).all()
    except Exception:  # noqa: BLE001 - a role that may not read pg_stat_activity: said without the holder
        return ""
    named = [r for r in rows if re.search(rf"\b{re.escape(r.relname)}\b", statement)]
    by_pid: dict[int, list] = {}
    for pid, table, app, state, held_s, query in named or rows:
        by_pid.setdefault(pid, [app, state, held_s, query, []])[4].append(table)
    return "; ".join(
        f"pid {pid} ({', '.join(filter(None, (app, f'{state} for {held_s} s' if held_s is not None else state)))}"
        f"{': ' + query if query else ''}) on {', '.join(sorted(tables))}"
        for pid, (app, state, held_s, query, tables) in by_pid.items())


def upgrade(engine: Engine, revision: str = "head",
            lock_timeout_s: float = MIGRATION_LOCK_TIMEOUT_S) -> tuple[str | None, str | None]:
    """Migrate the database behind `engine` to `revision` (default: the newest), one process at a time, all or
    nothing: (the revision it was at, the revision it is at). `MigrationLockTimeout` when a table lock is not
    had within `lock_timeout_s` (PostgreSQL)."""
    return _migrate(engine, "upgrade", revision, lock_timeout_s)


def downgrade(engine: Engine, revision: str,
              lock_timeout_s: float = MIGRATION_LOCK_TIMEOUT_S) -> tuple[str | None, str | None]:
    """Take the database behind `engine` back to `revision`, as `upgrade` does forward: what the later
    revisions added goes, with the data it held (their columns, tables and indexes)."""
    return _migrate(engine, "downgrade", revision, lock_timeout_s)


@dataclasses.dataclass(frozen=True)
class DowngradeLoss:
    """What a downgrade drops, counted in the store: the tables that go (their rows), the columns that go from
    the tables that stay (their values that are not NULL), and the SQLite tables that lose AUTOINCREMENT (their
    ids can be given out again)."""

    tables: dict[str, int]
    columns: dict[str, dict[str, int]]
    ids_reused: tuple[str, ...]


def downgrade_losses(engine: Engine, revision: str) -> DowngradeLoss:
    """What `downgrade(engine, revision)` would drop with the data in it. Each revision's schema is read from an
    empty in-memory SQLite store migrated to it: a migration says what it adds only by running."""
    from sqlalchemy import column, func, inspect, select, table

    gone_tables, gone_columns, lose_autoincrement = _schema_difference(current_revision(engine), revision)
    present = set(inspect(engine).get_table_names())
    tables: dict[str, int] = {}
    columns: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for name in sorted(gone_tables & present):
            tables[name] = conn.execute(select(func.count()).select_from(table(name))).scalar_one()
        for name, names in sorted(gone_columns.items()):
            if name in present:
                ordered = sorted(names)
                counts = conn.execute(select(*(func.count(column(c)) for c in ordered)).select_from(table(name))).one()
                columns[name] = dict(zip(ordered, map(int, counts), strict=True))
    reused = tuple(sorted(lose_autoincrement & present)) if engine.dialect.name == "sqlite" else ()
    return DowngradeLoss(tables, columns, reused)


def _schema_difference(current: str, target: str) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """(tables at `current` not at `target`, columns of the tables at both that `target` lacks, tables at both
    with AUTOINCREMENT at `current` only), from an empty SQLite store migrated to each in turn."""
    scratch = create_store_engine("sqlite://")
    try:
        upgrade(scratch, target)
        old_columns, old_auto = _sqlite_schema(scratch)
        upgrade(scratch, current)
        new_columns, new_auto = _sqlite_schema(scratch)
    finally:
        scratch.dispose()
    kept = new_columns.keys() & old_columns.keys()
    gone_columns = {t: new_columns[t] - old_columns[t] for t in kept if new_columns[t] - old_columns[t]}
    return set(new_columns) - set(old_columns), gone_columns, (new_auto - old_auto) & kept


def _sqlite_schema(engine: Engine) -> tuple[dict[str, set[str]], set[str]]:
    """{table: its columns} and the tables declared with AUTOINCREMENT, of a SQLite store."""
    from sqlalchemy import inspect

    with engine.connect() as conn:
        found = inspect(conn)
        columns = {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}
        auto = {name for name, sql in conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
                if sql and "AUTOINCREMENT" in sql.upper()}
    return columns, auto


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: empty), read with one query from alembic's own table.

    Every command that opens the store asks this; alembic's reader would import alembic first, a third of a
    second of each such command, for a database that is almost always at head already."""
    with engine.connect() as conn:
        return _read_revision(conn)


def _read_revision(conn) -> str | None:  # noqa: ANN001
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table("alembic_version"):
        return None
    found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(found) > 1:
        raise RuntimeError(f"the database is at several revisions at once ({', '.join(sorted(found))}); "
                           "signalwise's migrations are one line")
    return found[0] if found else None


def revisions() -> list[str]:
    """All revision ids, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def revision_summary(revision: str) -> str:
    """What a revision adds: its migration's docstring's first paragraph, on one line."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return " ".join((script.get_revision(revision).doc or "").split())


def head_revision() -> str:
    """The newest revision. Each migration's file is named by its revision id (0013_....py holds "0013"; a test
    holds alembic's own reading to this), so no migration script is imported to know it."""
    return max(_revision_ids())


def _revision_ids() -> set[str]:
    return {p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py")}


def shown_url(engine: Engine) -> str:
    """The engine's URL to print: its secrets as *** (`core.redaction.shown_url`)."""
    from ..core.redaction import shown_url as shown

    return shown(engine.url)


def get_engine(url: str | None = None, migrate: bool = True, create_new: bool = False) -> Engine:
    """The engine for `url` (see `database_url`), migrated to head on first use.

    A store that held a schema already is migrated with a warning on `signalwise.store` (stderr for a command):
    an older release cannot open it afterwards. `migrate=False` (a --dry-run) raises `StoreNotAtHead` instead;
    with `create_new` (a health probe) a new, empty database is still made at head (`create_if_new`): no
    release's data changes."""
    url = database_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_store_engine(url)
            try:
                _bring_to_head(engine, migrate, create_new)
            except BaseException:
                engine.dispose()
                raise
            _engines[url] = engine
        return engine


def _bring_to_head(engine: Engine, migrate: bool, create_new: bool = False) -> None:
    found, head = current_revision(engine), head_revision()
    if found == head:
        return
    if found is not None and found not in _revision_ids():
        raise StoreNotAtHead(f"the store {shown_url(engine)} is at revision {found}, which this release does not "
                             f"know (its newest is {head}): a newer release upgraded it; use that release, or take "
                             f"the store back with its signalwise db downgrade {head}")
    if not migrate:
        if create_new and found is None and create_if_new(engine):
            return
        raise StoreNotAtHead(f"the store {shown_url(engine)} is empty (no schema yet): signalwise db upgrade "
                             "creates it" if found is None else
                             f"the store {shown_url(engine)} is at {found}, this release needs {head}: back it up, "
                             "then signalwise db upgrade")
    before, after = upgrade(engine)
    if before is not None and before != after:  # a new database is created, not upgraded; nothing to say
        log.warning("store %s upgraded %s -> %s (an older release cannot open it from now on; signalwise db "
                    "downgrade %s takes it back)", shown_url(engine), before, after, before)


def dispose_engines(url: str | None = None) -> None:
    """Close the cached engine of `url`, or every cached engine (tests, shutdown)."""
    with _lock:
        urls = [database_url(url)] if url else list(_engines)
        for key in urls:
            engine = _engines.pop(key, None)
            if engine is not None:
                engine.dispose()


#: the tables a writer of runs and their records inserts into (checked for the INSERT privilege)
WRITTEN_TABLES = ("runs", "intersection_records", "signal_records", "hires_events", "alerts", "runtime_changes")


def why_read_only(engine: Engine, tables: tuple[str, ...] = WRITTEN_TABLES) -> str | None:
    """Why nothing can be written into the database behind `engine`, or None when it takes writes.

    Read-only is a property of the database, not an outage: PostgreSQL in a read-only transaction
    (`default_transaction_read_only`), a hot standby, or a role without INSERT on `tables` that exist;
    a SQLite file (or its directory) this process may not write, or opened `mode=ro`. Only reads: a
    database at the newest schema is checked, never created into."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with engine.connect() as conn:
            read_only, standby = conn.execute(text(
                "SELECT current_setting('transaction_read_only'), pg_is_in_recovery()")).one()
            if standby:
                return "it is a standby server (in recovery): it only reads"
            if read_only == "on":
                return "its transactions are read-only (default_transaction_read_only = on)"
            denied = [t for t in tables if conn.execute(text(
                "SELECT to_regclass(:t) IS NOT NULL AND NOT has_table_privilege(to_regclass(:t), 'INSERT')"),
                {"t": t}).scalar()]
            if denied:
                return f"role {conn.execute(text('SELECT current_user')).scalar()} may not insert into {', '.join(denied)}"
        return None
    if engine.dialect.name == "sqlite":
        import os

        url = engine.url
        if str(url.query.get("mode", "")) == "ro":
            return "it is opened read-only (mode=ro)"
        path = url.database
        if path in (None, "", ":memory:") or path.startswith("file:"):
            return None
        file = Path(path).absolute()
        if file.exists() and not os.access(file, os.W_OK):
            return f"{file} is read-only"
        if not os.access(file.parent, os.W_OK | os.X_OK):
            return f"its directory {file.parent} is read-only (SQLite writes its journal beside the file)"
    return None


def database_kind(engine: Engine) -> str:
    return engine.dialect.name

