"""CLI of training: train, evaluate, models list|show|add|deploy|rollback."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from ..exitcodes import FAILED
from ..outdirs import why_not_fresh, why_unwritable
from ..runtime.commands import (
    BUILTIN_CHOICES,
    _fail,
    check_seeds,
    friendly_errors,
    raised_from,
    registry_options,
)
from ..store.cli_engine import DB_HELP
from .executors import LOCAL_RAY

DbOpt = Annotated[str | None, typer.Option(
    "--db", help=f"the model registry's {DB_HELP}",
    show_default=False)]

models_app = typer.Typer(help="The model registry (in the database): versions, which one is active per "
                              "intersection, and who deployed what when.", no_args_is_help=True)


def learning_errors(fn):
    """Model and training errors are for people too: one line, exit 2 (bad input) or 1 (a run failed)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..control.learning.qtable import ModelError
        from .selection import ValidationFailed
        from .train import TrainingError

        try:
            return fn(*args, **kwargs)
        except ValidationFailed as exc:
            _fail(str(exc), code=FAILED)
        except (ModelError, TrainingError) as exc:
            _fail(str(exc))
        except Exception as exc:
            if raised_from(exc, "signalwise.store.model_registry", "RegistryError"):
                _fail(str(exc))
            raise

    return friendly_errors(wrapper)


#: the options only the tabular agent reads: given without --agent, they choose it; given with
#: --agent phase-score, they are refused rather than silently ignored (--resume is both agents': `_agent`)
TABULAR_OPTIONS = ("episodes", "batch", "shared", "gamma", "guide", "guide_mode", "guide_visits",
                   "epsilon_start", "downstream_weight", "epsilon_decay", "actions", "state")


