"""The console a command prints its tables on.

On a terminal rich lays a table out in the terminal's width. Anywhere else (a file, a pipe, a CI log:
`make demo | tee demo.log`) it assumes 80 columns and folds every cell of a wide table over several lines, so
`compare`'s table of five controllers became three lines a row, its figures split from their units. There
the table takes the width it needs, up to `PIPED_WIDTH`. `COLUMNS` decides when it holds a width.

Progress bars have the same problem the other way round: rich draws none where its console is no terminal
(rightly: a redrawn bar in a log is noise), so `demo > demo.log` or `compare ... | tee` said nothing between the
intro and the table. `progress_line` writes one plain line per finished step there instead.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

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


def progress_line(bar: Progress, task: TaskID, steps: str, detail: str) -> None:
    """Where `bar` is not drawn, one line for the step just counted: `<description>: 4/15 runs done after 12 s
    (<detail>)`, flushed at once so a log shows the work advancing. Call it after `bar.update(task, advance=1)`.

    Not drawn is rich's own test (`Live.refresh`): no terminal, or a dumb one. On a terminal the bar says it
    all, and a line printed there would only push the bar down.
    """
    console = bar.console
    if console.is_terminal and not console.is_dumb_terminal:
        return
    t = next(t for t in bar.tasks if t.id == task)
    of = f"/{t.total:.0f}" if t.total is not None else ""
    console.print(f"{t.description}: {t.completed:.0f}{of} {steps} done after {t.elapsed or 0:.0f} s ({detail})",
                  markup=False, highlight=False, emoji=False, soft_wrap=True)
    console.file.flush()
