"""Models shipped in the package, one per built-in scenario (`scripts/train_shipped_models.py` makes them).

A plain `ql` (no model named) on a built-in scenario runs the model shipped
for it, and the command says so; anywhere else a missing model stays an
error (issue 12): a learned controller never runs something nobody chose.
"""

from __future__ import annotations

from pathlib import Path

#: package data: shipped/<scenario>/meta.json (a phase-score policy: weights only, no tables)
SHIPPED_DIR = Path(__file__).parent / "shipped"
SHIPPED_SCENARIOS = ("single", "corridor", "grid")


def shipped_model_path(scenario: str | None) -> Path | None:
    """The model shipped for `scenario`, or None (not a built-in with a model, or the package lacks it)."""
    if scenario not in SHIPPED_SCENARIOS:
        return None
    path = SHIPPED_DIR / scenario
    return path if (path / "meta.json").is_file() else None


def uses_shipped_model(spec: str, options: dict) -> bool:
    """Whether controller `spec` is a bare `ql` with no model in the controller options."""
    return spec == "ql" and not options.get("model")