#: the options only the phase-score search reads: given with the tabular agent, they are refused
PHASE_SCORE_OPTIONS = ("generations", "popsize", "seeds_per_generation", "restarts", "demand_scale", "per_signal",
                       "sigma", "neighbour_weight", "hold_neighbours", "measure", "zone_m", "shared_lanes", "start",
                       "add_feature", "period", "timing", "cycle_calls", "config")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was given on the command line (not left at its default)."""
    # by the enum's name: click's ParameterSource lives in click or in typer's own copy, by typer's version
    return getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"


def _agent(ctx: typer.Context, agent: str | None, searched: bool = False) -> str:
    """--agent, or phase-score when none is given (it trains the better models everywhere it was measured,
    docs/learning.md), unless a tabular agent's option is given: a command written for the tabular agent
    trains what it asks for. --resume alone goes on with what --out holds: a phase-score search (`searched`),
    else a tabular training."""
    def given(names: tuple[str, ...]) -> list[str]:
        return [name for name in names if _given(ctx, name)]

    tabular, search = given(TABULAR_OPTIONS), given(PHASE_SCORE_OPTIONS)
    resumes_tabular = _given(ctx, "resume") and not searched and not search
    chosen = agent or ("tabular" if tabular or resumes_tabular else "phase-score")
    if chosen == "phase-score" and tabular:
        _fail(f"{', '.join(_flag(n) for n in tabular)}: for --agent tabular; a phase-score search takes "
              "--generations, --popsize and the options named 'phase-score' in --help")
    if chosen == "tabular" and search:
        why = "" if agent else f" ({', '.join(_flag(n) for n in tabular)} without --agent chose tabular)"
        profile = "; the tabular agent trains under the default profile" \
            if {"timing", "cycle_calls", "config"} & set(search) else ""
        _fail(f"{', '.join(_flag(n) for n in search)}: for --agent phase-score{why}{profile}")
    return chosen


def train_command(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="single | corridor | grid | resco:NAME")] = "single",
    agent: Annotated[str | None, typer.Option(help="phase-score: a few weights shared by every signal, learned by policy "
                                            "search (CMA-ES) on the average delay (recommended; the options marked "
                                            "'phase-score:') | tabular: Q-learning per signal (the options marked "
                                            "'tabular:') [default: phase-score; tabular when an option marked "
                                            "'tabular:' is given]", show_default=False)] = None,
    generations: Annotated[int, typer.Option(help="phase-score: CMA-ES generations (with --resume: the new "
                                                  "total)")] = 12,
    popsize: Annotated[int, typer.Option(help="phase-score: candidate weight vectors per generation")] = 8,
    seeds_per_generation: Annotated[int, typer.Option(help="phase-score: training seeds every candidate of a "
                                                           "generation runs (the same for all)")] = 1,
    restarts: Annotated[int, typer.Option(help="phase-score: independent searches, seeds --seed, --seed + 1, ...; "
                                               "the model is the one with the lowest delay on the first one's "
                                               "validation seeds")] = 1,
    demand_scale: Annotated[list[float] | None, typer.Option(
        "--demand-scale", metavar="X",
        help="phase-score: the training episodes' demand times X (SUMO's --scale; repeatable: the k-th seed of "
             "each generation runs the k-th scale, so with --seeds-per-generation 2 and --demand-scale 1 "
             "--demand-scale 1.1 every candidate also meets an hour 10 % heavier); validation runs the routes "
             "as written")] = None,
    per_signal: Annotated[bool, typer.Option(
        "--per-signal", help="phase-score: give every signal its own weights, each searched by its own CMA-ES on "
                             "the queues at that signal, all in the same episodes; best from --start MODEL with "
                             "--sigma 0.3 (the model keeps the shared weights for signals it does not name)")] = False,
    sigma: Annotated[float, typer.Option(help="phase-score: the search's initial spread, times each weight's own "
                                              "step; below 1 to fine-tune a model given as --start")] = 1.0,
    neighbour_weight: Annotated[float, typer.Option(
        help="with --per-signal: how much each neighbouring signal's queue (a signal whose approach this one's "
             "exits reach within 200 m, or the other way round) counts in a signal's score; 0 scores each "
             "signal by its own queue only")] = 0.0,
    hold_neighbours: Annotated[bool, typer.Option(
        "--hold-neighbours", help="with --per-signal: in each episode only signals no two of which are "
                                  "neighbours try candidates while the others run their search's current "
                                  "weights, so a signal's score moves with its own candidate; a generation "
                                  "runs once per such class (2 on a grid or a corridor)")] = False,
    measure: Annotated[str, typer.Option(help="phase-score: count (vehicles) | density (vehicles per 100 m of "
                                              "lane: short approach lanes weigh their queue)")] = "count",
    zone_m: Annotated[float | None, typer.Option(
        "--zone-m", help="phase-score: metres from the junction over which each movement is measured: a lane "
                         "shorter than this is read with the lanes up or down the road within it, as max-pressure "
                         "does (default: max-pressure's under --timing: 50, 0 under reference; 0 = each lane "
                         "alone)")] = None,
    shared_lanes: Annotated[str | None, typer.Option(
        "--shared-lanes", help="phase-score: a lane that feeds several stop-line lanes (before a turn pocket): "
                               "split (each pocket's zone counts its share of it: a pocket shorter than its "
                               "queue sees the queue behind it) | skip (in no zone) (default: max-pressure's "
                               "under --timing: split)")] = None,
    start: Annotated[str, typer.Option(
        help="phase-score: where the search starts, each start phase-score weights named after a controller, "
             "not that controller: max-pressure (halting in − out, every 5 s, no hold; not the max-pressure "
             "controller evaluate compares against) | actuated "
             "(extend a green while its detectors see traffic, every 1 s; all features) | max-pressure-hold "
             "(our max-pressure's defaults as weights: a young green held, a change pays for its clearance) | "
             "max-pressure-pays (the same without the young green's hold) | "
             "auto (run each on the validation seeds, search from the lowest delay) | PATH (a phase-score "
             "model's directory: fine-tune its weights, e.g. under another --timing or on your network)")]
    = "max-pressure",
    add_feature: Annotated[list[str] | None, typer.Option(
        "--add-feature", metavar="NAME",
        help="phase-score: weigh this feature too, from weight 0 (repeatable): switch_red_min (minutes since a "
             "phase was last green) | switch_halt_red (its halting vehicles times those minutes) | hold_gap "
             "(detectors still see traffic on the green's lanes) | switch_cut_halt, switch_cut_moving (halting, "
             "moving vehicles on the green links a change would end) | switch_new_halt (halting vehicles on the "
             "links it would start) | in_halt_blocked (halting vehicles whose exit lane stands full) | hold_load "
             "(the current phase: halting vehicles on every link, so a congested junction changes less)")] = None,
    period: Annotated[float | None, typer.Option(help="phase-score: seconds between decisions [default: the "
                                                      "start's: 1 for actuated, else 5]", show_default=False)] = None,
    timing: Annotated[str | None, typer.Option(help="phase-score: timing profile of the training episodes (safety | benchmark | "
                                                    "reference); the model learns what a change costs under it")] = None,
    config: Annotated[Path | None, typer.Option(
        help="phase-score: YAML file of run settings (as for `run --config`): the training episodes run under its "
             "timing, shield, step_length_s, time_to_teleport_s, sumo_options and sumocfg_options (your city's "
             "clearances: the "
             "model learns what a change costs under them), and evaluate runs the model under them; --timing and "
             "--cycle-calls set keys beside its timing")] = None,
    cycle_calls: Annotated[bool, typer.Option(
        "--cycle-calls", help="phase-score: the episodes' cycle bound runs from a call, so a phase nobody waits "
                              "for is not forced round (timing key cycle_calls; docs/configuration.md)")] = False,
    episodes: Annotated[int, typer.Option(help="tabular: total episodes (with --resume: the new total)")] = 40,
    workers: Annotated[int, typer.Option(help="parallel worker processes")] = 2,
    seed: Annotated[int, typer.Option(help="the same seed (and --batch) reproduces the model exactly")] = 1,
    out: Annotated[Path, typer.Option(help="training directory: model/, checkpoints/, episodes/")] = Path("models/train"),
    resume: Annotated[bool, typer.Option(help="continue the training in --out from its last checkpoint, with the "
                                         "options it was started with. tabular: an option left out, e.g. "
                                         "--gamma, --batch, --duration or its one --guide-visits threshold, is "
                                         "taken from it; only --episodes, --workers and --ray may change. "
                                         "phase-score: from its last generation, the search's options given again "
                                         "as they were; only --generations, --workers and --ray may change")] = False,
    batch: Annotated[int, typer.Option(help="tabular: episodes per round, run in parallel from the same table")] = 2,
    duration: Annotated[float | None, typer.Option(help="simulated seconds per episode (default: the scenario's)")] = None,
    shared: Annotated[bool, typer.Option(help="tabular: one table shared by every intersection (they must have the same phases "
                                          "and lane groups)")] = False,
    gamma: Annotated[float, typer.Option(help="tabular: discount per 5 s of elapsed time")] = 0.95,
    guide: Annotated[str, typer.Option(help="tabular: policy followed where the table knows little: max-pressure | none")] = "max-pressure",
    guide_mode: Annotated[str, typer.Option(help="tabular: each-action: follow the guide until every action was tried "
                                                 "--guide-visits times in the state (also when the model runs) | "
                                                 "state: until the state was seen --guide-visits times")] = "each-action",
    guide_visits: Annotated[str, typer.Option(
        help="tabular: see --guide-mode; auto: train with 10 and with 30, keep the one with the lower delay on the "
             "--validation-seeds (or run that table behind max-pressure alone if that is lower still)")] = "auto",
    validation_seeds: Annotated[int, typer.Option(help="seeds the final choice is made on, never training or "
                                                       "held-out seeds: phase-score, the learned weights against "
                                                       "the start and among --restarts; tabular, with "
                                                       "--guide-visits auto")] = 3,
    epsilon_start: Annotated[float, typer.Option(help="tabular: exploration in the first episode")] = 0.3,
    downstream_weight: Annotated[float, typer.Option(help="tabular: coordination: weight of the halting vehicles on the "
                                                          "outgoing lanes (neighbours' approaches) in the cost")] = 0.0,
    epsilon_decay: Annotated[float, typer.Option(help="tabular: epsilon = max(0.02, start * decay ** episode)")] = 0.97,
    actions: Annotated[str, typer.Option(help="tabular: switch: hold or hand over to max-pressure's pick | phases: pick the next phase")] = "switch",
    state: Annotated[str, typer.Option(help="tabular: compact (with --actions switch): phase, green time, pressure gap, "
                                            "current and next queue | lane-groups: phase, green time, queue per phase")] = "compact",
    sumocfg: Annotated[Path | None, typer.Option(help="train on your own SUMO config instead of --scenario")] = None,
    net: Annotated[Path | None, typer.Option(help="train on your own network (.net.xml); use with --routes")] = None,
    routes: Annotated[list[Path] | None, typer.Option(help="route files for --net (repeatable)")] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="[ADDRESS]",
        help="run the episodes as Ray tasks: no address starts a local Ray, 'auto' or 'ray://host:port' joins "
             "that cluster (pip install 'signalwise[ray]')")] = None,
) -> None:
    """Train a learning model; every episode runs the real loop, shield and safety audit included."""
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        # before anything is made in --out: the episodes' own check came after their directories
        _fail(f"--duration must be a number of seconds above 0, not {duration:g}")
    if _given(ctx, "scenario") and (sumocfg is not None or net is not None):
        # as `run` and `evaluate` refuse it: the network trained on is one the command names, not a guess
        _fail("--scenario is not used with --sumocfg or --net: give one network")
    if out is not None and why_unwritable(out):  # as run and compare say it, before anything starts
        _fail(f"--out {out}: {why_unwritable(out)}")
    from .policy_search import CONFIG_FILE

    searched = out is not None and any((out / f).is_file() for f in (CONFIG_FILE, "search.json")) \
        and not any(out.glob("**/train_state.json"))
    agent = _agent(ctx, agent, searched)
    if resume and agent == "tabular" and searched:
        _fail(f"{out} holds a phase-score search: resume it with --agent phase-score (or --resume alone)")
    if agent == "phase-score":
        _train_policy(scenario, generations, popsize, seeds_per_generation, validation_seeds, workers, seed, out,
                      duration, timing, sumocfg, net, routes, ray, measure, start, zone_m, period, restarts,
                      add_feature or [], cycle_calls, per_signal, sigma, neighbour_weight, hold_neighbours,
                      shared_lanes, tuple(demand_scale or ()), config, resume)
        return
    if agent != "tabular":
        _fail("--agent must be phase-score or tabular")
    hyper = dict(gamma=gamma, guide=guide, guide_mode=guide_mode, guide_visits=guide_visits,
                 epsilon_start=epsilon_start, epsilon_decay=epsilon_decay, downstream_weight=downstream_weight)
    if resume and not any(_given(ctx, n) for n in ("scenario", "sumocfg", "net", "routes")):
        from .train import resumed_network

        began = resumed_network(out)  # the network it was started on, as the other options left out
        if began is not None:
            scenario = began["scenario"]
            sumocfg = Path(began["sumocfg"]) if began["sumocfg"] else None
            net = Path(began["net"]) if began["net"] else None
            routes = [Path(r) for r in began["routes"]] or None
    if resume:  # what --resume takes from the training it continues where the command leaves it out
        seed, batch, duration, hyper["guide_visits"] = _resumed_defaults(
            out, {n: v for n, v in (("seed", seed), ("batch", batch), ("duration", duration),
                                    ("guide_visits", guide_visits)) if _given(ctx, n)},
            seed, batch, duration, guide_visits)
    _train(scenario, episodes, workers, seed, out, resume, batch, duration, shared, hyper, actions, state,
           sumocfg, net, routes, ray, validation_seeds)


#: what a training writes into its --out (a search's settings and state, episodes, checkpoints, `--restarts`'
#: searches, `--guide-visits auto`'s candidates): an --out holding only these is a training's
TRAINING_FILES = ("search_config.json", "search.json", "search_state.pkl", "train_state.json", "episodes",
                  "checkpoints", "restarts", "guide-*", "*.tmp")  # a kill between two writes leaves a .tmp


def _check_fresh_out(out: Path, resume: bool) -> None:
    """What a new training does with an --out that already holds files, said before it starts. A model there, or a
    tabular training's state, was refused already (`check_out`, `check_search`). What a training that failed or
    was killed left (no model) is trained over from the start, as docs/learning.md says: a note says so, with
    --resume's way to go on instead. Files of anything else are refused, as `run`'s --run-dir and `compare`'s
    --out refuse them (`why_not_fresh`): a training never writes over another's files."""
    if resume or out is None or why_not_fresh(out, "a training") is None:
        return
    import sys

    names = [p.name for p in Path(out).iterdir()]
    if any(not any(fnmatch.fnmatch(n, pattern) for pattern in TRAINING_FILES) for n in names):
        _fail(f"--out {out}: {why_not_fresh(out, 'a training')}")
    print(f"note: --out {out} holds a training that did not finish (no model): it starts over there, replacing "
          "what that training left; the same command with --resume goes on from its last checkpoint or generation "
          "instead", file=sys.stderr)


