"""CLI commands of the store area: `ingest`, `serve`, `db upgrade`, `db downgrade`, `db current`, `db drain`,
`db copy` (its own module, `copy.py`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from ..core.redaction import shown_url
from ..exitcodes import BAD_INPUT, FAILED
from .cli_engine import DB_HELP

DbOption = Annotated[str | None, typer.Option("--db", help=DB_HELP)]


def _fail(message: str, code: int = BAD_INPUT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def ingest(file: Annotated[Path, typer.Argument(help="JSON Lines file, one record per line")],
           db: DbOption = None,
           chunk: Annotated[int, typer.Option(help="records per database round trip", min=1)] = 2000) -> None:
    """Store the records of FILE.jsonl, all or nothing, streaming (memory stays flat)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

    from .cli_engine import database_errors, engine_or_exit, first_line, settings_or_exit
    from .ingest import RecordError, ingest_json_records

    if not file.is_file():
        _fail(f"{file}: a directory, not a file of records" if file.is_dir() else f"{file}: no such file")
    settings_or_exit()  # SIGNALWISE_INGEST_WORKERS is read mid-ingest
    engine = engine_or_exit(db)
    shown = shown_url(engine.url)
    size = file.stat().st_size
    with open(file, "rb") as fh, Progress(TextColumn("[bold]ingest"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                          TransferSpeedColumn(), TextColumn("{task.fields[records]} records"),
                                          TimeElapsedColumn(), transient=False) as progress:
        task = progress.add_task("ingest", total=size, records=0)
        done = 0

        def lines():
            """(line number, line) of the non-blank lines; validated in worker processes, not here."""
            for line_no, line in enumerate(fh, start=1):
                progress.advance(task, len(line))
                if line.strip():
                    yield line_no, line

        def on_progress(n: int) -> None:
            nonlocal done
            done += n
            progress.update(task, records=done)
        try:
            count = ingest_json_records(engine, lines(), lambda line_no: f"{file}:{line_no}", chunk_records=chunk,
                                        on_progress=on_progress)
        except RecordError as exc:
            progress.stop()
            _fail(f"{exc} (nothing was written)")
        except database_errors(engine) as exc:  # read-only, locked past the busy timeout, the server gone
            progress.stop()
            _fail(f"cannot write into {shown}: {first_line(exc)} (nothing was written)", code=FAILED)
    typer.echo(f"ingested {count} records from {file} into {shown}")


def serve(host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
          db: DbOption = None,
          workers: Annotated[int, typer.Option(help="uvicorn worker processes", min=1, max=64)] = 1,
          insecure_no_auth: Annotated[bool, typer.Option("--insecure-no-auth", help="open every route, mutations included, without a key (prints a warning); refused unless --host is a loopback address: never on a network")] = False) -> None:
    """Serve the HTTP API with uvicorn (OpenAPI docs at /docs); reads are open on 127.0.0.1, writes need a key."""
    import os

    import uvicorn

    from ..listening import insecure_no_auth_refusal

    if insecure_no_auth and (refusal := insecure_no_auth_refusal(host)) is not None:
        _fail(refusal)  # its help says "never on a network": every change open to whoever reaches the address
    # uvicorn's workers build their app from Settings, which reads the environment: this is how they get these
    os.environ["SIGNALWISE_BIND_HOST"] = host
    os.environ["WEB_CONCURRENCY"] = str(workers)  # how many: camera streams need one (api/routers/cameras.py)
    if insecure_no_auth:
        os.environ["SIGNALWISE_INSECURE_NO_AUTH"] = "true"
        typer.secho("warning: --insecure-no-auth: every route is open, mutations included", fg="red", err=True)
    if db:
        os.environ["SIGNALWISE_DATABASE_URL"] = db
    if workers > 1 and not os.environ.get("SIGNALWISE_JWT_SECRET"):
        import secrets

        # one secret for every worker: each making its own refuses the tokens the others issue; tokens end with
        # the server, as a single process's do
        os.environ["SIGNALWISE_JWT_SECRET"] = secrets.token_urlsafe(48)
    from .cli_engine import engine_or_exit, settings_or_exit

    # every SIGNALWISE_* variable checked, with --db too: a bad one is one `error:` line naming it, never a
    # traceback that prints its value (a secret's)
    settings = settings_or_exit()
    refusal = insecure_no_auth_refusal(host, "SIGNALWISE_INSECURE_NO_AUTH") if settings.insecure_no_auth else None
    if refusal is not None:  # set in the environment: refused as the option is, before a database or port is touched
        _fail(refusal)
    from .settings import unknown_variables_warning

    unknown = unknown_variables_warning(os.environ)  # a misspelt SIGNALWISE_* would otherwise go unseen
    if unknown is not None:  # said before the database is opened: a misspelt URL's default is about to be
        typer.secho(f"warning: {unknown}", fg="yellow", err=True)
    engine_or_exit(db)  # migrate once, before workers start
    from .redis_check import missing_package, outage_warning

    # with Redis set, every worker counts rate limits there: a URL without the redis package is refused; a Redis
    # that does not answer is an outage, said once, each worker counting in its memory until it answers
    problem = missing_package(settings.redis_url)
    if problem is not None:
        _fail(problem, code=FAILED)
    outage = outage_warning(settings.redis_url)
    if outage is not None:
        typer.secho(f"warning: {outage}", fg="yellow", err=True)
    from ..listening import ListenError, listen

    try:  # a port in use is said now, in one line
        sock = listen(host, port)
    except ListenError as exc:
        _fail(str(exc), code=FAILED)
    if workers == 1:
        # listening before the address is announced: a browser opened at once waits in the socket's queue while
        # the app loads (seconds on a busy machine), rather than being refused
        sock.listen(2048)
    else:  # uvicorn's workers bind it themselves
        sock.close()
    typer.echo(f"signalwise API on http://{host}:{port} (docs at http://{host}:{port}/docs)")
    from .key_commands import key_store_lines

    # the workers check keys in this database only: a key made in another is refused as unknown
    for line, warning in key_store_lines(settings, db):
        typer.secho(line, fg="yellow" if warning else None, err=warning)
    # X-Forwarded-For believed only from SIGNALWISE_FORWARDED_ALLOW_IPS (uvicorn's default: from 127.0.0.1)
    options = {"factory": True, "host": host, "port": port, "log_level": "info", **settings.uvicorn_proxy_options()}
    if workers > 1:
        uvicorn.run("signalwise.api:create_app", workers=workers, **options)
        return
    server = uvicorn.Server(uvicorn.Config("signalwise.api:create_app", **options))
    server.run(sockets=[sock])  # as uvicorn.run runs one worker, on the socket announced
    if not server.started:
        raise typer.Exit(3)  # uvicorn's own code for a server that did not start (STARTUP_FAILURE)


db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


#: `db upgrade` and `db downgrade`: how long each step may wait behind another transaction's table lock (its
#: default is `engine.MIGRATION_LOCK_TIMEOUT_S`, not imported here: that would load SQLAlchemy for --help)
LockTimeoutOption = Annotated[float, typer.Option(
    "--lock-timeout", min=0, help="seconds each step may wait for a table lock another transaction holds, on "
    "PostgreSQL (0: no limit); past it nothing is changed")]


def _schema_line(before: str | None, after: str | None) -> str:
    return f"schema already at {after}" if before == after else f"schema {before or 'empty'} -> {after or 'empty'}"


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None, lock_timeout: LockTimeoutOption = 5.0) -> None:
    """Migrate the database to the newest schema revision (back it up first: docs/store.md#upgrades)."""
    from .cli_engine import open_or_exit, settings_or_exit
    from .engine import create_store_engine, upgrade

    if not db:
        settings_or_exit()  # the URL is one of them
    before, after = open_or_exit(lambda: upgrade(create_store_engine(db), lock_timeout_s=lock_timeout),
                                 "cannot upgrade")
    typer.echo(_schema_line(before, after))


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="the revision to go back to, e.g. 0016")],
                 yes: Annotated[bool, typer.Option("--yes", help="downgrade without asking (required unless --dry-run)")] = False,
                 dry_run: Annotated[bool, typer.Option("--dry-run", help="list the revisions that would be undone, change nothing")] = False,
                 db: DbOption = None, lock_timeout: LockTimeoutOption = 5.0) -> None:
    """Take the database back to an older schema revision, for an older release: what the later revisions added
    goes, with the data it holds (docs/store.md#upgrades)."""
    from .cli_engine import open_or_exit
    from .engine import create_store_engine, downgrade, downgrade_losses, shown_url

    engine = open_or_exit(lambda: create_store_engine(_existing_store(db)))
    current = open_or_exit(lambda: _revision_of(engine))
    steps = _undone_revisions(current, revision)
    if not steps:
        typer.echo(_schema_line(current, current))
        return
    undone = ", ".join(rev for rev, _ in steps)
    sessions = _other_sessions_warning(engine, current)
    if sessions:  # said first, for --dry-run too: the time to stop the servers is before
        typer.echo(sessions, err=True)
    losses = _loss_lines(open_or_exit(lambda: downgrade_losses(engine, revision), "cannot count what goes"))
    if dry_run:
        typer.echo(f"would take {shown_url(engine)} from {current} back to {revision}, undoing:")
        for rev, what in steps:
            typer.echo(f"  {rev}  {what}")
        for line in losses:
            typer.echo(line)
        return
    if not yes:
        for line in losses:
            typer.echo(line, err=True)
        _fail(f"would take {shown_url(engine)} from {current} back to {revision}, dropping what {undone} added and "
              "the data it holds; back it up, then add --yes (--dry-run lists the steps)")
    before, after = open_or_exit(lambda: downgrade(engine, revision, lock_timeout_s=lock_timeout), "cannot downgrade")
    typer.echo(_schema_line(before, after))
    for line in losses:  # what went, for the log of whoever ran it with --yes unseen
        typer.echo(line, err=True)


