"""The `signalwise` command.

Each area registers its own commands from a small module (`register(app)`), so
this file stays a table of contents. Heavy imports happen inside commands to
keep `signalwise --help` fast.
"""

from __future__ import annotations

import importlib

import typer

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


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"signalwise {version('signalwise')}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Safe adaptive traffic signal control on SUMO: run, compare, measure, serve, run live."""

#: modules that add commands to `app` through a `register(app)` function
COMMAND_MODULES = (
    "signalwise.runtime.commands",  # run, compare, scenarios, demo
    "signalwise.api.live_command",  # live (it serves the API)
    "signalwise.store.commands",  # ingest, serve, db
    "signalwise.store.key_commands",  # keys
    "signalwise.store.retention",  # db purge
    "signalwise.analytics.atspm.commands",  # atspm, events import
    "signalwise.analytics.audit_commands",  # audit (independent safety check of runs)
    "signalwise.training.commands",  # train, evaluate, models
    "signalwise.vision.commands",  # vision run
    "signalwise.runtime.vision_commands",  # vision render, grade, bench (into the `vision` group above)
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that area has not landed yet
            raise
        module.register(app)


_register_all()


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
    command = typer.main.get_command(app)
    _plain_metavars(command)
    command(prog_name="signalwise")


if __name__ == "__main__":
    main()