def _resumed_defaults(out: Path, given: dict, seed: int, batch: int, duration: float | None,
                      guide_visits: str) -> tuple[int, int, float | None, str]:
    """--seed, --batch, --duration and --guide-visits for a resume: those given, else the training's in `out`
    (its train_state.json, or its candidates' with --guide-visits auto). Read here, before the configuration is
    copied per candidate, so that the validation runs on the training's seeds and window too."""
    states = [out / "train_state.json", *sorted(out.glob("guide-*/train_state.json"))]
    prev = None
    for state in states:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            prev = json.loads(state.read_text())["config"]
            break
    if not isinstance(prev, dict):
        return seed, batch, duration, guide_visits  # nothing to resume: train() says so
    seed = given.get("seed", prev.get("seed", seed))
    batch = given.get("batch", prev.get("batch", batch))
    duration = given.get("duration", prev.get("duration_s", duration))
    if "guide_visits" not in given and (out / "train_state.json").is_file():  # a training of one threshold
        with contextlib.suppress(KeyError, TypeError, ValueError):
            guide_visits = str(int(prev["hyper"]["guide_visits"]))
    return seed, batch, duration, guide_visits


def _episode_settings(config: Path | None, timing: str | None, cycle_calls: bool, who: str = "a training") -> dict:
    """The run settings every training episode (and evaluate, later) runs under: `config`'s episode settings
    (`run_settings.EPISODE_SETTINGS`), then --timing (its profile) and --cycle-calls set beside its timing keys.
    Settings of the file a training does not take (its network, controller, seed, ...: the command's own) are
    named on stderr, not applied."""
    from ..runtime.commands import read_config_file
    from .run_settings import EPISODE_SETTINGS, episode_settings, unapplied

    data: dict = {}
    if config is not None:
        try:
            data = read_config_file(config)
        except FileNotFoundError as exc:
            _fail(str(exc))
        left = unapplied(data)
        if left:
            typer.echo(f"{config}: {', '.join(left)} not applied: {who} takes only "
                       f"{', '.join(EPISODE_SETTINGS)} from a --config file (the network is --scenario, --sumocfg "
                       "or --net; the controllers, seeds and durations are the command's)", err=True)
    return episode_settings(data, timing, cycle_calls)


def _note_sumocfg(run: dict, sumocfg: Path | None) -> None:
    """The warning `run`, `compare` and `evaluate` give, before any episode: the settings of `sumocfg` beyond its
    files and window (time-to-teleport, step-length, outputs...) that the episodes, run under `run`'s settings,
    do not apply (`runtime.loop.sumocfg_note`)."""
    if sumocfg is None:
        return
    from ..runtime.config import RunConfig
    from ..runtime.loop import resolve_scenario, sumocfg_note

    cfg = RunConfig.model_validate({**run, "sumocfg": sumocfg})
    note = sumocfg_note(cfg, resolve_scenario(cfg))
    if note:
        typer.secho(f"warning: {note}", fg="yellow", err=True)


def _check_network(run: dict, sumocfg: Path | None, net: Path | None, routes, duration: float | None) -> None:  # noqa: ANN001
    """A user's network started once before any episode, as `compare` starts it (`runtime.compare.check_network`):
    one no episode could run (no signal to control, only NEMA programs, routes over edges it lacks) is one line at
    once, not a refusal after the first episodes with their directories left in --out. A built-in network has
    signals to control."""
    if sumocfg is None and net is None:
        return
    from ..runtime.compare import check_network
    from ..runtime.config import RunConfig

    check_network(RunConfig.model_validate({**run, "scenario": None, "sumocfg": sumocfg, "net": net,
                                            "routes": list(routes or []), "duration_s": duration}))


class OptionalRayAddress(TyperCommand):
    """Lets `--ray` come without an address (then: a local Ray); Typer has no optional-value options."""

    def parse_args(self, ctx, args):
        args = list(args)
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
                args.insert(i + 1, LOCAL_RAY)
                break
        return super().parse_args(ctx, args)


