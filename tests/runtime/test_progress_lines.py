"""Progress where no bar is drawn: `compare ... | cat`, `demo > demo.log`.

rich draws no progress bar on a pipe or a file, so a log said nothing between the intro and the table (a demo
for half a minute or more). There one plain line per finished run goes to stderr, flushed as the run ends;
on a terminal the bar alone, as before (`consoles.progress_line`).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from signalwise.consoles import progress_line

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
LINE = re.compile(r"^compare on single: (\d)/4 runs done after \d+ s \((fixed|max-pressure) s([12]): [\d.]+ s delay\)$")


def _timed_lines(stream, into: list[tuple[float, str]]) -> threading.Thread:
    def read() -> None:
        for line in stream:
            into.append((time.monotonic(), line.rstrip("\n")))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_piped_compare_prints_a_line_per_run_as_the_runs_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    # one worker: the runs end one after another, so a line printed as each ends comes well before the table
    proc = subprocess.Popen([SIGNALWISE, "compare", "--scenario", "single", "--controllers", "fixed,max-pressure",
                             "--seeds", "2", "--duration", "600", "--workers", "1", "--out", str(tmp_path / "cmp")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    out: list[tuple[float, str]] = []
    err: list[tuple[float, str]] = []
    readers = [_timed_lines(proc.stdout, out), _timed_lines(proc.stderr, err)]
    try:
        assert proc.wait(timeout=300) == 0, "\n".join(line for _, line in out + err)
    finally:
        if proc.poll() is None:
            proc.kill()
    ended = time.monotonic()
    for reader in readers:
        reader.join(timeout=10)
    progress = [(t, m) for t, line in err if (m := LINE.match(line))]
    assert [int(m[1]) for _, m in progress] == [1, 2, 3, 4], "\n".join(line for _, line in err)
    assert {(m[2], m[3]) for _, m in progress} == {("fixed", "1"), ("fixed", "2"), ("max-pressure", "1"),
                                                   ("max-pressure", "2")}
    table = next(t for t, line in out if line.startswith("┏"))
    first, last = progress[0][0], progress[-1][0]
    # each line as its run ended: the first a whole run (or more) before the last, the table, and the exit
    assert first < last < table <= ended, (first, last, table, ended)
    assert last - first > 0.2, (first, last)


def _bar(terminal: bool) -> tuple[Progress, io.StringIO]:
    text = io.StringIO()
    console = Console(file=text, force_terminal=terminal, width=100)
    return Progress(console=console, auto_refresh=False), text


def test_the_line_is_written_only_where_no_bar_is_drawn():
    bar, text = _bar(terminal=False)
    with bar:
        task = bar.add_task("train on single", total=20)
        bar.update(task, advance=1)
        progress_line(bar, task, "episodes", "ε 0.95, delay 40 s, violations 0")
        assert text.getvalue() == "train on single: 1/20 episodes done after 0 s (ε 0.95, delay 40 s, violations 0)\n"
    bar, text = _bar(terminal=True)
    with bar:
        task = bar.add_task("train on single", total=20)
        bar.update(task, advance=1)
        progress_line(bar, task, "episodes", "ε 0.95")
        assert "episodes done" not in text.getvalue()  # the terminal's bar, unchanged
