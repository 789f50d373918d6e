"""tests/support/cli.py runs `signalwise` inside the test's process: it must answer as the process does, to the
byte, or the tests that use it would pass on what no user sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import signalwise

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _cases(tmp: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    (tmp / "registry").mkdir(parents=True)
    (tmp / "registry" / "registry.json").write_text(json.dumps({"versions": [], "history": {}}))
    registry = {"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp / 'r.db'}", "SIGNALWISE_MODEL_CACHE": str(tmp / "c"),
                "SIGNALWISE_MODEL_REGISTRY": str(tmp / "registry")}
    return {
        "a table on stdout and a warning logged on stderr": (["models", "list"], registry),
        "a refusal: exit 2, one error line": (["models", "add", str(tmp / "nothing")], registry),
        "a failure: exit 1": (["db", "current", "--db", f"sqlite:///{tmp / 'none.db'}"], {}),
        "Typer's usage error": (["run", "--duration", "soon"], {}),
        "a bad setting in the environment": (["models", "list"], {"SIGNALWISE_DATABASE_URL": "nonsense://"}),
        "the version": (["--version"], {}),
    }


CASES = ("a table on stdout and a warning logged on stderr", "a refusal: exit 2, one error line", "a failure: exit 1",
         "Typer's usage error", "a bad setting in the environment", "the version")


@pytest.mark.parametrize("case", CASES)
def test_a_command_run_in_process_answers_as_its_process_does(tmp_path, case):
    args, env = _cases(tmp_path / "process")[case]
    process = subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=120,
                             env={**os.environ, **env}, cwd=tmp_path)
    args, env = _cases(tmp_path / "here")[case]
    here = signalwise(*args, env=env, cwd=tmp_path)
    same = lambda text: text.replace(str(tmp_path / "here"), str(tmp_path / "process"))  # noqa: E731
    assert (here.returncode, same(here.stdout), same(here.stderr)) == \
        (process.returncode, process.stdout, process.stderr)
    assert process.stdout or process.stderr  # each case says something


def test_the_environment_and_directory_are_the_tests_again_afterwards(tmp_path):
    before = dict(os.environ), os.getcwd(), sys.argv[:]
    signalwise("db", "current", env={"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}, cwd=tmp_path)
    assert (dict(os.environ), os.getcwd(), sys.argv) == before