@learning_errors
def _train(scenario, episodes, workers, seed, out, resume, batch, duration, shared, hyper, actions, state,
           sumocfg=None, net=None, routes=None, ray=None, validation_seeds=3) -> None:
    import time

    from rich.console import Console

    started = time.monotonic()  # the summary reports the command's own wall time

    from ..consoles import progress_line
    from ..control.learning.agent import Hyper
    from ..sim.scenario import from_files, from_sumocfg, load
    from .executors import ExecutorError, make_executor
    from .progress import TABULAR_FIELDS, train_progress
    from .selection import candidate_dir, check_selected, train_selected
    from .train import TrainConfig, check_out, train

    if episodes < 1 or workers < 1 or batch < 1 or validation_seeds < 1:
        _fail("--episodes, --workers, --batch and --validation-seeds must be at least 1")
    if actions not in ("phases", "switch"):
        _fail("--actions must be phases or switch")
    if state not in ("compact", "lane-groups"):
        _fail("--state must be compact or lane-groups")
    if state == "compact" and actions != "switch":
        _fail("--state compact needs --actions switch (use --state lane-groups with --actions phases)")
    if hyper["guide"] not in ("max-pressure", "none"):
        _fail("--guide must be max-pressure or none")
    if hyper["guide_mode"] not in ("each-action", "state"):
        _fail("--guide-mode must be each-action or state")
    if not 0 < hyper["gamma"] < 1 or not 0 < hyper["epsilon_decay"] <= 1 or not 0 <= hyper["epsilon_start"] <= 1:
        _fail("--gamma must be in (0, 1), --epsilon-start in [0, 1] and --epsilon-decay in (0, 1]")
    if hyper["downstream_weight"] < 0:
        _fail("--downstream-weight must be at least 0")
    candidates: tuple[int, ...] = ()
    if hyper["guide_visits"] == "auto":
        from .selection import AUTO_CANDIDATES

        candidates = AUTO_CANDIDATES
        hyper["guide_visits"] = candidates[-1]
    elif not hyper["guide_visits"].isdigit():
        _fail("--guide-visits must be auto or a whole number (at least 0)")
    hyper["guide_visits"] = int(hyper["guide_visits"])
    if candidates and (hyper["guide"] != "max-pressure" or hyper["guide_mode"] != "each-action"):
        _fail("--guide-visits auto chooses the threshold of --guide max-pressure --guide-mode each-action; "
              "give a number with other guides")
    if net is not None and not routes:
        _fail("--net needs at least one --routes file")
    if sumocfg is not None:
        scenario = from_sumocfg(sumocfg).name  # the model records the network it was trained on
        _note_sumocfg({}, sumocfg)  # the episodes run with the run settings' defaults
    elif net is not None:
        scenario = from_files(net, tuple(routes)).name
    else:
        load(scenario)
    _check_network({}, sumocfg, net, routes, duration)
    cfg = TrainConfig(scenario=scenario, episodes=episodes, seed=seed, workers=workers, batch=batch, out=out,
                      duration_s=duration, shared=shared,
                      hyper=Hyper(**hyper),
                      features={"actions": actions, **({"state": state} if state != "lane-groups" else {})},
                      sumocfg=sumocfg, net=net, routes=list(routes or []), ray_address=ray)
    # before the progress bar: an --out that holds a training (or nothing to resume) is one line, not a bar at 0
    if candidates:
        check_selected(cfg, candidates, resume)
    else:
        check_out(cfg, resume)
    _check_fresh_out(out, resume)
    try:  # before the progress bar: a missing Ray or an unreachable cluster is one line
        executor = make_executor(ray, workers)
    except ExecutorError as exc:
        _fail(str(exc))
    console = Console(stderr=True)
    dirs = [candidate_dir(out, n) for n in candidates] or [out]
    done0 = sum(json.loads((d / "train_state.json").read_text())["episodes_done"]
                for d in dirs if resume and (d / "train_state.json").is_file())
    label = f"{scenario} ({len(dirs)}x{episodes} ep)" if candidates else scenario
    with train_progress(console, TABULAR_FIELDS) as bar:
        task = bar.add_task(label, total=episodes * len(dirs), completed=done0, resumed=done0, eps="-", delay="-",
                            viol=0)
        violations = [0]

        def on_episode(r):
            violations[0] += max(0, r.violations)
            bar.update(task, advance=1, eps=f"{r.epsilon:.2f}", delay=f"{r.avg_delay_s:.0f}s", viol=violations[0])
            progress_line(bar, task, "episodes",
                          f"ε {r.epsilon:.2f}, delay {r.avg_delay_s:.0f} s, violations {violations[0]}")

        def on_stage(text: str) -> None:  # the stage first: on 80 columns the end of the description is cut
            bar.update(task, description=f"{text}: {label}")

        try:
            if candidates:
                model = train_selected(cfg, candidates, validation_seeds, resume=resume, on_episode=on_episode, on_stage=on_stage,
                                       executor=executor)
            else:
                model = train(cfg, resume=resume, on_episode=on_episode, executor=executor)
        except KeyboardInterrupt as exc:  # what the last line tells a person to do next
            exc.what_is_left = (f"the training in {out} stops at its last checkpoint; the same command with "
                                "--resume goes on from there")
            raise
        finally:
            executor.close()
    # the result, as evaluate's and compare's tables, on stdout (the progress above is stderr's), a line per
    # line: a log or a file is read and grepped line by line, never folded at 80 columns
    console = Console(soft_wrap=True)
    t = model.meta["training"]
    sizes = ", ".join(f"{n}: {tb.encoding.n_states} states x {tb.n_actions} actions ({tb.nbytes / 1024:.0f} KiB)"
                      for n, tb in model.tables.items())
    console.print(f"model: {out / 'model'}  ({t['episodes']} episodes; {_wall(t['wall_s'], resume, started)}; "
                  f"worker peak RSS {t['peak_worker_rss_mb']} MB, shield violations {t['violations']})")
    console.print(_model_id_line(out / "model"))
    console.print(f"tables: {sizes}")
    if "selection" in model.meta:
        console.print(_selection_line(model.meta["selection"]))
    found = max(violations[0], t["violations"])  # this session's episodes, or the whole (resumed) run's
    if found:
        _fail(f"the independent audit found {found} shield violation(s) during training", code=1)
    console.print(_next_steps(out / "model", scenario, sumocfg, net, routes), soft_wrap=True)


