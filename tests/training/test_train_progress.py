"""`signalwise train`'s progress line: the elapsed time and the time left stay whole on an 80-column terminal, and
the time left is this session's pace from its first step. The line is rendered as rich draws it, on a recorded
console of that width, with a clock the test sets."""

from __future__ import annotations

import pytest
from rich.console import Console
from support.cli import signalwise

from signalwise.training.progress import SEARCH_FIELDS, TABULAR_FIELDS, train_progress

#: descriptions as long as the command makes them (a per-signal search on RESCO's largest network; the stage of an
#: auto training first)
SEARCH = ("resco:ingolstadt21 per signal, one colour class at a time (8x1 episodes/gen, 3 searches)", SEARCH_FIELDS,
          {"best": "123.4s", "mean": "130.2s", "sigma": "0.93"})
TABULAR = ("training guide 10: resco:ingolstadt21 (2x40 ep)", TABULAR_FIELDS,
           {"eps": "0.28", "delay": "43s", "viol": 0})


def drawn(width: int, description: str, fields: str, values: dict, steps: list[tuple[float, int]],
          total: int = 36, **task) -> list[str]:
    """The line as drawn at `width` after `steps` (clock second, steps advanced)."""
    console = Console(width=width, record=True, force_terminal=True)
    clock = [0.0]
    bar = train_progress(console, fields)
    bar.get_time = lambda: clock[0]  # the tasks read the progress's clock
    t = bar.add_task(description, total=total, **task, **values)
    for at_s, advance in steps:
        clock[0] = at_s
        bar.update(t, advance=advance)
    console.print(bar.make_tasks_table(bar.tasks))
    return console.export_text().splitlines()


@pytest.mark.parametrize(("description", "fields", "values"), [SEARCH, TABULAR], ids=["phase-score", "tabular"])
def test_on_80_columns_the_elapsed_time_and_the_time_left_are_whole(description, fields, values):
    """The line ended `0:…`: the elapsed time was cut, and no time left was shown."""
    # 3 generations in 441 s (RESCO's fastest whole search took that): 147 s each, 33 left
    line, = drawn(80, description, fields, values, [(300.0, 2), (441.0, 1)])
    assert len(line) <= 80
    assert line.endswith(" 0:07:21 eta 1:20:51"), line
    assert "…" in line  # what gave way is the description's end
    assert line.startswith(description[:10])


def test_the_time_left_is_unknown_until_a_step_is_done_and_counts_only_this_sessions_steps():
    description, fields, values = SEARCH
    line, = drawn(80, description, fields, values, [(30.0, 0)])
    assert line.endswith(" 0:00:30 eta -:--:--"), line
    # resumed at 10 of 36: 2 steps in 100 s here, 24 left at 50 s each (the 10 earlier ones took no time here)
    line, = drawn(80, description, fields, values, [(100.0, 2)], completed=10, resumed=10)
    assert line.endswith(" 0:01:40 eta 0:20:00"), line
    # --start auto ran its starts for 60 s before the first generation: that is not a generation's pace
    line, = drawn(80, description, fields, values, [(100.0, 1)], since_s=60.0)
    assert line.endswith(" 0:01:40 eta 0:23:20"), line


def test_a_wide_terminal_draws_the_bar_and_the_whole_description():
    description, fields, values = TABULAR
    line, = drawn(140, description, fields, values, [(10.0, 1)], total=80)
    assert line.startswith(description + " ━") and line.endswith(" 0:00:10 eta 0:13:10"), line


@pytest.mark.parametrize(("args", "words"), [
    (["--agent", "tabular", "--guide-visits", "10", "--episodes", "1"], "a training run is already there"),
    (["--agent", "tabular", "--episodes", "1"], "a training run is already there"),  # --guide-visits auto
    (["--generations", "1", "--popsize", "2"], "a model is already there"),
], ids=["tabular", "tabular-auto", "phase-score"])
def test_train_into_an_out_that_holds_a_training_refuses_before_drawing_any_progress(tmp_path, args, words):
    """It drew a bar at 0 (and its elapsed time) on the terminal, then refused."""
    out = tmp_path / "t"
    (out / "model").mkdir(parents=True)
    (out / "model" / "meta.json").write_text("{}")
    (out / "train_state.json").write_text("{}")
    # TTY_COMPATIBLE: rich draws as on a terminal, which the captured stderr is not
    r = signalwise("train", "-s", "single", "--duration", "30", *args, "--out", str(out),
                   env={"TTY_COMPATIBLE": "1", "COLUMNS": "80"})
    assert r.returncode == 2, r.stderr
    assert words in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error:"), r.stderr  # the refusal and nothing else
    assert "━" not in r.stderr and "0:00:0" not in r.stderr and "single" not in r.stderr.split("error:")[0]
