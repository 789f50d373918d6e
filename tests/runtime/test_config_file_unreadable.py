"""A `--config` that cannot be read (broken YAML, bytes that are not UTF-8, a directory) is one `error:` line and
exit 2 on every command that takes `--config`, never a traceback: they all read it through one reader
(`runtime.commands.read_config_file`). `signalwise live` read the file itself first, to take out its `alerts:`,
and printed YAML's traceback; no command caught a file that is not UTF-8."""

from __future__ import annotations

import pytest
import typer.main
from support.cli import signalwise

#: the other arguments each command needs to get as far as reading its --config (none of them starts anything)
ARGS = {
    "run": ["-s", "single", "--duration", "3"],
    "compare": ["-s", "single", "--duration", "3"],
    "live": ["-s", "single", "--duration", "3", "--port", "0"],
    "detectors": ["-s", "single"],
    "train": ["-s", "single"],
    "evaluate": ["--model", "no-such-model", "-s", "single"],
}

BAD_FILES = {
    "broken_yaml": (b"timing: [unclosed\n", "not valid YAML (while parsing a flow sequence)"),
    "not_utf8": (b"\xff\xfe bad bytes\n", "not a text file in UTF-8 (byte 0xff at offset 0)"),
    "directory": (None, "is a directory, not a config file"),
}


def _commands_taking_config() -> list[str]:
    from signalwise.cli import app

    found = []

    def walk(command, path):
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        elif any("--config" in getattr(p, "opts", ()) for p in command.params):
            found.append(" ".join(path))

    walk(typer.main.get_command(app), [])
    return sorted(found)


def test_every_command_taking_a_config_file_is_checked_here():
    assert _commands_taking_config() == sorted(ARGS)


@pytest.mark.parametrize("bad", sorted(BAD_FILES))
@pytest.mark.parametrize("command", sorted(ARGS))
def test_an_unreadable_config_file_is_one_error_line(tmp_path, command, bad):
    content, said = BAD_FILES[bad]
    config = tmp_path / ("conf" if content is None else "bad.yaml")
    if content is None:
        config.mkdir()
    else:
        config.write_bytes(content)
    out = tmp_path / "runs"
    done = signalwise(command, *ARGS[command], "--config", str(config),
                      *(["--out", str(out)] if command in ("run", "compare", "live", "train") else []), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == f"error: {config}: {said}" or lines[-1].startswith(f"error: {config}: {said}"), done.stderr
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]], done.stderr
    assert not out.exists() or not any(out.iterdir()), "nothing is left of a command refused at its --config"
