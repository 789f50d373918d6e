"""The console a command prints its tables on.

On a terminal rich lays a table out in the terminal's width. Anywhere else (a file, a pipe, a CI log:
`make demo | tee demo.log`) it assumes 80 columns and folds every cell of a wide table over several lines, so
`compare`'s table of five controllers became three lines a row, its figures split from their units. There
the table takes the width it needs, up to `PIPED_WIDTH`; `COLUMNS` still decides when it is set.
"""

from __future__ import annotations

import os

from rich.console import Console

#: the widest a table is laid out where the output is not a terminal and COLUMNS is unset (`demo`'s table of five
#: controllers takes about 100 columns)
PIPED_WIDTH = 200


def table_console(*, stderr: bool = False) -> Console:
    """A console for tables: the terminal's width on a terminal, else COLUMNS, else up to `PIPED_WIDTH`."""
    console = Console(stderr=stderr)
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(stderr=stderr, width=PIPED_WIDTH)
