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


ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "src" / "signalwise"
#: a file or folder named in a cell: `backend.py`, `learning/`, `sim/camera/`
CODE_PATH = re.compile(r"`([\w./-]+(?:\.py|/))`")


def _package_map() -> dict[str, list[str]]:
    """architecture.md's "Where things are": each row's package, and the files and folders its cell names."""
    section = ARCHITECTURE.read_text().split("## Where things are", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = CODE_PATH.findall(cells[1])
    return rows


def test_every_path_the_package_map_names_exists():
    """A name is the row's package's (`scenario.py` in the `sim/` row is sim/scenario.py), unless it names its own
    folder (`runtime/camera_loop.py`)."""
    rows = _package_map()
    assert "core/" in rows and "cli.py" in rows and sum(map(len, rows.values())) > 30, rows
    missing = [package for package in rows if not (PACKAGE / package).exists()]
    for package, names in rows.items():
        for name in names:
            where = PACKAGE if "/" in name.rstrip("/") else PACKAGE / package
            if not (where / name).exists():
                missing.append(f"{name} (the {package} row)")
    assert not missing, f"docs/architecture.md's package map names what src/signalwise does not hold: {missing}"


def test_the_package_map_has_a_row_for_every_package():
    packages = sorted(f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    rows = _package_map()
    assert [p for p in packages if p not in rows] == [], "docs/architecture.md's package map leaves these out"


def test_the_api_page_names_every_atspm_measure_the_api_serves():
    """docs/api.md lists the measures `GET /api/v1/atspm` serves; a measure added to the code is added there."""
    from signalwise.analytics.atspm.compute import MEASURES

    text = (ROOT / "docs" / "api.md").read_text()
    section = text[text.index("## ATSPM measures"):]
    section = section[:section.index("\n## ", 1)]
    missing = [name for name in MEASURES if f"`{name}`" not in section]
    assert not missing, f"docs/api.md's ATSPM section does not name these measures: {missing}"
