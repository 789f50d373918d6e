"""What a live controller switch over the API may name (`POST /api/v1/live/controller`, `/changes`).

A `py:` controller would run a module the request names (`control.plugins.network_refusal`). A `ql:PATH`
model directory, or a `model` among the options, would load whatever the path holds, and the different reasons
for a path that is missing, no model, or another kind of model would tell the caller which paths exist: a path
is taken only inside the models directory (`models_dir`, judged by its text alone: `server_files`), and every
other gets one answer. A registry model (`ql:@active`, `ql:@v3`) is resolved by the server; `registry_models`
from a request would be paths again. The run's own controller, chosen by its operator, stays allowed.
"""

from __future__ import annotations

from pathlib import Path

from signalwise.control.plugins import network_refusal
from signalwise.runtime.live.changes import ControllerChange

from .server_files import inside, outside

MODELS_DIR = "SIGNALWISE_MODELS_DIR"


def over_the_network(change: ControllerChange, own: str, models_dir: Path | None) -> tuple[ControllerChange, str | None]:
    """(`change` with its model paths as their paths in `models_dir`, why it is refused or None). `own`: the
    run's controller spec, allowed as it is."""
    why = network_refusal(change.controller, own=own)
    if why:
        return change, why
    options = change.controller_options or {}
    if "registry_models" in options:
        return change, ("controller_options.registry_models: the server resolves a registry model's directories "
                        "(ql:@active, ql:@v3); a request does not name them")
    update = {}
    kind, _, arg = change.controller.partition(":")
    if kind == "ql" and arg and not arg.startswith("@") and change.controller != own:
        path = _model_path(arg, models_dir)
        if path is None:
            return change, _refused("controller", models_dir)
        update["controller"] = f"ql:{path}"
    if "model" in options:
        path = _model_path(str(options["model"]), models_dir)
        if path is None:
            return change, _refused("controller_options.model", models_dir)
        update["controller_options"] = {**options, "model": path}
    return (change.model_copy(update=update) if update else change), None


def _model_path(arg: str, models_dir: Path | None) -> str | None:
    """`PATH` or `PATH?guide_visits=N` with PATH as its path in `models_dir` (the query kept), or None."""
    name, question, query = arg.partition("?")
    path = inside(name, models_dir)
    return None if path is None else f"{path}{question}{query}"


def _refused(field: str, models_dir: Path | None) -> str:
    return outside(field, "model directory", models_dir, MODELS_DIR,
                   "or switch to a registry model (ql:@active, ql:@v3)")
