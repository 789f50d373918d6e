"""The docs stay true to the code: the configuration reference is generated, and every link resolves."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _config_reference():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_generated_from_the_models():
    expected = _config_reference().render()
    page = ROOT / "docs" / "configuration.md"
    assert page.is_file(), "docs/configuration.md is missing: run .venv/bin/python scripts/config_reference.py"
    assert page.read_text() == expected, (
        "docs/configuration.md differs from the pydantic models: run .venv/bin/python scripts/config_reference.py")


def test_every_environment_variable_read_by_the_code_is_documented():
    documented = (ROOT / "docs" / "configuration.md").read_text()
    read = set()
    for source in (ROOT / "src" / "signalwise").rglob("*.py"):
        read |= set(re.findall(r"\bSIGNALWISE_[A-Z][A-Z0-9_]*", source.read_text()))
    missing = sorted(name for name in read if f"`{name}`" not in documented)
    assert not missing, f"environment variables read in src/ but not in docs/configuration.md: {missing}"


def _relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # links inside code blocks are not links
    targets = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue  # http:, https:, mailto: ... and anchors within the page
        targets.append(target.split("#", 1)[0])
    return targets


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page):
    broken = [t for t in _relative_links(page) if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_the_link_checker_sees_links():
    page = ROOT / "README.md"
    assert _relative_links(page), "README.md has no relative links: the docs/ pages should be linked from it"
