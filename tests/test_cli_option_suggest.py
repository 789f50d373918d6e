"""An unknown option is offered only options close to it: `--bogus` none (the parser's own suggestion named
`--no-gui`, `--out` and `--routes`), a misspelling or a beginning its option (`signalwise.option_suggest`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _error_line(*args: str) -> str:
    done = subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    return next(line for line in done.stderr.splitlines() if "No such option" in line)


def test_an_option_unlike_any_is_offered_none() -> None:
    line = _error_line("run", "--bogus")
    assert line.endswith("No such option: --bogus"), line


@pytest.mark.parametrize(("given", "meant"), [("--duraton", "--duration"), ("--controler", "--controller"),
                                               ("--warm-up", "--warmup"), ("--dur", "--duration")])
def test_a_misspelt_or_begun_option_is_offered_its_option(given: str, meant: str) -> None:
    line = _error_line("run", given, "60")
    assert line.endswith(f"(Possible options: {meant})"), line


def test_compare_offers_its_own_options() -> None:
    assert _error_line("compare", "--seed", "3").endswith("(Possible options: --seeds)")
