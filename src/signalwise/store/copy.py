"""`signalwise db copy`: a whole store into another database (SQLite or PostgreSQL, either way), ids and all.

Every table of the store's metadata (`tables.Base`) is copied in foreign-key order, in batches (memory stays
bounded whatever the store's size), from one read snapshot of the source (opened read-only: a SQLite file with
`mode=ro`, PostgreSQL in a read-only REPEATABLE READ transaction) into one transaction of the destination: all
or nothing. Ids are copied as they are, and each id sequence of the destination is moved past the source's (its
high-water mark, not only the largest id left: an id the source gave once is never given again), so new rows
never collide with copied ones. Both stores are at this release's schema: the destination is migrated, a source
at another revision is refused with what to run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Table

#: rows per batch: read from the source and written into the destination together
BATCH_ROWS = 5000
#: rows per batch of a table holding file contents (`model_blobs`: a model's files, megabytes each)
BLOB_BATCH_ROWS = 8


class CopyRefused(Exception):
    """A copy that would be wrong (a source at another schema, a destination holding rows); nothing was written."""


@dataclasses.dataclass(frozen=True)
class TableCount:
    """Rows of one table: in the source's snapshot, in the destination before the copy and after it."""

    table: str
    source_rows: int
    destination_before: int
    destination_after: int | None = None  # None: not copied (a dry run)

    @property
    def matches(self) -> bool:
        return self.destination_after is not None and self.destination_after - self.destination_before == self.source_rows


def store_tables() -> list[Table]:
    """The store's tables, each after the tables its foreign keys name."""
    from .tables import Base

    return list(Base.metadata.sorted_tables)


def read_only_engine(url: str) -> Engine:
    """An engine on the store at `url` that cannot write: a SQLite file opened `mode=ro` (never created), each
    connection in one explicit transaction (so that every table is read from the same snapshot); PostgreSQL with
    `default_transaction_read_only`."""
    from pathlib import Path

    from sqlalchemy import create_engine, event

    from .engine import create_store_engine, database_url, parsed_url

    url = database_url(url)
    parsed = parsed_url(url)
    if parsed.get_backend_name() == "postgresql":
        options = " ".join(filter(None, (parsed.query.get("options"), "-c default_transaction_read_only=on")))
        return create_store_engine(parsed.update_query_dict({"options": options}).render_as_string(False))
    name = parsed.database or ""
    if name in ("", ":memory:") or name.startswith("file:"):
        raise CopyRefused(f"{url}: the source is a SQLite file, given as sqlite:///path/to/store.db")
    path = Path(name).absolute()
    if not path.is_file():
        raise CopyRefused(f"{path}: no such database file")
    import sqlite3
    from urllib.request import pathname2url

    uri = f"file:{pathname2url(str(path))}?mode=ro"  # `#`, `?` and `%` in a path escaped, as SQLite's URIs need
    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False,
                                                                          timeout=30))

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # noqa: ANN001
        dbapi_conn.isolation_level = None  # pysqlite's own BEGIN handling off: ours below (SQLAlchemy's recipe)
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA query_only=ON")

    @event.listens_for(engine, "begin")
    def _begin(conn):  # noqa: ANN001
        conn.exec_driver_sql("BEGIN")  # the snapshot starts at the first read and lasts until the copy ends

    return engine


def check_source(engine: Engine, shown: str) -> None:
    """Refuse a source (`shown`: its URL to print) that is not a store at this release's schema revision, saying
    what to run."""
    from .engine import current_revision, head_revision, revisions

    found, head = current_revision(engine), head_revision()
    if found == head:
        return
    if found is None:
        raise CopyRefused(f"the source {shown} holds no signalwise store (no schema revision)")
    if found in revisions():
        raise CopyRefused(f"the source {shown} is at schema revision {found}, this release copies stores at {head}: "
                          f"back it up, then signalwise db upgrade --db {shown}, and copy again")
    raise CopyRefused(f"the source {shown} is at schema revision {found}, which this release does not know (its "
                      f"newest is {head}): copy it with the release that upgraded it")


def count_rows(conn: Connection) -> dict[str, int]:
    """Rows of each store table present in the database behind `conn` (a table not there: 0)."""
    from sqlalchemy import func, inspect, select

    present = set(inspect(conn).get_table_names())
    return {t.name: (conn.execute(select(func.count()).select_from(t)).scalar_one() if t.name in present else 0)
            for t in store_tables()}


def _read_snapshot(conn: Connection) -> Connection:
    """`conn` in one transaction that sees one moment of the source."""
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    conn.begin()
    return conn


def plan(source: Engine, destination: Engine | None) -> list[TableCount]:
    """What a copy would do, counted: the source's rows and the destination's (None: no store there yet)."""
    with source.connect() as src:
        counts = count_rows(_read_snapshot(src))
    before = {}
    if destination is not None:
        with destination.connect() as dst:
            before = count_rows(dst)
    return [TableCount(name, n, before.get(name, 0)) for name, n in counts.items()]


