"""Every command's --help reads like Unix help: full defaults, plain value names, nothing cut."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from support.cli import signalwise

from signalwise.cli import _plain_metavars, app

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _command():
    command = typer.main.get_command(app)
    _plain_metavars(command)
    return command


def _paths(command, prefix=()):
    for name, sub in getattr(command, "commands", {}).items():
        yield (*prefix, name)
        yield from _paths(sub, (*prefix, name))


@pytest.mark.parametrize("path", list(_paths(_command())), ids=" ".join)
@pytest.mark.slow
def test_help_has_no_placeholders_or_cut_text(path):
    p = signalwise(*path, "--help", env={"COLUMNS": "100"})
    assert p.returncode == 0, p.stderr
    assert not re.search(r"<(str|int|float|bool|path|list\[[A-Za-z]+\])>", p.stdout), p.stdout
    assert "…" not in p.stdout
    assert max(len(line) for line in p.stdout.splitlines()) <= 100


def test_version():
    p = subprocess.run([SIGNALWISE, "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and re.fullmatch(r"signalwise \d+\.\d+\.\d+\S*\n", p.stdout)


@pytest.mark.parametrize("args,needle", [
    (["serve", "--port", "99999"], "--port"),
    (["live", "--speed", "fast", "--duration", "1"], "--speed takes a positive number or 'max'"),
    (["keys", "create", "--name", "x", "--scope", "nope", "--db", "sqlite:////nonexistent-dir/x.db"], "error"),
])
def test_bad_values_get_one_line_and_exit_2_never_a_traceback(args, needle):
    p = signalwise(*args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert needle in p.stderr and "Traceback" not in p.stderr + p.stdout


def test_command_table_names_every_command_and_the_modules_that_add_it():
    """`signalwise X` loads only COMMAND_MODULES[X]: the table must say exactly who adds what."""
    import importlib

    from signalwise.cli import COMMAND_MODULES

    adders: dict[str, set[str]] = {}
    for module in {m for modules in COMMAND_MODULES.values() for m in modules}:
        probe = typer.Typer()
        importlib.import_module(module).register(probe)
        names = {c.name for c in probe.registered_commands} | {g.name for g in probe.registered_groups}
        for name in names - {None}:
            adders.setdefault(name, set()).add(module)
    assert set(COMMAND_MODULES) == set(adders)
    for name, modules in COMMAND_MODULES.items():
        assert adders[name] <= set(modules), name


@pytest.mark.parametrize("command", ["atspm", "run"])
def test_a_command_loads_only_its_own_area(command):
    """`signalwise atspm|run --help` start without FastAPI or SQLAlchemy (each start paid ~2 s of CPU)."""
    code = (f"import sys; sys.argv = ['signalwise', '{command}', '--help']\n"
            "from signalwise.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'signalwise.api') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"


def test_the_whole_command_tree_lists_without_fastapi_or_sqlalchemy():
    """`signalwise --help` registers every area (`live` from the API package, `db purge` from the store) and
    still loads neither: they are imported when a command runs, not when it is listed (~0.8 s of each start)."""
    code = ("import sys; sys.argv = ['signalwise', '--help']\n"
            "from signalwise.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('fastapi', 'sqlalchemy') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "live" in p.stdout and "db" in p.stdout
    assert p.stdout.strip().splitlines()[-1] == "[]"


def test_every_help_that_lists_the_controllers_lists_every_one_a_user_may_choose():
    """The choices of each controller option name every controller the registry has (a controller added to it, such
    as `coordinated`, is in every such help without editing the help). In a fresh process: tests register
    controllers of their own in this one."""
    code = ("import json, typer\n"
            "from signalwise.cli import app\n"
            "from signalwise.control import available\n"
            "command = typer.main.get_command(app)\n"
            "helps = {f'{name} {opt}': [p.help for p in command.commands[name].params if opt in p.opts]\n"
            "         for name, opt in (('run', '--controller'), ('compare', '--controllers'),\n"
            "                           ('evaluate', '--baseline'), ('live', '--controller'))}\n"
            "from importlib.metadata import entry_points\n"
            "plugins = {e.name for e in entry_points(group='signalwise.controllers')}  # 'an installed plugin'\n"
            "print(json.dumps({'available': sorted(set(available()) - plugins), 'helps': helps}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    said = json.loads(p.stdout.splitlines()[-1])
    assert "coordinated" in said["available"]
    for where, helps in said["helps"].items():
        assert len(helps) == 1, where
        listed = set(re.split(r"[\s|,:]+", helps[0]))
        assert set(said["available"]) <= listed, (where, sorted(set(said["available"]) - listed))