@learning_errors
def _train_policy(scenario, generations, popsize, seeds_per_generation, validation_seeds, workers, seed, out,
                  duration, timing, sumocfg, net, routes, ray, measure="count", start="max-pressure",
                  zone_m=None, period=None, restarts=1, add_feature=(), cycle_calls=False, per_signal=False,
                  sigma=1.0, neighbour_weight=0.0, hold_neighbours=False, shared_lanes=None,
                  demand_scales=(), config=None, resume=False) -> None:
    import time

    from rich.console import Console

    from ..consoles import progress_line
    from ..runtime.config import RunConfig
    from ..sim.scenario import load
    from .executors import ExecutorError, make_executor
    from .policy_search import (
        check_search,
        config_from_starts,
        generations_done,
        option_errors,
        search,
        starts_for,
    )
    from .progress import SEARCH_FIELDS, train_progress

    started = time.monotonic()
    if period is not None and not period > 0:
        _fail("--period must be above 0 seconds")
    try:
        starts = starts_for(start, period, add_feature)
    except ValueError as exc:
        _fail(str(exc))
    begin = next(iter(starts.values()))  # with auto: replaced by the one chosen
    if begin.measure is not None and begin.measure != measure:
        _fail(f"--start {start}: that model measures {begin.measure}, so its weights are in those units; "
              f"add --measure {begin.measure}")
    if min(generations, seeds_per_generation, validation_seeds, workers, restarts) < 1 or popsize < 2:
        _fail("--generations, --seeds-per-generation, --validation-seeds, --workers and --restarts must be at "
              "least 1, --popsize at least 2")
    if net is not None and not routes:
        _fail("--net needs at least one --routes file")
    if measure not in ("count", "density"):
        _fail("--measure must be count or density")
    refused = option_errors(zone_m, shared_lanes, demand_scales)
    if refused:
        (name, *_), why = refused[0]
        _fail(f"{_flag(name)} {why}")
    if not sigma > 0:
        _fail("--sigma must be above 0")
    if not neighbour_weight >= 0:
        _fail("--neighbour-weight must be 0 or more")
    if (neighbour_weight or hold_neighbours) and not per_signal:
        _fail("--neighbour-weight and --hold-neighbours are for a per-signal search; add --per-signal")
    own = sumocfg is not None or net is not None
    run = _episode_settings(config, timing, cycle_calls)
    # the episodes' configuration, checked once here: a bad profile or network is one line, not a worker's traceback
    RunConfig.model_validate({**run, "scenario": None if own else scenario, "sumocfg": sumocfg, "net": net,
                              "routes": list(routes or [])})
    if not own:
        load(scenario)
    _note_sumocfg(run, sumocfg)
    _check_network(run, sumocfg, net, routes, duration)
    cfg = config_from_starts(starts, scenario=None if own else scenario, generations=generations, popsize=popsize,
                             seeds_per_generation=seeds_per_generation, validation_seeds=validation_seeds,
                             seed=seed, workers=workers, out=out, duration_s=duration, run=run, sumocfg=sumocfg,
                             net=net, routes=list(routes or []), ray_address=ray, measure=measure, zone_m=zone_m,
                             shared_lanes=shared_lanes, restarts=restarts, per_signal=per_signal, sigma0=sigma,
                             neighbour_weight=neighbour_weight, hold_neighbours=hold_neighbours,
                             demand_scales=demand_scales)
    check_search(cfg, resume)  # before the progress bar: an --out that holds a model is one line, not a bar at 0
    _check_fresh_out(out, resume)
    # the generations a resume goes on from, each search's (with --restarts, in its own directory)
    done0 = sum(generations_done(out if restarts == 1 else out / "restarts" / f"seed-{seed + k}")
                for k in range(restarts)) if resume else 0
    try:
        executor = make_executor(ray, workers)
    except ExecutorError as exc:
        _fail(str(exc))
    console = Console(stderr=True)
    label = cfg.scenario or Path(sumocfg or net).name
    with train_progress(console, SEARCH_FIELDS) as bar:
        per = " per signal" + (", one colour class at a time" if hold_neighbours else "") if per_signal else ""
        title = f"{label}{per} ({popsize}x{seeds_per_generation} episodes/gen" + \
            (f", {restarts} searches)" if restarts > 1 else ")")
        task = bar.add_task(title, total=generations * restarts, completed=done0, resumed=done0, best="-",
                            mean="-", sigma="-")

        def on_generation(r):
            bar.update(task, advance=1, best=f"{r.best_avg_delay_s:.1f}s", mean=f"{r.mean_avg_delay_s:.1f}s",
                       sigma=f"{r.sigma:.2f}")
            progress_line(bar, task, "generations", f"best {r.best_avg_delay_s:.1f} s, mean "
                                                    f"{r.mean_avg_delay_s:.1f} s, σ {r.sigma:.2f}")

        def on_start(choice):
            bar.console.print(_starts_line(choice))
            # the time left counts the generations' pace, not the starts' runs before them
            begun = next(t for t in bar.tasks if t.id == task).elapsed or 0.0
            bar.update(task, description=title, since_s=begun)

        if len(starts) > 1:
            bar.update(task, description=f"{label}: running the {len(starts)} starts on "
                                         f"{validation_seeds} validation seed(s)")
        try:
            model = search(cfg, on_generation, executor, starts=starts if len(starts) > 1 else None,
                           on_start=on_start, resume=resume)
        except KeyboardInterrupt as exc:  # what the last line tells a person to do next
            exc.what_is_left = (f"the search in {out} stops at its last generation; the same command with "
                                "--resume goes on from there")
            raise
        finally:
            executor.close()
    console = Console(soft_wrap=True)  # the result on stdout, a line per line (as the tabular agent's above)
    sel, pol = model.meta["selection"], model.meta["policy"]
    start = model.meta["training"]["config"]["start_name"]
    t = model.meta["training"]
    # a resumed search counts the episodes of the same search run in one go; the validations that ended its earlier
    # sessions (their models replaced) are said apart
    earlier = t.get("replaced_validation_episodes")
    besides = f", besides {earlier} validation episodes of the sessions it resumed" if earlier else ""
    console.print(f"model: {out / 'model'}  ({t['episodes']} episodes{besides}; "
                  f"{_wall(t['wall_s'], resume, started)}; shield violations {t['violations']})")
    console.print(_model_id_line(out / "model"))
    console.print(f"measured over {pol['zone_m']:g} m lane zones" if pol["zone_m"] else "measured lane by lane")
    if pol.get("shared_lanes") == "split":
        console.print("the lane before a turn pocket counts for each pocket, split")
    console.print("weights: " + ", ".join(f"{f} {w:+.3g}" for f, w in zip(pol["features"], pol["weights"], strict=True)))
    if pol.get("signal_weights"):
        console.print(f"each of {len(pol['signal_weights'])} signals has its own weights (meta.json: "
                      "policy.signal_weights); the weights above are for any other signal")
    kept = "the learned weights" if sel["chosen"] == "learned" else f"the start: {_start_named(start, controller=True)}"
    console.print(f"validation (seeds {sel['seeds']}, avg delay): learned {sel['learned_avg_delay_s']:.1f} s, "
                  f"the start, {_start_named(start)} {sel['start_avg_delay_s']:.1f} s -> the model keeps {kept}")
    if "restarts" in sel:
        r = sel["restarts"]
        tried = ", ".join(f"seed {seed} {d:.1f} s" for seed, d in r["candidates"].items())
        console.print(f"restarts (validation seeds {r['seeds']}, avg delay): {tried} -> the model is seed "
                      f"{r['chosen']}'s search")
    console.print(_next_steps(out / "model", scenario, sumocfg, net, routes, timing, config, cycle_calls),
                  soft_wrap=True)


def _model_id_line(model: Path) -> str:
    """The model's id, the name to cite it by (`provenance.model_id`)."""
    from ..provenance import model_dir_id

    return (f"model id: {model_dir_id(model)} (its weights and the options that decide: the same for the same "
            "model, whatever its meta.json records since)")


def _wall(wall_s: float, resumed: bool, started: float) -> str:
    """The training's wall time as meta.json records it (training.wall_s: a resumed one's sessions summed), and
    this command's (`started`: its time.monotonic() at the start), which also counts its start-up."""
    import time

    every = ", every session summed" if resumed else ""
    return (f"training {wall_s:.1f} s in all (meta.json training.wall_s{every}), this command "
            f"{time.monotonic() - started:.0f} s")


def _next_steps(model: Path, scenario: str, sumocfg: Path | None, net: Path | None, routes,  # noqa: ANN001
                timing: str | None = None, config: Path | None = None, cycle_calls: bool = False) -> str:
    """What a person does with a model just trained: the three commands, with its path, its network (evaluate
    finds the network and the rules itself; a run must be told) and the rules it learned under."""
    if sumocfg is not None:
        where = f"--sumocfg {sumocfg}"
    elif net is not None:
        where = " ".join([f"--net {net}", *(f"--routes {r}" for r in routes or [])])
    else:
        where = f"-s {scenario}"
    rules = "".join([f" --timing {timing}" if timing else "", f" --config {config}" if config else ""])
    calls = "  (with timing: {cycle_calls: true} in a --config file, as it trained)" if cycle_calls else ""
    return (f"next: signalwise evaluate --model {model}  (held-out seeds against max-pressure); "
            f"signalwise run {where} -c ql:{model}{rules}{calls}; signalwise models add {model}  "
            "(the registry, to deploy it)")


#: what each named --start weighs (search_starts.STARTS), as train prints it: a start is phase-score weights
#: named after a controller, never that controller (its own measure, hold, lost time and zones), which is
#: what `evaluate` compares a model against
START_WEIGHTS = {
    "max-pressure": "halting in − out, no hold",
    "actuated": "halting in − out, a green held while its detectors see traffic",
    "max-pressure-hold": "every vehicle in − halting out, a young green held, a change pays for its clearance",
    "max-pressure-pays": "every vehicle in − halting out, a change pays for its clearance",
}


def _start_named(name: str, controller: bool = False) -> str:
    """The start `name` for what it is: a named start's weights and what they weigh, or a model's weights;
    `controller`: say too that it is not the controller of that name (where a model is said to keep it)."""
    if name not in START_WEIGHTS:
        return f"the weights of the model {name}"
    named = f"the weights of {name} ({START_WEIGHTS[name]})"
    if controller:
        named += f", not the {name.removesuffix('-hold').removesuffix('-pays')} controller"
    return named


def _starts_line(choice: dict) -> str:
    tried = ", ".join(f"{n} {d:.1f} s" for n, d in choice["candidates"].items())
    return (f"starts, as weights (validation seeds {choice['seeds']}, avg delay): {tried} -> the "
            f"search starts at {_start_named(choice['chosen'])}")


