"""The progress line of `signalwise train`: what it is at, how long it has run and how long it has left.

Why a column of our own for the time left: rich's `TimeRemainingColumn` divides by the speed of the last 30 s
of updates, and a RESCO generation takes minutes, so it would say `-:--:--` for a whole search; a resumed
training would also count the steps done before it as done in this session. Here the time left is this
session's own pace (its seconds per step since its steps began, `since_s` of the task) times the steps left,
from the first step on.

On an 80-column terminal the line is cut: the times, counts and figures keep their width, the description
is shortened with an ellipsis, and the bar (the least telling: the count says the same) is left out below
`BAR_FROM` columns.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

#: what a tabular training's line shows after its count (ε is the exploration rate, not episodes)
TABULAR_FIELDS = "ε {task.fields[eps]} delay {task.fields[delay]} viol {task.fields[viol]}"
#: what a phase-score search's line shows after its count
SEARCH_FIELDS = "best {task.fields[best]} mean {task.fields[mean]} σ {task.fields[sigma]}"
#: the narrowest console the bar is drawn on
BAR_FROM = 100


def hms(seconds: float) -> str:
    """`H:MM:SS`, as rich writes the elapsed time (hours past 24 stay hours)."""
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class RemainingColumn(ProgressColumn):
    """`eta H:MM:SS`: this session's seconds per step times the steps left; `eta -:--:--` before its first.

    The task's fields say where this session began: `resumed` steps were done before it (a `--resume`),
    `since_s` seconds of the task's elapsed time went by before its steps began (`--start auto`'s runs)."""

    def render(self, task: Task) -> Text:
        done = task.completed - task.fields.get("resumed", 0)
        elapsed = task.finished_time if task.finished else task.elapsed
        if task.total is None or elapsed is None or done <= 0:
            return Text("eta -:--:--", style="progress.remaining")
        per_step = max(0.0, elapsed - task.fields.get("since_s", 0.0)) / done
        return Text(f"eta {hms(per_step * max(0.0, task.total - task.completed))}", style="progress.remaining")


class _Description(TextColumn):
    """The task's description on one line, an ellipsis where the line has no room for all of it."""

    def render(self, task: Task) -> Text:
        text = super().render(task)
        text.no_wrap, text.overflow = True, "ellipsis"
        return text


def train_progress(console: Console, fields: str) -> Progress:
    """The progress of a training on `console`: description, bar (on `BAR_FROM` columns or more), done/total,
    `fields` (`TABULAR_FIELDS`, `SEARCH_FIELDS`), elapsed time, time left.

    Only the description may be shortened (a table column that wraps is the one rich narrows); the others
    never are, so on 80 columns the times stay whole."""
    columns: list[ProgressColumn] = [_Description("[bold]{task.description}", table_column=Column(no_wrap=False))]
    if console.width >= BAR_FROM:
        columns.append(BarColumn(bar_width=20, table_column=Column(no_wrap=True)))
    columns += [MofNCompleteColumn(table_column=Column(no_wrap=True)), TextColumn(fields, table_column=Column(no_wrap=True)),
                TimeElapsedColumn(table_column=Column(no_wrap=True)), RemainingColumn(table_column=Column(no_wrap=True))]
    return Progress(*columns, console=console)
