"""`python -m signalwise.analytics.atspm ...`: the `signalwise atspm` command on its own.

The same command, options and output as `signalwise atspm`, without loading every other area's
commands first (the API, the store, training): for scripts that run it over many logs.
"""

import typer

from .commands import atspm


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                      context_settings={"help_option_names": ["-h", "--help"]})
    app.command()(atspm)
    app(prog_name="python -m signalwise.analytics.atspm")


if __name__ == "__main__":
    main()
