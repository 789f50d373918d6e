"""Deploy and rollback as the API does them: the registry's functions, then the live run at a safe point.

`POST /api/v1/ml/deploy/{model_id}`, `/api/v1/ml/rollback/{id}` and the live
run's `/api/v1/live/deploy|rollback` all come here, and from here to the
same `ModelRegistry` functions as `signalwise models deploy|rollback`.

Order, so that nothing is half-done: the version is first tried on every
target intersection exactly as a run would build it (the table, the layout:
phases and the lanes they serve); only then is the registry changed, and
then the live run is told (`ql:@active` with the registry's models, taken
by each signal at its next green). A live run that still refuses gets the
registry change undone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from signalwise.runtime.commands import registry_options
from signalwise.runtime.live import changes as ch
from signalwise.store.model_registry import DoesNotFit, ModelRegistry, RegistryError, UnknownVersion

from .auth import who
from .errors import refusal

#: what a signal left with no model runs after a rollback on a live run: the Webster plan (the fallback)
NO_MODEL_CONTROLLER = "webster"


def registry(request: Request) -> ModelRegistry:
    """The app's registry (its database, cache and directory registry to import), made once per app."""
    reg = getattr(request.app.state, "model_registry", None)
    if reg is None:
        from signalwise.store.model_registry import open_registry

        reg = request.app.state.model_registry = open_registry(request.app.state.settings)
    return reg


def live_runtime(request: Request):  # noqa: ANN201
    """The live run to tell, or None: none attached, or one that has ended (the registry still changes; a
    run that is over has nothing to switch)."""
    rt = getattr(request.app.state, "live", None)
    if rt is None or rt.stepper is None or getattr(rt, "ended", False):
        return None
    return rt


def no_live_run(request: Request) -> HTTPException:
    """503 for a route that needs a live run, saying whether none is attached or it has ended."""
    rt = getattr(request.app.state, "live", None)
    if rt is not None and getattr(rt, "ended", False):
        return HTTPException(503, f"the live run has ended ({rt.status_text}); the registry is unchanged")
    return HTTPException(503, "no live run is attached to this server (start one with `signalwise live`)")


def http_error(exc: Exception) -> HTTPException:
    """Registry errors as HTTP: unknown version 404, does not fit 409, anything else refused 409."""
    message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, UnknownVersion):
        return HTTPException(404, message)
    return HTTPException(409, message)


@dataclass
class DeployOutcome:
    version: str
    active: dict[str, str]
    not_fitting: dict[str, str] = field(default_factory=dict)  # intersection -> why the version does not fit
    checked_against: str = "model"  # live | scenario | model
    live_change: dict | None = None


def deploy(request: Request, version: str, intersections: list[str] | None, scenario: str | None = None,
           require_live: bool = False) -> DeployOutcome:
    """Deploy `version` at `intersections` (None: every intersection it fits) and to the live run, if any.

    The intersections and their layouts come from the live run, else from
    `scenario`'s network, else from the model itself (then only its tables
    are checked). An unknown version is 404; an unknown intersection 404; a
    version that fits none of the targets, or not one named, 409 with why.
    """
    from signalwise.training.registry import fits

    reg = registry(request)
    rt = live_runtime(request)
    if require_live and rt is None:
        raise no_live_run(request)
    try:
        mv = reg.get(version)
    except RegistryError as exc:
        raise http_error(exc) from None
    if rt is not None:
        inters, checked = rt.stepper.by_id, "live"
    elif scenario is not None:
        from .routers.ml import probed_intersections

        inters, checked = probed_intersections(scenario), "scenario"
    else:
        inters, checked = None, "model"
    if inters is not None:
        if intersections:
            unknown = sorted(set(intersections) - set(inters))
            if unknown:
                raise HTTPException(404, f"unknown intersection(s) {', '.join(unknown)}; "
                                         f"{'the live run has' if checked == 'live' else f'{scenario} has'} "
                                         f"{', '.join(sorted(inters))}")
        candidates = list(dict.fromkeys(intersections or sorted(inters)))
        try:
            reasons = fits(reg, version, [inters[i] for i in candidates])
        except RegistryError as exc:
            raise http_error(exc) from None
        bad = {i: r for i, r in reasons.items() if r is not None}
        if intersections and bad:
            raise HTTPException(409, f"{version} does not fit: " + "; ".join(f"{i}: {r}" for i, r in bad.items()))
        targets = [i for i in candidates if reasons[i] is None]
        if not targets:
            raise HTTPException(409, f"{version} fits none of the intersections "
                                     f"({'; '.join(f'{i}: {r}' for i, r in bad.items())})")
    else:
        targets, bad = list(intersections or mv.intersections), {}
    previous = reg.active()
    try:
        active = reg.deploy(version, targets, who(request))
    except RegistryError as exc:
        raise http_error(exc) from None
    outcome = DeployOutcome(version, active, bad, checked)
    if rt is not None:
        change = ch.ControllerChange(controller="ql:@active", intersections=sorted(active),
                                     controller_options=registry_options(["ql:@active"], registry=reg))
        try:
            outcome.live_change = rt.submit(change, who(request))
        except ch.ChangeRefused as exc:
            rt.refuse(change, who(request), str(exc))
            _undo_deploy(reg, active, previous, who(request))
            raise HTTPException(409, f"the live run refused {version} (the registry is unchanged): {exc}") from None
    return outcome