def _other_sessions_warning(engine, current: str) -> str | None:  # noqa: ANN001 - an Engine, not imported for --help
    """On PostgreSQL, a warning naming the other sessions connected to the store's database (`pg_stat_activity`,
    this command's own left out): a server still running on the store goes on answering after the downgrade,
    and its routes reading what the undone revisions added fail. None on SQLite (which lists no sessions), with
    none connected, or when the view cannot be read."""
    if engine.dialect.name != "postgresql":
        return None
    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT pid, coalesce(nullif(application_name, ''), '?'), coalesce(host(client_addr), 'local'), "
                "current_database() FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY pid")).all()
    except Exception:  # noqa: BLE001 - a warning only: a view this role cannot read says nothing
        return None
    if not rows:
        return None
    shown = ", ".join(f"pid {pid} ({app} from {addr})" for pid, app, addr, _db in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return (f"warning: {len(rows)} other session(s) are connected to database {rows[0][3]!r} (to any of its "
            f"schemas): {shown}{more}. A signalwise server still running on this store goes on answering after the "
            f"downgrade, but its routes reading what the undone revisions added fail (500) and its /health/ready "
            f"answers 503 (the store no longer at its revision {current}); stop every server on the store first "
            "(docs/store.md#upgrades)")


def _loss_lines(loss) -> list[str]:  # noqa: ANN001 - engine.DowngradeLoss, not imported for --help
    """What a downgrade drops, counted: `violations: 412 rows lose source and evidence_sha256`, and a warning
    for each SQLite table whose ids can be given out again (a later upgrade does not take back an id reused)."""
    lines = [f"  {name}: the table goes, with its {n} row(s)" for name, n in loss.tables.items() if n]
    for name, counts in loss.columns.items():
        by_count: dict[int, list[str]] = {}
        for col, n in counts.items():
            if n:
                by_count.setdefault(n, []).append(col)
        if by_count:
            lines.append(f"  {name}: " + "; ".join(f"{n} row(s) lose {_listed(cols)}"
                                                    for n, cols in sorted(by_count.items(), reverse=True)))
    head = ("dropping these values (a later signalwise db upgrade brings the columns and tables back empty):"
            if lines else "dropping no values: the columns and tables that go hold none")
    lines.insert(0, head)
    lines += [f"warning: {name} loses AUTOINCREMENT (SQLite): while the older release runs, the id of a removed "
              "row can be given to a new one, and a record naming the removed row by id then names the new one"
              for name in loss.ids_reused]
    return lines


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _existing_store(db: str | None) -> str:
    """The URL of `db` (the settings' without it), refused when it names a SQLite file that is not there."""
    from .cli_engine import missing_sqlite_file, settings_or_exit

    url = db or settings_or_exit().database_url
    missing = missing_sqlite_file(url)
    if missing is not None:  # opening it would create an empty database only to say it is empty
        _fail(f"{missing}: no such database file (signalwise db upgrade --db ... creates one)", code=FAILED)
    return url


def _revision_of(engine) -> str:  # noqa: ANN001
    """The store's revision; an empty store or one a newer release upgraded has nothing this release undoes."""
    from .engine import current_revision, revisions

    current = current_revision(engine)
    if current is None:
        _fail("the store is empty: nothing to downgrade", code=FAILED)
    if current not in revisions():
        _fail(f"the store is at {current}, which this release does not know: downgrade it with the release that "
              "upgraded it", code=FAILED)
    return current


def _undone_revisions(current: str, target: str) -> list[tuple[str, str]]:
    """(revision, what it added) of each revision a downgrade from `current` to `target` undoes, newest first."""
    from .engine import revision_summary, revisions

    known = revisions()
    if target not in known:
        _fail(f"{target}: no such revision; this release's are {known[0]} to {known[-1]} (docs/store.md#migrations)")
    if known.index(target) > known.index(current):
        _fail(f"the store is at {current}, before {target}: a downgrade only goes back (signalwise db upgrade goes "
              "forward, to the newest)")
    return [(rev, revision_summary(rev)) for rev in reversed(known[known.index(target) + 1:known.index(current) + 1])]


@db_app.command("current")
def db_current(db: DbOption = None) -> None:
    """Print the schema revision of the database."""
    from .cli_engine import missing_sqlite_file, open_or_exit, settings_or_exit
    from .engine import create_store_engine, current_revision, head_revision
    from .settings import Settings

    if not db:
        settings_or_exit()  # the URL is one of them
    missing = missing_sqlite_file(db or Settings().database_url)
    if missing is not None:  # opening it would create an empty database only to say it is empty
        _fail(f"{missing}: no such database file (signalwise db upgrade --db ... creates one)", code=FAILED)
    rev = open_or_exit(lambda: current_revision(create_store_engine(db)))
    typer.echo(f"{rev or 'empty'} (newest: {head_revision()})")


@db_app.command("drain")
def db_drain(run_dir: Annotated[Path, typer.Argument(help="the live run's directory (or its store-buffer directory)")],
             db: DbOption = None,
             timeout: Annotated[float, typer.Option(help="seconds to keep trying", min=0)] = 60.0,
             force: Annotated[bool, typer.Option(
                 "--force", help="drain a run whose run.json still says running (its process on another host, a "
                                 "recreated container): only when it is certainly gone")] = False) -> None:
    """Store the rows a live run left waiting in its store-buffer (the database was away, or the run was killed)."""
    from .live import drain, drained_line

    with _writer_lines() as said:
        try:
            summary = drain(run_dir, db, timeout, force=force)
        except (FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
    line, stored = drained_line(summary)
    if not stored:  # what the writer met along the way is the diagnosis
        for message in said:
            typer.echo(message, err=True)
        _fail(line.removeprefix("error: "), code=FAILED)
    typer.echo(line)
    if any(m.startswith("store write late") for m in said):
        typer.echo("note: the database did not answer the drain's writes for 1 s or more (busy, locked by another "
                   "writer, or slow to connect); the rows waited in the buffer meanwhile; none was lost", err=True)
    failed = [m.partition("): ")[2] for m in said if m.startswith("store write failed")]
    if failed:
        typer.echo(f"note: the database refused the drain's writes before it took them ({failed[0]}); the rows "
                   "waited in the buffer meanwhile; none was lost", err=True)


@contextlib.contextmanager
def _writer_lines():
    """The lines the store writer logs (`signalwise.store.live`), kept instead of printed. They are a running
    run's ("resuming N buffered rows", "database back: wrote N rows, M buffered rows still to write") and would
    print counts beside the drain's own; the drain says one count and why the database was late."""
    import logging

    said: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    writer_log = logging.getLogger("signalwise.store.live")
    keep, propagate = _Keep(logging.INFO), writer_log.propagate
    writer_log.addHandler(keep)
    writer_log.propagate = False
    try:
        yield said
    finally:
        writer_log.removeHandler(keep)
        writer_log.propagate = propagate


def register(app: typer.Typer) -> None:
    from .copy import copy_command

    db_app.command("copy")(copy_command)
    app.command("ingest")(ingest)
    app.command("serve")(serve)
    app.add_typer(db_app, name="db")
