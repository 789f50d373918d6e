"""The JWT secret's length rule is the code's (the shortest secret `Settings` takes), stated the same way in
compose.yaml, docs/deployment.md and docs/configuration.md: they said "48+ random characters", "32 characters or
more" and "32+ random bytes"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from signalwise.store.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _shortest_secret_taken() -> int:
    for n in range(1, 257):
        try:
            Settings(jwt_secret="".join(chr(65 + (i * 7) % 26) for i in range(n)))
        except ValidationError:
            continue
        return n
    pytest.fail("no secret length up to 256 is taken")


@pytest.mark.parametrize("name", ["compose.yaml", "docs/deployment.md", "docs/configuration.md"])
def test_each_file_states_the_code_s_length_rule(name):
    n = _shortest_secret_taken()
    text = re.sub(r"\s+", " ", (ROOT / name).read_text())
    assert f"{n} characters or more" in text, name
    # any other statement of a length for the secret: "48+ random characters", "32+ random bytes"
    others = re.findall(r"\b(\d+)\+ (?:random )?(?:characters|bytes)", text)
    assert not others, (name, others)