def _undo_deploy(reg: ModelRegistry, active: dict[str, str], previous: dict[str, str], actor: str) -> None:
    """Take back a deployment the live run refused: roll back where the version was newly made active."""
    changed = [i for i, v in active.items() if previous.get(i) != v]
    if changed:
        reg.rollback(changed, f"{actor} (undone: the live run refused)")


@dataclass
class RollbackOutcome:
    active: dict[str, str | None]
    live_changes: list[dict] = field(default_factory=list)


def rollback(request: Request, intersections: list[str] | None, require_live: bool = False) -> RollbackOutcome:
    """Roll back in the registry, then switch the live run: signals with a version left run it, signals with
    none left run the Webster plan (`NO_MODEL_CONTROLLER`). 409 when nothing is deployed there."""
    from signalwise.training.registry import fits

    reg = registry(request)
    rt = live_runtime(request)
    if require_live and rt is None:
        raise no_live_run(request)
    if rt is not None and intersections:
        unknown = sorted(set(intersections) - set(rt.stepper.by_id))
        if unknown:
            raise HTTPException(404, f"unknown intersection(s) {', '.join(unknown)}; the live run has "
                                     f"{', '.join(sorted(rt.stepper.by_id))}")
    if rt is not None:  # the versions that would be active again must fit, before anything changes
        for inter_id, version in _after_rollback(reg, intersections).items():
            if version is None or inter_id not in rt.stepper.by_id:
                continue
            reason = fits(reg, version, [rt.stepper.by_id[inter_id]])[inter_id]
            if reason:
                raise HTTPException(409, f"rolling back {inter_id} would run {version}, which does not fit: {reason}")
    try:
        active = reg.rollback(intersections, who(request))
    except RegistryError as exc:
        raise http_error(exc) from None
    outcome = RollbackOutcome(active)
    if rt is None:
        return outcome
    live = [i for i in active if i in rt.stepper.by_id]
    back = sorted(i for i in live if active[i])
    left = sorted(i for i in live if not active[i])
    changes = []
    if back:
        changes.append(ch.ControllerChange(controller="ql:@active", intersections=back,
                                           controller_options=registry_options(["ql:@active"], registry=reg)))
    if left:
        changes.append(ch.ControllerChange(controller=NO_MODEL_CONTROLLER, intersections=left))
    for change in changes:
        try:
            outcome.live_changes.append(rt.submit(change, who(request)))
        except ch.ChangeRefused as exc:
            rt.refuse(change, who(request), str(exc))
            raise HTTPException(409, f"rolled back in the registry, but the live run refused: {exc}") from None
    return outcome


def _after_rollback(reg: ModelRegistry, intersections: list[str] | None) -> dict[str, str | None]:
    """What a rollback would leave active, without doing it."""
    out = {}
    for inter in intersections or sorted(reg.active()):
        live = [d for d in reg.history(inter) if d.rolled_back_at is None]
        out[inter] = live[-2].version if len(live) > 1 else None
    return out


def registry_controller_options(request: Request, spec: str) -> dict | None:
    """For a controller switch to `ql:@…` without options: the registry's models, resolved now."""
    try:
        return registry_options([spec], registry=registry(request)) or None
    except Exception as exc:  # noqa: BLE001 - the registry's reason, as the refusal
        raise refusal(f"change refused: {str(exc).strip().splitlines()[-1]}") from None


__all__ = ["DoesNotFit", "DeployOutcome", "RollbackOutcome", "deploy", "http_error", "registry",
           "registry_controller_options", "rollback"]