def _selection_line(sel: dict) -> str:
    """The validation's figures, each candidate's delay with the share of its steps the shield's Webster fallback
    ran (the table's confidence below the threshold; training episodes never fall back, so the share is first
    seen here), and the choice. The third candidate is named for what runs: max-pressure's decisions, but the
    table's confidence, so its fallback share is the table's and its delay may differ from max-pressure's."""
    share = sel.get("fallback_share") or {}

    def fallback(key: str) -> str:
        return f" (Webster fallback {share[key]:.0%})" if share.get(key) is not None else ""

    tried = ", ".join(f"guide {n}: {d:.1f} s{fallback(str(n))}" for n, d in sel["candidates"].items())
    runs = ("max-pressure's decisions" if sel["guide_visits"] != sel["trained_with"]
            else f"guide {sel['guide_visits']}")
    line = (f"validation (seeds {sel['seeds']}, avg delay): {tried}, max-pressure's decisions under the confidence "
            f"of the table of guide {sel['trained_with']}: {sel['guide_only_avg_delay_s']:.1f} s"
            f"{fallback('guide_only')}, max-pressure: {sel['max_pressure_avg_delay_s']:.1f} s -> the model runs "
            f"the table of guide {sel['trained_with']} with {runs}")
    best = min(min(sel["candidates"].values()), sel["guide_only_avg_delay_s"])
    if best > sel["max_pressure_avg_delay_s"]:
        kept = str(sel["trained_with"]) if sel["guide_visits"] == sel["trained_with"] else "guide_only"
        why = ""
        if share.get(kept):
            why = (f"; for {share[kept]:.0%} of its steps the table's confidence was below the shield's threshold "
                   "and Webster's fallback plan ran, not the model (training episodes never fall back: more "
                   "episodes make the table surer)")
        line += (f"\nwarning: the model LOSES to max-pressure on validation ({best:.1f} s vs "
                 f"{sel['max_pressure_avg_delay_s']:.1f} s{why}). Run max-pressure instead, or try more episodes "
                 "(--episodes), another threshold (--guide-visits 10 or 30), or a longer duration per episode")
    return line


def evaluate_command(
    model: Annotated[Path, typer.Option(help="model directory (e.g. models/train/model)")],
    scenario: Annotated[str | None, typer.Option(
        "--scenario", "-s", help="single | corridor | grid | resco:NAME (default: the network the model trained "
                                 "on, its scenario or its files)", show_default=False)] = None,
    seeds: Annotated[int, typer.Option(help="number of held-out seeds (never the training seeds)")] = 5,
    first_seed: Annotated[int, typer.Option(help="held-out seeds start here")] = 1,
    baseline: Annotated[str, typer.Option(help=(
        f"controller to compare against: {' | '.join(BUILTIN_CHOICES)} | "
        "ql:PATH | ql:@REF | an installed plugin | py:MODULE:FACTORY | py:FILE.py:FACTORY "
        "(docs/controllers.md)"))] = "max-pressure",
    duration: Annotated[float | None, typer.Option(help="simulated seconds per run")] = None,
    workers: Annotated[int | None, typer.Option(help="parallel worker processes")] = None,
    out: Annotated[Path | None, typer.Option(help="output directory, new or empty (default: <model>/../eval-<time>; "
                                                  "runs/eval-<time> for a shipped or read-only model)")] = None,
    timing: Annotated[str | None, typer.Option(help="timing profile of the runs: safety | benchmark | reference "
                                                    "(default: the one the model trained under)",
                                               show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        help="YAML file of run settings: its timing, shield, step_length_s, time_to_teleport_s, sumo_options and "
             "sumocfg_options "
             "replace, key by key, those the model trained under (e.g. another city's clearances); --timing "
             "sets the profile beside its timing")] = None,
    sumocfg: Annotated[Path | None, typer.Option(help="evaluate on your own SUMO config (.sumocfg)")] = None,
    net: Annotated[Path | None, typer.Option(help="evaluate on your own network (.net.xml); use with --routes")] = None,
    routes: Annotated[list[Path] | None, typer.Option(help="route files for --net (repeatable)")] = None,
    demand_scale: Annotated[float | None, typer.Option(
        "--demand-scale", metavar="X", show_default=False,
        help="the demand times X (SUMO's --scale): how the model holds up on heavier (or lighter) hours than "
             "the routes hold [default: 1, the routes as written]")] = None,
) -> None:
    """Evaluate a model on held-out seeds against a baseline: delay, CIs, paired t-test p over the same seeds
    (Welch's beside it in summary.csv, p_welch), safety audit.
    By default on the network the model trained on, under the timing profile it trained under."""
    if scenario is not None and (sumocfg is not None or net is not None):
        _fail("--scenario is not used with --sumocfg or --net: give one network")
    if net is not None and not routes:
        _fail("--net needs at least one --routes file")
    _evaluate(model, scenario, seeds, first_seed, baseline, duration, workers, out, timing, sumocfg, net, routes,
              demand_scale, config)


@learning_errors
def _evaluate(model_path, scenario, seeds, first_seed, baseline, duration, workers, out, timing=None, sumocfg=None,
              net=None, routes=None, demand_scale=None, config=None) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..consoles import progress_line
    from ..runtime.commands import print_compare_table
    from .evaluate import evaluate

    console = Console()
    check_seeds(seeds, first_seed)
    if workers is not None and workers < 1:
        _fail("--workers must be at least 1")
    if out is not None and why_not_fresh(out, "an evaluation"):
        _fail(f"--out {out}: {why_not_fresh(out, 'an evaluation')}")
    settings = _episode_settings(config, timing, False, "an evaluation") if config is not None else None
    # the same bar as `compare`'s (and its plain lines where no bar is drawn): the runs take minutes. Transient:
    # `evaluate` checks the model and its seeds inside, and a refusal is one line, not a bar at 0 and a line
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[last]}"), console=Console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(f"evaluate against {baseline}", total=2 * seeds, last="")

        def on_done(c, s, metrics, error):
            name = "ql" if c.startswith("ql:") else c  # the model's whole path is in the intro and the table
            last = f"{name} s{s}: " + (f"{_s(metrics['network']['avg_delay_s'])} delay" if metrics
                                       else f"FAILED {error}")
            bar.update(task, advance=1, last=last)
            progress_line(bar, task, "runs", last)

        result = evaluate(model_path, scenario, seeds, first_seed, baseline, duration, workers, out,
                          controller_options=registry_options([baseline]), timing=timing, sumocfg=sumocfg, net=net,
                          routes=routes, demand_scale=demand_scale, settings=settings, on_done=on_done)
    print_compare_table(result.summary)
    ev = result.evaluation
    scaled = f", demand ×{ev['demand_scale']:g}" if "demand_scale" in ev else ""
    keys = ev.get("timing_keys") or {}
    beside = f" with {', '.join(f'{k} {v}' for k, v in keys.items())}" if keys else ""
    simulated = ev.get("simulated_s")
    window = "" if simulated is None else f", {simulated / 60:g} simulated min per run" + (
        "" if ev.get("duration_s") is not None else " (the network's whole window: --duration S for less)")
    trained_s = ev.get("trained_duration_s")
    if simulated is not None and trained_s is not None and abs(trained_s - simulated) > 1e-6:
        window += f"; the model trained on episodes of {trained_s / 60:g} min"
    elif simulated is not None and trained_s is None and ev.get("duration_s") is not None:
        window += "; how long the model's training episodes were is not known (it was trained before models kept it)"
    console.print(f"on {ev['scenario']} under the {ev['timing']} timing profile{beside}{scaled}, held-out seeds "
                  f"{ev['seeds']}{window}",
                  soft_wrap=True)
    console.print(f"{ev['controller']} vs {baseline}: {_s(ev['avg_delay_s'])} vs {_s(ev['baseline_avg_delay_s'])} "
                  f"average delay, paired p {_p(ev['p_paired'])}, Welch p {_p(ev['p_welch'])}; "
                  f"fallback share {_pct(ev['fallback_fraction'])}; shield violations {ev['violations']}",
                  soft_wrap=True)
    console.print(f"demand: route files {', '.join(ev['demand']['route_files'])} (digest "
                  f"{ev['demand']['routes_sha256']}, kept with the evaluation in meta.json)", soft_wrap=True)
    if ev.get("other_network"):
        console.print(f"[bold yellow]warning:[/bold yellow] the model ran on another network than it trained on: "
                      f"{ev['other_network']}: these figures are for a network it never learned on (meta.json keeps "
                      "this evaluation with its network, under other_network)", soft_wrap=True)
    if ev.get("other_demand"):
        console.print(f"[bold yellow]warning:[/bold yellow] the model ran on {ev['other_demand']}: these figures "
                      "are for other traffic than it learned on (meta.json keeps this evaluation with its demand, "
                      "under other_demand)", soft_wrap=True)
    if ev.get("unfinished"):
        console.print(f"[bold yellow]warning:[/bold yellow] {model_path} is {ev['unfinished']}: these figures are "
                      "for a model its training had not finished (meta.json keeps this evaluation with that, under "
                      "unfinished)", soft_wrap=True)
    models = [m for ms in (ev.get("provenance") or {}).get("models", {}).values() for m in ms
              if m.get("path") == str(Path(model_path).resolve())]
    if models and models[0].get("model_id"):
        console.print(f"model id: {models[0]['model_id']}", soft_wrap=True)
    console.print(f"runs and summary: {result.out_dir}", soft_wrap=True)  # the path whole, on the label's line
    if not result.recorded:
        console.print(f"{model_path} is read-only (a model shipped with the package, or a directory this user "
                      "cannot write): its meta.json records nothing of this evaluation", soft_wrap=True)
    if ev["violations"]:
        _fail(f"{ev['violations']} shield violation(s) in evaluation", code=1)


