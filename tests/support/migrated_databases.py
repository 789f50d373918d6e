"""Databases at the newest schema already: a copy of one migrated once per process, for tests about what a store
holds and serves rather than about how it is created or upgraded.

Migrating an empty database to head runs every migration: about 0.2 s on SQLite and 0.5 to 2 s on PostgreSQL
(with the schema's drop after), paid by every test that takes conftest's `db_url`. Here the migration runs once
per test process, into a template; each test gets a copy of it: the SQLite file copied, the PostgreSQL schema
replayed from `pg_dump` of the template (tables, indexes, constraints, triggers, functions, sequences and
alembic's row, as the migrations left them) into a schema of its own, dropped afterwards. The copy is the
template exactly; a test about an empty store, or one at an older revision, takes `isolated_database`.
Without `pg_dump` (or when it fails), every PostgreSQL database is migrated as `isolated_database` does.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from signalwise.store import get_engine
from signalwise.store.engine import dispose_engines
from support.databases import POSTGRES_URL, isolated_database

_lock = threading.Lock()
#: kind -> the SQLite template's path, or the PostgreSQL schema's SQL with _PLACEHOLDER for its name (None: no
#: pg_dump, migrate each database instead)
_templates: dict[str, object] = {}
_PLACEHOLDER = "sw_test_template_placeholder"


def _sqlite_template() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="signalwise-template-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / "store.db"
    url = f"sqlite:///{path}"
    get_engine(url)
    dispose_engines(url)  # the last connection closed: the WAL is checkpointed into the file
    return path


def _postgres_template() -> str | None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return None
    try:
        with tempfile.TemporaryDirectory() as directory, isolated_database("postgresql", Path(directory)) as url:
            get_engine(url)
            dispose_engines(url)
            schema = make_url(url).query["options"].split("search_path=", 1)[1]
            server = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
            dumped = subprocess.run([pg_dump, "--dbname", server, "--schema", schema, "--no-owner",
                                     "--no-privileges", "--inserts"], capture_output=True, text=True, timeout=60)
        if dumped.returncode != 0 or f"CREATE SCHEMA {schema};" not in dumped.stdout:
            return None
        # psql's own commands (\restrict) are not SQL; the rest runs as one script
        sql = "\n".join(line for line in dumped.stdout.splitlines() if not line.startswith("\\"))
        sql = sql.replace(schema, _PLACEHOLDER)
        _replay(sql, f"sw_test_template_check_{uuid.uuid4().hex[:8]}", drop_first=False)  # a dump this server takes
        return sql
    except (OSError, subprocess.SubprocessError, SQLAlchemyError):  # pg_dump of another version, a timeout...
        return None


def _replay(sql: str, schema: str, drop_first: bool) -> None:
    """The template made `schema`, in one script (one transaction: a failure leaves the schema as it was); dropped
    again at once when only tried (`drop_first` False: the schema did not exist)."""
    script = (f'DROP SCHEMA "{schema}" CASCADE;\n' if drop_first else "") + sql.replace(_PLACEHOLDER, schema)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            # no parameters: a `%` in the dump (a LIKE pattern, a RAISE message) is SQL, not a placeholder
            conn.execution_options(no_parameters=True).exec_driver_sql(script)
            if not drop_first:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def _template(kind: str):  # noqa: ANN202
    with _lock:
        if kind not in _templates:
            _templates[kind] = _sqlite_template() if kind == "sqlite" else _postgres_template()
        return _templates[kind]


@contextmanager
def migrated_database(kind: str, directory: Path) -> Iterator[str]:
    """Yield the URL of a database of `kind` ('sqlite' or 'postgresql') at the newest schema, holding nothing
    else; removed afterwards (`isolated_database`'s, filled by `migrate_into`)."""
    with isolated_database(kind, directory) as url:
        migrate_into(url)
        yield url


def migrated_sqlite(path: Path) -> str:
    """The URL of the SQLite file at `path`, for a test that names its own file: a copy of the template at the
    newest schema when there is none yet, as `get_engine` would have created there; a file already there (a
    command made it) is left as it is, as `get_engine` would open it."""
    if not path.exists():
        shutil.copyfile(_template("sqlite"), path)
    return f"sqlite:///{path}"


def migrate_into(url: str) -> None:
    """The empty database at `url` (`isolated_database`'s) made a copy of the template: for a fixture handed a
    database by another fixture (tests/store/conftest.py's `engine`, on conftest's `db_url`)."""
    if url.startswith("sqlite:///"):
        shutil.copyfile(_template("sqlite"), url.removeprefix("sqlite:///"))
        return
    template = _template("postgresql")
    if template is None:
        get_engine(url)
        return
    _replay(template, make_url(url).query["options"].split("search_path=", 1)[1], drop_first=True)
