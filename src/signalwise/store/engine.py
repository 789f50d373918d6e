"""Engines: one per URL, migrated to head on first use.

SQLite gets WAL (readers never block the writer), `synchronous=NORMAL`
(durable at checkpoints, much faster than FULL under WAL), foreign keys on and
a busy timeout so the API and an ingest command can share a file.
"""

from __future__ import annotations

import threading
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
    name = parsed.database or ""
    if backend == "sqlite" and name not in ("", ":memory:") and not name.startswith("file:"):
        folder = Path(name).parent
        if not folder.is_dir():
            raise DatabaseURLError(f"{name}: no such directory {folder}/ for the database file")
    return parsed


#: seconds a PostgreSQL connection attempt may take, unless the URL says (`?connect_timeout=`)
PG_CONNECT_TIMEOUT_S = 5


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
        return engine
    # JIT off: our queries are short (index probes, roll-up reads) and JIT compiling them cost
    # 30 ms per analytics call, measured, before any row was read. Kept beside the URL's own options
    options = " ".join(filter(None, (parsed.query.get("options"), "-c jit=off")))
    connect_args: dict = {"options": options}
    if "connect_timeout" not in parsed.query:
        # a database host that drops packets would hold each key check, /health and write for the system's TCP
        # timeout (minutes); the URL's own `connect_timeout` wins
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args)
    return create_engine(url, **kwargs)


def _install_sqlite_pragmas(engine: Engine, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        cur = dbapi_conn.cursor()
        if wal:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
        cur.execute("PRAGMA mmap_size=268435456")
        cur.close()


def _alembic_config(connection=None):  # noqa: ANN001
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


#: PostgreSQL advisory lock a migrating process holds (any constant all signalwise processes share)
MIGRATION_LOCK_KEY = 0x5167_0001


def _lock_migrations(conn) -> None:  # noqa: ANN001
    """Hold the database's migration lock until `conn`'s transaction ends.

    Two processes opening a new database at once (a server and an ingest)
    would otherwise both create its tables and one would fail; with the lock
    the second waits, then finds the schema at its revision and does nothing.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    elif conn.dialect.name == "sqlite":
        dbapi = conn.connection.dbapi_connection
        if not dbapi.in_transaction:
            dbapi.cursor().execute("BEGIN IMMEDIATE")  # the write lock, waited for up to the busy timeout


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind `engine` to `revision` (default: the newest), one process at a time."""
    from alembic import command

    with engine.begin() as conn:
        _lock_migrations(conn)
        command.upgrade(_alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: empty), read with one query from alembic's own table.

    Every command that opens the store asks this; alembic's reader would import alembic first, a third of a
    second of each such command, for a database that is almost always at head already."""
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
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


def head_revision() -> str:
    """The newest revision. Each migration's file is named by its revision id (0013_....py holds "0013"; a test
    holds alembic's own reading to this), so no migration script is imported to know it."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"))


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (see `database_url`), migrated to head on first use."""
    url = database_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_store_engine(url)
            if current_revision(engine) != head_revision():
                upgrade(engine)
            _engines[url] = engine
        return engine


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