def _s(seconds) -> str:
    return "n/a" if seconds is None else f"{seconds:.1f} s"


def _p(p) -> str:
    """As compare's table writes a p-value (`stats.p_text`): "< 0.001" where three decimals would print 0.000."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a (one seed, or no variation)"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _pct(share) -> str:
    return "n/a" if share is None else f"{share:.1%}"


@models_app.command("list")
def models_list(removed: Annotated[bool, typer.Option("--removed", help="also the removed versions")] = False,
                db: DbOpt = None) -> None:
    """Registered versions and where each is active."""
    _models_list(removed, db)


@learning_errors
def _models_list(removed, db) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..consoles import table_console

    missing = _missing_registry(db)
    if missing is not None:  # nothing to list, and no empty database left behind to say so
        typer.echo(f"no model registered: no database at {missing}; train one (signalwise train --scenario S "
                   "--out DIR), then signalwise models add DIR/model and signalwise models deploy v1 (a directory "
                   "registry: signalwise models import DIR; or name the registry's database with --db)")
        return
    reg = _registry(db)
    versions = reg.versions(include_removed=removed)
    if not versions:
        Console().print(f"no model registered in {reg.where}: train one (signalwise train --scenario S --out DIR), "
                        "then signalwise models add DIR/model and signalwise models deploy v1 (a directory "
                        "registry: signalwise models import DIR)", soft_wrap=True)
        return
    active = reg.active()
    t = Table(title=f"models in {reg.where}")
    for col in ("version", "model id", "scenario", "intersections", "episodes", "KiB", "registered", "by",
                "active at"):
        t.add_column(col, no_wrap=col == "model id")
    for v in versions:
        where = ", ".join(sorted(i for i, ver in active.items() if ver == v.version)) or "-"
        if v.removed_at is not None:
            where = f"removed {v.removed_at.astimezone():%Y-%m-%d %H:%M} by {v.removed_by}"
        t.add_row(v.version, (v.model_id or "-")[:MODEL_ID_SHOWN], v.scenario, _signals(v.intersections),
                  str(v.episodes), f"{v.size_bytes / 1024:.0f}", f"{v.registered_at.astimezone():%Y-%m-%d %H:%M}",
                  v.registered_by, where)
    table_console().print(t)


@models_app.command("add")
def models_add(path: Annotated[Path, typer.Argument(help="a model directory (e.g. models/train/model)")],
               again: Annotated[bool, typer.Option(
                   "--again", help="register it as a new version even when the same model (the same model id: "
                                   "its weights and the options that decide) is registered already")] = False,
               unfinished: Annotated[bool, typer.Option(
                   "--unfinished", help="register a checkpoint of an unfinished training (fewer episodes than "
                                        "its training asked for), which is refused otherwise")] = False,
               db: DbOpt = None) -> None:
    """Register a model directory as the next version; its files go into the database and never change.

    A model already registered (the same model id, whatever its meta.json says since: evaluations, times) is
    not added again: the command names its version, unless --again."""
    _models_add(path, again, unfinished, db)


@learning_errors
def _models_add(path, again=False, unfinished=False, db=None) -> None:
    from .registry import already_registered_message, register_once

    reg = _registry(db)
    registered = register_once(reg, Path(path), again=again, allow_unfinished=unfinished)
    mv = registered.version
    if registered.already:
        typer.echo(already_registered_message(mv, "--again"))
        return
    others = [v for v in reg.versions() if v.version != mv.version]  # one read of the registry for both lists
    same = [v.version for v in others if v.content_sha256 == mv.content_sha256]
    model = [v.version for v in others if mv.model_id and v.model_id == mv.model_id and v.version not in same]
    typer.echo(f"registered {mv.version} ({mv.scenario}, {_signals(mv.intersections)}; "
               f"{mv.size_bytes / 1024:.0f} KiB; model id {mv.model_id}) from {path}"
               + (f"; the same files as {', '.join(same)} (stored once)" if same else "")
               + (f"; the same model as {', '.join(model)}" if model else ""))


#: the leading hex digits of a model id a table shows (`models list`); the whole id is in `models show`
MODEL_ID_SHOWN = 16


def _signals(intersections) -> str:
    """The signals a model names (a tabular model's tables), or that it runs at every signal (one policy)."""
    return ", ".join(intersections) or "every signal"


@models_app.command("import")
def models_import(directory: Annotated[Path, typer.Argument(help="a directory registry: registry.json with v1/, v2/ ...")],
                  db: DbOpt = None) -> None:
    """Import a directory registry: its versions (names kept where free) and what is active where.

    Importing the same directory again adds nothing. The directory in
    SIGNALWISE_MODEL_REGISTRY (default models/registry) is imported on its
    own the first time the registry is used, if the database has no version.
    """
    _models_import(directory, db)


@learning_errors
def _models_import(directory, db) -> None:
    report = _registry(db).import_file_registry(directory)
    for old, new in report.versions.items():
        note = "already registered" if old in report.same_as else ("imported" if old == new else f"imported as {new}")
        typer.echo(f"{old}: {note}")
    for inter, stack in report.deployments.items():
        typer.echo(f"{inter}: {stack[-1]} active (history {' -> '.join(stack)})")
    for line in report.skipped:
        typer.echo(f"left out: {line}")


@models_app.command("show")
def models_show(ref: Annotated[str, typer.Argument(help="a version (v3) or a model directory")],
                db: DbOpt = None) -> None:
    """A model's metadata: scenario, layouts, encoding, hyperparameters, training, evaluations."""
    _models_show(ref, db)


@learning_errors
def _models_show(ref, db) -> None:
    import re

    from ..control.learning.qtable import load_model

    version_like = re.fullmatch(r"v\d+", ref) is not None
    # `v1` is the registry's version when the registry has one (a directory of that name may be beside it, as in
    # a directory registry); a path is a path: a missing one is not looked up in the registry
    mv = _registered(db, ref) if version_like and _missing_registry(db) is None else None
    if mv is None and (Path(ref).exists() or not version_like):
        if not Path(ref).exists():
            _fail(f"{ref}: no such model directory (a registered version is named vN, e.g. v3)")
        from ..provenance import model_dir_id

        meta = dict(load_model(Path(ref)).meta)
        meta["path"] = str(Path(ref))
        meta["model_id"] = model_dir_id(ref)
    else:  # not registered and no such directory: the registry says which versions it has
        mv = mv or _registry(db, existing=True).get(ref, include_removed=True)  # a removed version stays readable
        meta = {**mv.meta, "version": mv.version, "registered_at": mv.registered_at.isoformat(),
                "registered_by": mv.registered_by, "source": mv.source, "model_id": mv.model_id,
                "content_sha256": mv.content_sha256, "size_bytes": mv.size_bytes}
        if mv.removed_at is not None:
            meta.update(removed_at=mv.removed_at.isoformat(), removed_by=mv.removed_by)
    typer.echo(json.dumps(meta, indent=2))


@models_app.command("deploy")
def models_deploy(version: str,
                  intersection: Annotated[list[str] | None, typer.Option(
                      help="only here (repeatable); required for a phase-score model, which fits any signal")] = None,
                  db: DbOpt = None) -> None:
    """Make a version active where it runs; `ql:@active` then runs it.

    A tabular model is made active at the intersections it holds tables for (or only those given with
    --intersection); a phase-score model fits any signal, so --intersection names where it runs.

    A live run is switched with POST /api/v1/ml/deploy/VERSION (or /api/v1/live/deploy), which also
    checks the version fits each signal's layout.
    """
    _models_deploy(version, intersection, db)


@learning_errors
def _models_deploy(version, intersection, db) -> None:
    reg = _registry(db, existing=True)
    if not intersection:
        mv = reg.get(version)
        if not mv.intersections:  # a phase-score policy: where it runs is named, never guessed
            signals = _signals_of(mv.scenario)
            named = " ".join(f"--intersection {i}" for i in (signals or ["ID"])[:SIGNALS_SUGGESTED])
            listed = ", ".join(signals[:SIGNALS_LISTED]) + (f" and {len(signals) - SIGNALS_LISTED} more"
                                                            if len(signals or ()) > SIGNALS_LISTED else "") \
                if signals else ""
            of = f" (the signals of {mv.scenario}, the network it trained on: {listed})" if signals else ""
            _fail(f"{version} is a phase-score policy that fits any signal: name where it runs, e.g. "
                  f"signalwise models deploy {version} {named}{of}")
    done = reg.deploy(version, intersection or None)
    for i, v in done.items():
        typer.echo(f"{i}: {v} active")
    mv = reg.get(version)
    strangers = _not_signals_of(mv.scenario, list(done)) if not mv.intersections else []
    if strangers:  # a phase-score policy runs at any signal, so a name it never saw may be a typo, or elsewhere
        typer.secho(f"warning: {', '.join(strangers)}: no signal of {mv.scenario}, the network {version} trained "
                    "on; deployed all the same, since its weights run at any signal (if that network is yours, "
                    "check the name: a signal not named keeps what it runs now)", fg="yellow", err=True)


#: signals named in the deploy command a refusal suggests, and listed beside it
SIGNALS_SUGGESTED, SIGNALS_LISTED = 5, 20


def _not_signals_of(scenario: str, ids: list[str]) -> list[str]:
    """Of `ids`, those that are no controllable signal of built-in or RESCO `scenario`; [] for a network this
    process cannot load by name (a user's own, trained with --net or --sumocfg)."""
    signals = _signals_of(scenario)
    return [] if signals is None else [i for i in ids if i not in signals]


def _signals_of(scenario: str) -> list[str] | None:
    """The controllable signals of built-in or RESCO `scenario`, in the network's order; None for a network this
    process cannot load by name (a user's own, trained with --net or --sumocfg)."""
    from ..envs.episode import probe_network
    from ..runtime.config import RunConfig
    from ..runtime.loop import resolve_scenario
    from ..sim.scenario import ScenarioError

    try:
        cfg = RunConfig(scenario=scenario)
        return [i.id for i in probe_network(cfg, resolve_scenario(cfg))[0]]
    except (ScenarioError, ValueError, OSError):
        return None


@models_app.command("remove")
def models_remove(version: Annotated[str, typer.Argument(help="a registered version, e.g. v3")],
                  db: DbOpt = None) -> None:
    """Delete a version's files; its metadata and name stay, so the history still names it.

    Refused while it is active anywhere, or deployed under a newer version a
    rollback would return to. The name is never given to another version,
    and `models list --removed` shows who removed it and when.
    """
    _models_remove(version, db)


@learning_errors
def _models_remove(version, db) -> None:
    done = _registry(db, existing=True).remove(version)
    typer.echo(f"removed {done.version.version} ({done.version.scenario}): {done.freed_bytes / 1024:.0f} KiB "
               f"freed; its metadata stays (signalwise models show {done.version.version})")


@models_app.command("rollback")
def models_rollback(intersection: Annotated[list[str] | None, typer.Option(help="only here (repeatable)")] = None,
                    db: DbOpt = None) -> None:
    """Undo the last deployment at every intersection that has one, or only at those given with --intersection:
    each goes back to the version active before (none left: the signal runs its fallback plan)."""
    _models_rollback(intersection, db)


@learning_errors
def _models_rollback(intersection, db) -> None:
    done = _registry(db, existing=True).rollback(intersection or None)
    for i, v in done.items():
        typer.echo(f"{i}: {v or 'no model (fallback plan)'} active")


@models_app.command("history")
def models_history(intersection: Annotated[str | None, typer.Option(help="only this intersection")] = None,
                   db: DbOpt = None) -> None:
    """Who deployed and rolled back which version where, and when (UTC)."""
    _models_history(intersection, db)


@learning_errors
def _models_history(intersection, db) -> None:
    from rich.table import Table

    from ..consoles import table_console

    rows = _registry(db, existing=True).history(intersection)
    if not rows:
        typer.echo("no deployment yet" + (f" at {intersection}" if intersection else ""))
        return
    t = Table("intersection", "version", "deployed", "by", "rolled back", "by")
    for d in rows:
        t.add_row(d.intersection_id, d.version, f"{d.deployed_at:%Y-%m-%d %H:%M:%S}", d.deployed_by,
                  f"{d.rolled_back_at:%Y-%m-%d %H:%M:%S}" if d.rolled_back_at else "-", d.rolled_back_by or "-")
    table_console().print(t)


def _registry(db: str | None, existing: bool = False):
    """The registry in `--db`, else the configured database (SIGNALWISE_DATABASE_URL).

    `existing`: a command that reads or changes what is registered refuses a SQLite file that is not there
    (one line, exit 1, as `keys list` does) rather than create an empty database to find nothing in; the configured directory
    registry, imported on first use, still makes one.
    """
    from ..store.cli_engine import open_or_exit
    from ..store.model_registry import open_registry

    if existing:
        missing = _missing_registry(db)
        if missing is not None:  # as `keys list` and `db current` say it
            _fail(f"{missing}: no such database file (signalwise models add DIR registers a model in a new one; "
                  "or name the registry's database with --db)", code=FAILED)
    return open_or_exit(lambda: open_registry(database_url=db))


def _registered(db: str | None, version: str):  # noqa: ANN202 - a ModelVersion or None
    """The registered version of that name (removed ones included), or None."""
    from ..store.model_registry import RegistryError

    try:
        return _registry(db).get(version, include_removed=True)
    except RegistryError:
        return None


def _missing_registry(db: str | None) -> Path | None:
    """The SQLite file the registry would be in when it is not there and no directory registry would fill it."""
    from ..store.cli_engine import missing_sqlite_file, settings_or_exit

    settings = settings_or_exit()
    missing = missing_sqlite_file(db or settings.database_url)
    return missing if missing is not None and not Path(settings.model_registry).is_dir() else None


def register(app: typer.Typer) -> None:
    app.command("train", cls=OptionalRayAddress)(train_command)
    app.command("evaluate")(evaluate_command)
    app.add_typer(models_app, name="models")
