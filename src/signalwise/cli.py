"""The `signalwise` command.

Each area registers its own commands from a small module (`register(app)`), so
this file stays a table of contents. A command line loads only the module(s)
of the command it names: `signalwise atspm` never imports FastAPI or
SQLAlchemy (loading every area cost ~2 s of CPU at each start). `app`, read
from this module, is the whole command tree (every area registered).
"""

from __future__ import annotations

import importlib

import typer

_app = typer.Typer(
    name="signalwise",
    help="Safe adaptive traffic signal control on SUMO: run, compare, measure, serve, run live.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: options, full defaults and help text wrap to the terminal (the boxed
    # layout cut defaults short and showed type placeholders such as <bool>)
    rich_markup_mode=None,
    context_settings={"max_content_width": 100, "help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"signalwise {version('signalwise')}")
        raise typer.Exit()


@_app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Safe adaptive traffic signal control on SUMO: run, compare, measure, serve, run live."""

#: top-level command -> the modules that add it through their `register(app)` function, in order
#: (a group such as `db` takes commands from several). tests/test_cli_help.py checks this table
#: against what the modules register.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "scenarios": ("signalwise.runtime.commands",),
    "run": ("signalwise.runtime.commands",),
    "compare": ("signalwise.runtime.commands",),
    "demo": ("signalwise.runtime.commands",),
    "publish": ("signalwise.runtime.commands",),
    "live": ("signalwise.api.live_command",),  # it serves the API
    "detectors": ("signalwise.runtime.detector_plan",),  # a live run's detector plan, before it starts
    "ingest": ("signalwise.store.commands",),
    "serve": ("signalwise.store.commands",),
    "db": ("signalwise.store.commands", "signalwise.store.retention"),  # upgrade, downgrade, current; purge
    "keys": ("signalwise.store.key_commands",),
    "atspm": ("signalwise.analytics.atspm.commands",),
    "events": ("signalwise.analytics.atspm.commands",),  # events import
    "audit": ("signalwise.analytics.audit_commands",),  # independent safety check of runs
    "train": ("signalwise.training.commands",),
    "evaluate": ("signalwise.training.commands",),
    "models": ("signalwise.training.commands",),
    # vision run; vision render, grade, bench, loop (into the same group)
    "vision": ("signalwise.vision.commands", "signalwise.runtime.vision_commands"),
}

_registered: set[str] = set()


def _register(modules) -> None:
    for name in modules:
        if name in _registered:
            continue
        _registered.add(name)
        importlib.import_module(name).register(_app)


def _register_all() -> typer.Typer:
    _register(dict.fromkeys(m for modules in COMMAND_MODULES.values() for m in modules))
    return _app


def __getattr__(name: str):
    if name == "app":  # the whole tree, for importers (tests, docs generators)
        return _register_all()
    raise AttributeError(name)


def _command_named(argv: list[str]) -> str | None:
    """The top-level command in argv: the first word that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def _plain_metavars(command) -> None:
    """Name option values the way Unix help does (PATH, N, TEXT), not Typer's `<list[Path]>`."""
    labels = {"str": "TEXT", "int": "N", "float": "NUMBER", "path": "PATH", "list[Path]": "PATH",
              "list[str]": "TEXT", "int range": "N", "float range": "NUMBER"}
    for param in getattr(command, "params", ()):
        if type(param).__name__.endswith("Argument"):
            param.metavar = param.metavar or (param.name or "value").upper()
            param.display_type_rich = lambda ctx: None  # the name says it: VERSION, FILE, RUN_DIR
            continue
        if getattr(param, "is_flag", True) or getattr(param, "metavar", "") is not None:
            continue
        try:
            shown = param.display_type(None).strip("<>")
        except Exception:  # noqa: BLE001 - an exotic type keeps Typer's own label
            continue
        param.metavar = labels.get(shown, f"[{shown}]" if "|" in shown else shown.upper())
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)


def main() -> None:
    import atexit
    import gc
    import sys

    # At exit, after the command and the atexit work before this (registered later, run earlier): the collector
    # then skips every object the process is about to drop anyway, a pass that otherwise cost a tenth of a
    # second and more of every command's exit (docs/benchmarks.md#against-the-plain-reference-script-whole-processes).
    atexit.unregister(gc.freeze)  # once per process, however often main runs in it (the tests' in-process runs)
    atexit.register(gc.freeze)
    from . import logs

    logs.setup(_command_named(sys.argv[1:]))  # time, level and logger on every line (docs/deployment.md#logs)
    modules = COMMAND_MODULES.get(_command_named(sys.argv[1:]) or "")
    if modules is None:
        _register_all()  # --help, --version, or a misspelt command: show the whole tree
    else:
        _register(modules)
    command = typer.main.get_command(_app)
    _plain_metavars(command)
    from .option_suggest import install

    install()  # a misspelt option is offered only options close to it
    try:
        command(prog_name="signalwise")
    except OSError as exc:
        # a file or directory the command could not read or write, met past its own checks (a full disk,
        # permissions changed mid-run), or a connection refused: one line, as every other failure, not a traceback
        # (SIGNALWISE_LOG_LEVEL=DEBUG logs it)
        import logging

        from .exitcodes import FAILED

        logging.getLogger("signalwise.cli").debug("the command ended on this error", exc_info=exc)
        sys.stderr.write(f"error: {os_error_line(exc)}\n")
        raise SystemExit(FAILED) from None
    finally:
        _ctrl_c_as_default()


def os_error_line(exc: OSError) -> str:
    """What `main` prints of an OSError no command caught: with the file it names, else (a refused connection,
    a process that could not start) with where in signalwise it happened, which a bare `Connection refused`
    does not say, and how to see the traceback."""
    if exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    import traceback
    from pathlib import Path

    package = Path(__file__).resolve().parent
    ours = [frame for frame in traceback.extract_tb(exc.__traceback__)
            if Path(frame.filename).resolve().is_relative_to(package) and Path(frame.filename).name != "cli.py"]
    where = ""
    if ours:  # the innermost frame of signalwise's own code: the operation that failed
        frame = ours[-1]
        shown = Path(frame.filename).resolve().relative_to(package.parent).as_posix()
        where = f" at {shown}:{frame.lineno}, in {frame.name}" + (f": {frame.line}" if frame.line else "")
    return (f"{exc.strerror or exc} ({type(exc).__name__}{where}); SIGNALWISE_LOG_LEVEL=DEBUG logs the "
            "traceback")


def _ctrl_c_as_default() -> None:
    """The command has ended: a Ctrl-C from now on (a user pressing it again as a live run ends) ends the process as
    the signal's default action does. Raised as a KeyboardInterrupt, it would print a traceback after the
    command's last line from wherever Python's exit happens to be: joining threads, or multiprocessing's
    finalizers removing their temporary directories. Set here, not at exit, because threads are joined before
    any exit callback runs. (The tests' in-process runs put their own handlers back afterwards.)"""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    except OSError:
        # a Ctrl-C landed while the handler changed (CPython: "Signal 2 ignored due to race condition"): it was
        # pressed after the command's end, so it ends the process as the default action would, without a word
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


if __name__ == "__main__":
    main()