def copy_store(source: Engine, destination: Engine, *, into_nonempty: bool = False, batch_rows: int = BATCH_ROWS,
               on_table: Callable[[str, int], None] = lambda table, rows: None,
               on_rows: Callable[[str, int], None] = lambda table, rows: None) -> list[TableCount]:
    """Copy every table of the store behind `source` into `destination` (both at this release's schema), in one
    transaction of the destination. `on_table(name, rows to copy)` before each table, `on_rows(name, n)` after
    each batch. A destination holding rows is refused unless `into_nonempty`; then a row whose key or unique
    value is already there stops the copy whole (`IntegrityError`, nothing written): never a duplicate."""
    with source.connect() as src, destination.connect() as dst:
        src = _read_snapshot(src)
        counts = count_rows(src)
        with dst.begin():
            before = count_rows(dst)
            held = {name: n for name, n in before.items() if n}
            if held and not into_nonempty:
                listed = ", ".join(f"{name} ({n})" for name, n in held.items())
                raise CopyRefused(f"the destination holds rows already: {listed}; copy into an empty store, or add "
                                  "--into-nonempty to add these rows beside them (a row already there stops the "
                                  "copy, nothing written)")
            for table in store_tables():
                on_table(table.name, counts[table.name])
                if counts[table.name]:
                    _copy_table(src, dst, table, batch_rows, lambda n, name=table.name: on_rows(name, n))
                _ids_past(dst, table, _high_water(src, table))
        after = count_rows(dst)
    if destination.dialect.name == "postgresql":  # the planner's statistics of the new rows, now, not at autovacuum's
        with destination.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in store_tables():
                conn.exec_driver_sql(f'ANALYZE "{table.name}"')
    return [TableCount(name, counts[name], before[name], after[name]) for name in counts]


def _copy_table(src: Connection, dst: Connection, table: Table, batch_rows: int, done: Callable[[int], None]) -> None:
    from sqlalchemy import JSON, LargeBinary, Text, cast, select

    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    # JSON read as its text: SQL NULL and JSON null stay apart (both would read back as None)
    columns = [cast(c, Text).label(c.name) if c.name in json_columns else c for c in table.columns]
    batch = BLOB_BATCH_ROWS if any(isinstance(c.type, LargeBinary) for c in table.columns) else batch_rows
    rows = src.execution_options(stream_results=True, yield_per=batch).execute(
        select(*columns).order_by(*table.primary_key.columns))
    insert = table.insert()
    for part in rows.mappings().partitions(batch):
        values = [dict(row) for row in part]
        for row in values:
            for name in json_columns:
                row[name] = _json_value(row[name])
        dst.execute(insert, values)
        done(len(values))


def _json_value(text):  # noqa: ANN001, ANN202
    """What to bind for a JSON column's stored text: SQL NULL, JSON null, or the value."""
    from sqlalchemy import JSON, null

    if text is None:
        return null()
    return JSON.NULL if text == "null" else json.loads(text)


def _id_column(table: Table):  # noqa: ANN202
    column = table.autoincrement_column
    return column if column is not None and len(table.primary_key.columns) == 1 else None


def _high_water(src: Connection, table: Table) -> int:
    """The largest id the source ever gave in `table`: its sequence's (PostgreSQL) or `sqlite_sequence`'s
    (an AUTOINCREMENT table), which may be past the largest id left; 0 without one."""
    from sqlalchemy import text

    column = _id_column(table)
    if column is None:
        return 0
    if src.dialect.name == "postgresql":
        seq = src.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}).scalar()
        if seq is None:
            return 0
        last, called = src.execute(text(f"SELECT last_value, is_called FROM {seq}")).one()
        return int(last) if called else int(last) - 1
    if not src.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).first():
        return 0
    return int(src.execute(text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table.name}).scalar() or 0)


def _ids_past(dst: Connection, table: Table, source_high_water: int) -> None:
    """Move the destination's id sequence of `table` past every copied id and the source's high-water mark."""
    from sqlalchemy import func, select, text

    column = _id_column(table)
    if column is None:
        return
    top = max(source_high_water, dst.execute(select(func.max(column))).scalar() or 0)
    if dst.dialect.name == "postgresql":
        seq = dst.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}).scalar()
        if seq is None:
            return
        last, called = dst.execute(text(f"SELECT last_value, is_called FROM {seq}")).one()
        top = max(top, int(last) if called else int(last) - 1)
        if top > 0:
            dst.execute(text("SELECT setval(CAST(:s AS regclass), :n, true)"), {"s": seq, "n": top})
        return
    autoincrement = dst.execute(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                                {"t": table.name}).scalar() or ""
    if "AUTOINCREMENT" not in autoincrement.upper() or top <= 0:
        return  # a rowid table gives max(id) + 1: past every copied id already
    updated = dst.execute(text("UPDATE sqlite_sequence SET seq = max(seq, :n) WHERE name = :t"),
                          {"n": top, "t": table.name}).rowcount
    if not updated:
        dst.execute(text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :n)"), {"t": table.name, "n": top})


