"""`train --help` tells which agent each option is for: an option marked 'tabular:' is one that chooses the
tabular agent (and is refused with phase-score), one marked 'phase-score:' (or 'with --per-signal:') is refused
with the tabular agent, and an unmarked one is read by both. The help text is what a user reads to pick options,
so it must say what `_agent` does."""

import typer

from signalwise import cli
from signalwise.training.commands import PHASE_SCORE_OPTIONS, TABULAR_OPTIONS

SEARCH_MARKS = ("phase-score:", "with --per-signal:")


def _train_options() -> dict[str, str]:
    train = typer.main.get_command(cli.app).commands["train"]
    return {p.name: (p.help or "") for p in train.params if type(p).__name__.endswith("Option")}


def test_every_option_that_chooses_the_tabular_agent_is_marked_and_no_other():
    marked = {name for name, help_ in _train_options().items() if help_.startswith("tabular:")}
    assert marked == set(TABULAR_OPTIONS)


def test_every_phase_score_option_is_marked_and_no_other():
    options = _train_options()
    marked = {name for name, help_ in options.items() if help_.startswith(SEARCH_MARKS) and name != "agent"}
    assert marked == set(PHASE_SCORE_OPTIONS)
    assert "options marked 'tabular:'" in options["agent"]
