"""A run configuration pydantic refuses is said in one line a user can act on: the option that sets the setting
on the command line, and for a key of a --config file that no setting has, the file and the setting it was
likely meant to be (a YAML typo otherwise read 'invalid timng: Extra inputs are not permitted')."""

import pytest
from support.cli import signalwise


@pytest.mark.parametrize(("yaml_text", "said"), [
    ("timng: {profile: safety}\n", "unknown setting timng (did you mean timing?)"),
    ("timing:\n  min_gren_s: 5\n", "unknown setting timing.min_gren_s (did you mean timing.min_green_s?)"),
    ("shield:\n  fallbak_plan: webster\n", "unknown setting shield."),
    ("colour: blue\n", "unknown setting colour"),
], ids=["top level", "nested", "shield", "no near setting"])
def test_a_config_key_no_setting_has_names_the_file_and_the_likely_setting(yaml_text, said, tmp_path):
    config = tmp_path / "city.yaml"
    config.write_text(yaml_text)
    done = signalwise("run", "--config", str(config), "--duration", "10", "--out", str(tmp_path / "runs"))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and errors[0].startswith(f"error: {config}: ") and said in errors[0], done.stderr
    if "no near" in said or "colour" in yaml_text:
        assert "did you mean" not in errors[0]


def test_a_setting_refused_from_the_command_line_names_its_option(tmp_path):
    done = signalwise("run", "--duration", "-5", "--out", str(tmp_path / "runs"))
    assert done.returncode == 2
    assert "error: invalid duration_s (--duration): Input should be greater than 0" in done.stderr
