"""tests/support/cli.py runs `signalwise` inside the test's process: it must answer as the process does, to the
byte, or the tests that use it would pass on what no user sees."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from support.cli import in_a_process, signalwise


def _registry(tmp: Path) -> dict[str, str]:
    """A database and an empty directory registry, which the first registry command imports (and logs)."""
    (tmp / "registry").mkdir(parents=True)
    (tmp / "registry" / "registry.json").write_text(json.dumps({"versions": [], "history": {}}))
    return {"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp / 'r.db'}", "SIGNALWISE_MODEL_CACHE": str(tmp / "c"),
            "SIGNALWISE_MODEL_REGISTRY": str(tmp / "registry")}


#: case -> (arguments, environment added) in a directory of its own
CASES = {
    "a table on stdout and a warning logged on stderr": lambda tmp: (["models", "list"], _registry(tmp)),
    "a refusal: exit 2, one error line": lambda tmp: (["models", "add", str(tmp / "nothing")], _registry(tmp)),
    "a failure: exit 1": lambda tmp: (["db", "current", "--db", f"sqlite:///{tmp / 'none.db'}"], {}),
    "Typer's usage error": lambda tmp: (["run", "--duration", "soon"], {}),
    "a bad setting in the environment": lambda tmp: (["models", "list"], {"SIGNALWISE_DATABASE_URL": "nonsense://"}),
    "the version": lambda tmp: (["--version"], {}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.slow
def test_a_command_run_in_process_answers_as_its_process_does(tmp_path, case):
    args, env = CASES[case](tmp_path / "process")
    process = in_a_process(*args, env=env, cwd=tmp_path)
    args, env = CASES[case](tmp_path / "here")
    here = signalwise(*args, env=env, cwd=tmp_path)
    same = lambda text: text.replace(str(tmp_path / "here"), str(tmp_path / "process"))  # noqa: E731
    assert (here.returncode, same(here.stdout), same(here.stderr)) == \
        (process.returncode, process.stdout, process.stderr)
    assert process.stdout or process.stderr  # each case says something


def test_the_environment_and_directory_are_the_tests_again_afterwards(tmp_path):
    before = dict(os.environ), os.getcwd(), sys.argv[:]
    signalwise("db", "current", env={"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}, cwd=tmp_path)
    assert (dict(os.environ), os.getcwd(), sys.argv) == before