def _same_database(source_url: str, destination: Engine) -> bool:
    """Whether the source's URL and the destination reach one store: the same SQLite file, or the same PostgreSQL
    database and schema."""
    from pathlib import Path

    from .engine import database_url, parsed_url

    a, b = parsed_url(database_url(source_url)), destination.url
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        return Path(a.database or "").absolute() == Path(b.database or "").absolute()
    return (a.host, a.port, a.database, a.query.get("options")) == (b.host, b.port, b.database, b.query.get("options"))


def summary_lines(counts: list[TableCount]) -> list[str]:
    """The rows of each table, source against destination, one line each, aligned; the differing ones marked."""
    width = max(len(c.table) for c in counts)
    copied = counts[0].destination_after is not None
    head = f"{'table':<{width}}  {'source':>10}  {'before':>10}  " + (f"{'after':>10}  copied" if copied else "")
    lines = [head.rstrip()]
    for c in counts:
        line = f"{c.table:<{width}}  {c.source_rows:>10}  {c.destination_before:>10}"
        if copied:
            line += f"  {c.destination_after:>10}  {'ok' if c.matches else 'DIFFERS'}"
        lines.append(line)
    total = sum(c.source_rows for c in counts)
    lines.append(f"{'total':<{width}}  {total:>10}  {sum(c.destination_before for c in counts):>10}"
                 + (f"  {sum(c.destination_after or 0 for c in counts):>10}" if copied else ""))
    return lines


def copy_command(
    source: Annotated[str, typer.Option("--from", help="the store to copy (never written: opened read-only)")],
    destination: Annotated[str, typer.Option("--to", help="the database to copy it into (migrated to this "
                                                           "release's schema; created when a new SQLite file)")],
    into_nonempty: Annotated[bool, typer.Option(
        "--into-nonempty", help="copy into a destination that holds rows already; a row whose key is already "
                                "there stops the copy, nothing written (never a duplicate)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be copied, write nothing")] = False,
    batch_rows: Annotated[int, typer.Option("--batch-rows", min=1, help="rows per batch read and written")] = BATCH_ROWS,
) -> None:
    """Copy a whole store into another database (SQLite to PostgreSQL, back, or to another file): every table,
    ids kept, in one transaction; a summary of rows per table, exit 1 when they differ (docs/store.md)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..exitcodes import BAD_INPUT, FAILED
    from .cli_engine import database_errors, first_line, missing_sqlite_file, open_or_exit
    from .engine import create_store_engine, current_revision, head_revision, shown_url, upgrade

    def fail(message: str, code: int = BAD_INPUT) -> None:
        typer.secho(f"error: {message}", fg="red", err=True)
        raise typer.Exit(code)

    from ..core.redaction import shown_url as redacted
    from .engine import database_url

    src = open_or_exit(lambda: read_only_engine(source), "cannot open the source")
    src_shown = redacted(database_url(source))  # as given, not as opened (`file:...?mode=ro`)
    open_or_exit(lambda: check_source(src, src_shown), "cannot copy")
    dst = open_or_exit(lambda: create_store_engine(destination), "cannot open the destination")
    if _same_database(source, dst):
        fail("the source and the destination are the same database")
    if dry_run:
        new = missing_sqlite_file(destination) is not None
        found = None if new else open_or_exit(lambda: current_revision(dst), "cannot read the destination")
        counts = open_or_exit(lambda: plan(src, dst if found == head_revision() else None), "cannot count")
        for line in summary_lines(counts):
            typer.echo(line)
        state = ("a new file, created at " if new else "empty, created at " if found is None
                 else "migrated from " + found + " to " if found != head_revision() else "at ")
        typer.echo(f"would copy {sum(c.source_rows for c in counts)} rows from {src_shown} into "
                   f"{shown_url(dst)} ({state}{head_revision()})")
        held = [c.table for c in counts if c.destination_before]
        if held and not into_nonempty:
            fail(f"the destination holds rows already ({', '.join(held)}): the copy would be refused without "
                 "--into-nonempty")
        return
    open_or_exit(lambda: upgrade(dst), "cannot migrate the destination")
    progress = Progress(TextColumn("[bold]{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True))
    tasks: dict[str, int] = {}

    def on_table(name: str, rows: int) -> None:
        tasks[name] = progress.add_task(name, total=rows)

    try:
        with progress:
            counts = copy_store(src, dst, into_nonempty=into_nonempty, batch_rows=batch_rows, on_table=on_table,
                                on_rows=lambda name, n: progress.advance(tasks[name], n))
    except CopyRefused as exc:
        fail(str(exc))
    except database_errors(dst) + database_errors(src) as exc:  # a key already there, the server gone, a disk full: all rolled back
        fail(f"cannot copy into {shown_url(dst)}: {first_line(exc)} (nothing was written)", FAILED)
    for line in summary_lines(counts):
        typer.echo(line)
    differ = [c.table for c in counts if not c.matches]
    if differ:
        fail(f"rows differ between source and destination in {', '.join(differ)}", FAILED)
    typer.echo(f"copied {sum(c.source_rows for c in counts)} rows from {src_shown} into {shown_url(dst)}")
    src.dispose()
    dst.dispose()  # SQLite: the last connection closed moves the WAL into the file, a file whole to copy on
