"""The console a command prints its tables on.

On a terminal rich lays a table out in the terminal's width. Anywhere else (a file, a pipe, a CI log:
`make demo | tee demo.log`) it assumes 80 columns and folds every cell of a wide table over several lines, so
`compare`'s table of five controllers became three lines a row, its figures split from their units. There
the table takes the width it needs, up to `PIPED_WIDTH`. `COLUMNS` decides when it holds a width.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

#: the widest a table is laid out where the output is not a terminal and COLUMNS is unset (`demo`'s table of five
#: controllers takes about 100 columns)
PIPED_WIDTH = 200


def table_console(*, stderr: bool = False) -> Console:
    """A console for tables: COLUMNS when it is a width, else the terminal's width, else up to `PIPED_WIDTH`.

    Whether the output is a terminal is asked of the stream itself: rich counts FORCE_COLOR (set by many CI
    services) as a terminal, and would lay a CI log out in 80 columns again.
    """
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return Console(stderr=stderr, width=int(columns))
    stream = sys.stderr if stderr else sys.stdout
    try:
        on_terminal = stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        on_terminal = False
    return Console(stderr=stderr) if on_terminal else Console(stderr=stderr, width=PIPED_WIDTH)
