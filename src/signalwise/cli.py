"""The `signalwise` command.

Each area registers its own commands from a small module (`register(app)`), so
this file stays a table of contents. Heavy imports happen inside commands to
keep `signalwise --help` fast.
"""

from __future__ import annotations

import importlib

import typer


def _new_app() -> typer.Typer:
    app = typer.Typer(
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
    app.callback()(_root)
    return app


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"signalwise {version('signalwise')}")
        raise typer.Exit()


def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Safe adaptive traffic signal control on SUMO: run, compare, measure, serve, run live."""

#: modules that add commands to the app through a `register(app)` function
COMMAND_MODULES = (
    "signalwise.runtime.commands",  # run, compare, scenarios, demo, publish
    "signalwise.api.live_command",  # live (it serves the API)
    "signalwise.store.commands",  # ingest, serve, db
    "signalwise.store.key_commands",  # keys
    "signalwise.store.retention",  # db purge
    "signalwise.analytics.atspm.commands",  # atspm, events import
    "signalwise.analytics.audit_commands",  # audit (independent safety check of runs)
    "signalwise.training.commands",  # train, evaluate, models
)

_RUNTIME, _STORE, _TRAINING = "signalwise.runtime.commands", "signalwise.store.commands", "signalwise.training.commands"
#: the modules each top-level command needs: `signalwise run` imports the runtime's commands only, not the
#: API, the store and their libraries (FastAPI, SQLAlchemy: seconds of start-up a run does not use)
COMMAND_HOMES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("run", "compare", "scenarios", "demo", "publish"), (_RUNTIME,)),
    "live": ("signalwise.api.live_command",),
    **dict.fromkeys(("ingest", "serve"), (_STORE,)),
    "db": (_STORE, "signalwise.store.retention"),
    "keys": ("signalwise.store.key_commands",),
    **dict.fromkeys(("atspm", "events"), ("signalwise.analytics.atspm.commands",)),
    "audit": ("signalwise.analytics.audit_commands",),
    **dict.fromkeys(("train", "evaluate", "models"), (_TRAINING,)),
}


def build_app(modules: tuple[str, ...] = COMMAND_MODULES) -> typer.Typer:
    """The command with the commands of `modules` (all of them by default)."""
    app = _new_app()
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that area has not landed yet
            raise
        module.register(app)
    return app


_full_app: typer.Typer | None = None


def __getattr__(name: str):
    """`signalwise.cli.app`: the command with every area's commands, built on first use."""
    global _full_app
    if name == "app":
        if _full_app is None:
            _full_app = build_app()
        return _full_app
    raise AttributeError(name)


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
    import sys

    wanted = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    # a known command loads its own area; help, --version or an unknown name load them all
    modules = COMMAND_HOMES.get(wanted, COMMAND_MODULES)
    command = typer.main.get_command(build_app(modules))
    _plain_metavars(command)
    command(prog_name="signalwise")


if __name__ == "__main__":
    main()
