"""CLI commands of the runtime: run, compare, scenarios, demo."""

from __future__ import annotations

import functools
import math
from collections.abc import Collection
from pathlib import Path
from typing import Annotated

import typer

from ..control.base import builtin_choices
from ..core.names import BASELINE_CONTROLLER, MAX_SEED
from ..exitcodes import BAD_INPUT, INTERRUPTED
from ..outdirs import why_not_fresh, why_unwritable
from ..rundirs import comparison_runs, is_complete_run
from ..store.cli_engine import DB_HELP
from ..termination import sigterm_as_interrupt, stop_reason

DEMO_SCENARIO = "corridor"
DEMO_CONTROLLERS = "fixed,webster,actuated,max-pressure"
#: the demo adds the learning controller, on the model shipped for the corridor
DEMO_WITH_LEARNING = f"{DEMO_CONTROLLERS},ql"
DEMO_SEEDS = 3  # 15 one-hour runs: about two minutes on 2 idle cores


def raised_from(exc: BaseException, module: str, name: str) -> bool:
    """Whether `exc` is `module.name`, without importing the module: an error whose module no code imported
    cannot have been raised. Error handlers of every command ask this of errors few commands can raise, which
    would otherwise cost each command their module's imports (the alerts' HTTP client, the store's tables)."""
    import sys

    mod = sys.modules.get(module)
    return mod is not None and isinstance(exc, getattr(mod, name))


def friendly_errors(fn):
    """Turn the errors users cause into one line and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from pydantic import ValidationError

        from ..control.base import ControllerUnavailable, UnknownController
        from ..sim.backend import SimulationError
        from ..sim.scenario import ScenarioError

        try:
            return fn(*args, **kwargs)
        except (ScenarioError, SimulationError, UnknownController, ControllerUnavailable, FileNotFoundError) as exc:
            _fail(str(exc))
        except ValidationError as exc:
            _fail(config_problem(exc))
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM inside `sigterm_as_interrupt`
            # what was left, when a run said so (stopped while starting, no run directory had been written)
            marked = getattr(exc, "what_is_left", None)
            _fail(f"{stop_reason(exc)}; {marked}" if marked else stop_reason(exc), code=INTERRUPTED)
        except Exception as exc:
            # a --config file's `alerts:` section (`signalwise live`)
            if raised_from(exc, "signalwise.runtime.live.alerts", "AlertConfigError"):
                _fail(str(exc))
            raise

    return wrapper


#: run settings a command line sets with an option of another name: a refusal of the setting names the option too
FLAG_OF_SETTING = {"duration_s": "--duration", "warmup_s": "--warmup", "demand_scale": "--demand-scale", "out_dir": "--out",
                   "seed": "--seed", "controller": "--controller", "scenario": "--scenario", "sumocfg": "--sumocfg",
                   "net": "--net", "routes": "--routes"}


def config_problem(exc, config_file: Path | None = None) -> str:
    """One line for a run configuration pydantic refused: the setting's path, the option that sets it on a
    command line (`duration_s (--duration)`), the `--config` file a key of its own came from, and for a key no
    setting has, the setting it was likely meant to be (a typo in a YAML file otherwise reads as a bare 'Extra
    inputs are not permitted')."""
    err = exc.errors()[0]
    loc = tuple(err.get("loc", ()))
    where = ".".join(str(p) for p in loc)
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    if not where:
        return msg
    file = config_file or getattr(exc, "config_file", None)
    if err.get("type") == "extra_forbidden":
        near = _setting_like(loc)
        return (f"{file}: " if file else "") + f"unknown setting {where}" + (f" (did you mean {near}?)" if near else "")
    flag = FLAG_OF_SETTING.get(str(loc[0])) if len(loc) == 1 else None
    return f"invalid {where}" + (f" ({flag})" if flag else "") + f": {msg}"


def _setting_like(loc: tuple) -> str | None:
    """The setting beside `loc` whose name is closest to its last part, walking RunConfig's nested models."""
    import difflib
    import typing

    from pydantic import BaseModel

    from .config import RunConfig

    model: type[BaseModel] | None = RunConfig
    for part in loc[:-1]:
        if model is None or str(part) not in model.model_fields:
            return None  # a mapping's key (per_intersection: {J1: ...}) or a list index: their values' model
        annotation = model.model_fields[str(part)].annotation
        candidates = [annotation, *typing.get_args(annotation)]
        candidates += [a for c in candidates for a in typing.get_args(c)]  # dict[str, Model] | None
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    if model is None:
        return None
    near = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return ".".join([*map(str, loc[:-1]), near[0]]) if near else None


def network_warnings(refused, plan_notes: dict[str, list[str]]) -> list[str]:
    """What a reader of any figure of these runs must know about the network: signals left to their own program
    (no controller of the comparison runs there), and where `fixed` does not run the network's program as
    written."""
    from .loop import grouped_refusals

    out = []
    if refused:  # each reason once, with a few of its signals: a generated grid refuses a dozen fringe nodes alike
        from collections import Counter

        cut = max(Counter(r.reason for r in refused).values()) > REFUSED_NAMED_PER_REASON
        out.append(f"{len(refused)} signal(s) left to their own program, the same for every controller: "
                   + grouped_refusals(refused, shown=REFUSED_NAMED_PER_REASON)
                   + (" (each run's metrics.json names every one, under refused_signals)" if cut else ""))
    from .run import plan_warnings

    return out + plan_warnings(plan_notes)


#: the signals a comparison's warning names per reason it left signals to their own program; the rest counted
REFUSED_NAMED_PER_REASON = 4


def check_seeds(seeds: int, first_seed: int) -> None:
    """--seeds and --first-seed of a command that runs seeds first_seed, first_seed + 1, ...: refused in one
    line before anything starts (SUMO's seeds run from 0 to 2**31 - 1)."""
    if seeds < 1:
        _fail("--seeds must be at least 1")
    if first_seed < 0:
        _fail("--first-seed must not be negative")
    if first_seed + seeds - 1 > MAX_SEED:
        _fail(f"--first-seed {first_seed} with --seeds {seeds} passes SUMO's largest seed, {MAX_SEED}")


def _seconds(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} s"


def _ped_waits_text(network: dict) -> str:
    """The pedestrians' waits as the run summary gives them: "41.8 / 91.0 / 125.0 s, 15 over 60 s"; "—" with
    none (saying so when the run had no pedestrians), and "not counted" for a run from before they were."""
    from ..sim.metrics import LONG_PED_WAIT_S

    if "ped_wait_s" not in network:
        return "— (not counted)"
    if network["ped_wait_s"] is None:
        return "— (no pedestrians in this run)" if not network.get("pedestrians") else "—"
    return (f"{network['ped_wait_s']:.1f} / {network['ped_wait_p95_s']:.1f} / {network['ped_wait_max_s']:.1f} s, "
            f"{network['ped_long_waits']} over {LONG_PED_WAIT_S:g} s")


def _fail(message: str, code: int = BAD_INPUT) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def read_config_file(config: Path) -> dict:
    """The settings of a `--config` YAML file, as a mapping; FileNotFoundError (one line) when there are none.

    Every command that takes `--config` reads it here, so a file that cannot be read (a directory, no permission,
    bytes that are not UTF-8, broken YAML) is one `error:` line (exit 2) whichever command it was given to."""
    import yaml

    if config.is_dir():
        raise FileNotFoundError(f"{config}: is a directory, not a config file (give the YAML file in it)")
    if not config.is_file():
        raise FileNotFoundError(f"{config}: no such config file")
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise FileNotFoundError(f"{config}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError as exc:
        raise FileNotFoundError(f"{config}: not a text file in UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset "
                                f"{exc.start}); save it as UTF-8 YAML") from None
    except OSError as exc:
        raise FileNotFoundError(f"{config}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise FileNotFoundError(f"{config}: expected a mapping of settings")
    return data


def _load_config(config: Path | None, database_url: str | None = None, **overrides):
    from pydantic import ValidationError

    from .config import RunConfig, timing_beside

    data: dict = read_config_file(config) if config is not None else {}
    profile = overrides.pop("timing_profile", None)
    data.update({k: v for k, v in overrides.items() if v is not None})
    if profile is not None:  # --timing NAME: the profile, with any keys the config file sets beside it
        data["timing"] = timing_beside(data.get("timing"), profile)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        exc.config_file = config  # a key the command line did not set came from it: the refusal names the file
        raise
    return with_shipped_model(with_model_registry(cfg, [cfg.controller], database_url), [cfg.controller])


def note_profile_mismatch(cfg, specs: list[str]) -> list[str]:
    """A line for each model named by path (or shipped) that trained under another timing profile than the run's:
    what a change costs, and so when to change, is what it learned, and a benchmark-trained model judged under
    the safety profile (or the reverse) says little about either. Returns the lines, which `compare` keeps in
    its summary.json and report.md (`caveats`). A checkpoint of an unfinished training (`qtable.unfinished`) is
    said here too: `run`, `compare` and `live` all call this."""
    from ..control.learning.qtable import unfinished

    said: list[str] = []
    say = functools.partial(_say_caveat, said)
    for path, meta in _named_models(cfg, specs):
        why = unfinished(meta, Path(path)) if isinstance(meta, dict) else None
        if why:
            say(f"warning: ql: {path} is {why}; it runs all the same, but it is not the model its training "
                "makes (the training goes on with `signalwise train ... --resume`)")
        training = meta.get("training") if isinstance(meta, dict) else None
        run = training.get("run") if isinstance(training, dict) else None
        if not isinstance(run, dict):
            continue  # no record of its training's rules (or a damaged one: loading the model says what)
        timing = run.get("timing")
        trained = timing if isinstance(timing, str) else (timing or {}).get("profile", "safety")
        if trained != cfg.timing.profile:
            say(f"ql: {path} trained under the {trained} timing profile; this run is under "
                f"{cfg.timing.profile} (add --timing {trained} to run it under the rules it learned)")
        keys = {k: v for k, v in timing.items() if k not in ("profile", "cycle_calls")} \
            if isinstance(timing, dict) else {}
        differ = {k: v for k, v in keys.items() if getattr(cfg.timing, k, None) != v}
        if differ:
            say(f"ql: {path} trained with timing {', '.join(f'{k} {v}' for k, v in differ.items())}; this "
                f"run has {', '.join(f'{k} {_yaml_value(getattr(cfg.timing, k, None))}' for k in differ)} "
                "(give its training's timing in a --config file to run it under the rules it learned)")
        calls = bool(timing.get("cycle_calls", False)) if isinstance(timing, dict) else False
        if calls != cfg.timing.cycle_calls:
            how = "from calls" if calls else "from each link's last green"
            say(f"ql: {path} trained with the cycle bound counting {how}; this run's timing has "
                f"cycle_calls: {str(cfg.timing.cycle_calls).lower()} (a --config file's timing sets it)")
    return said


def _say_caveat(said: list[str], text: str) -> None:
    """A caveat about a learned model: on stderr now, and kept in `said` for the comparison's report."""
    typer.echo(text, err=True)
    said.append(text)


def note_model_conditions(cfg, specs: list[str], seeds: list[int]) -> list[str]:
    """A line for each model named by path whose making differs from what the runs give it, as
    `note_profile_mismatch` says of the timing: seeds it trained or was validated on (`evaluate` refuses
    them; a table of them is no held-out result), other route files or scale than it trained on, and episodes
    of another length than the runs' window. Returns the lines, as `note_profile_mismatch` does."""
    from ..control.learning.qtable import demand_change, demand_record, trained_duration_s, used_seeds
    from .loop import resolve_scenario, run_window

    said: list[str] = []
    say = functools.partial(_say_caveat, said)
    scenario = None
    for path, meta in _named_models(cfg, specs):
        if not isinstance(meta, dict) or not isinstance(meta.get("training") or {}, dict):
            continue
        seen = sorted(used_seeds(meta) & set(seeds))
        if seen:
            say(f"ql: {path} trained or was validated on seed(s) {_seeds_named(seen)} of these runs: its "
                "figures there are not held-out results (evaluate refuses them; another --first-seed "
                "runs seeds it never saw)")
        try:
            scenario = scenario or resolve_scenario(cfg)
            begin_s, end_s = run_window(cfg, scenario)
        except (OSError, ValueError):
            continue  # the command refuses the network itself, in its own words
        other = demand_change(meta["training"].get("demand") if meta.get("training") else None,
                              demand_record(scenario.route_files, cfg.demand_scale))
        if other:
            say(f"ql: {path} runs here on {other}: its figures are for other traffic than it learned on")
        trained_s = trained_duration_s(meta)
        window_s = end_s - begin_s
        if trained_s is not None and abs(trained_s - window_s) > 1e-6:
            say(f"ql: {path} trained on episodes of {trained_s:g} s; these runs cover {window_s:g} s "
                f"(--duration {trained_s:g} runs the window it learned on)")
        elif trained_s is None and cfg.duration_s is not None and (meta.get("training") or {}).get("episodes"):
            # a model trained before models recorded their episodes' window: not this network's window, unknown
            say(f"ql: {path} does not record the length of its training episodes (a model trained before it was "
                f"kept); these runs cover {window_s:g} s")
    return said


def _named_models(cfg, specs: list[str]):
    """Each learned model named by path in `specs` (`ql:PATH`) whose meta.json reads, as (path, meta); a bare `ql`
    and a registry reference are resolved when the run starts, and an unreadable model is the run's to refuse, in
    its own words."""
    import json

    for spec in specs:
        kind, _, arg = spec.partition(":")
        if kind != "ql" or not arg or arg.startswith("@"):
            continue
        path = arg.partition("?")[0] or cfg.controller_options.get("model")
        try:
            yield path, json.loads((Path(path) / "meta.json").read_text())
        except (OSError, TypeError, ValueError):
            continue


def _seeds_named(seeds: list[int], shown: int = 5) -> str:
    more = f" and {len(seeds) - shown} more" if len(seeds) > shown else ""
    return ", ".join(map(str, seeds[:shown])) + more


def _yaml_value(value) -> str:
    """A setting as a config file writes it (None is `null`: for the timing keys, computed from the network)."""
    return "null" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def with_shipped_model(cfg, specs: list[str]):
    """`cfg` with the model shipped for its built-in scenario when a spec is a bare `ql`, and a line saying so.

    Elsewhere (your own network, a scenario without a shipped model) a bare `ql`
    stays an error when the run starts: no model is run that nobody named.
    """
    if not any(spec.partition(":")[0] == "ql" for spec in specs):
        return cfg  # not a learning controller: spare the command loading the learning package (numpy)
    from ..control.learning.shipped import shipped_model_path, uses_shipped_model

    if not any(uses_shipped_model(s, cfg.controller_options) for s in specs):
        return cfg
    path = shipped_model_path(cfg.scenario if cfg.sumocfg is None and cfg.net is None else None)
    if path is None:
        return cfg
    typer.echo(f"ql: using the model shipped for '{cfg.scenario}' ({path})", err=True)
    return cfg.model_copy(update={"controller_options": {**cfg.controller_options, "model": str(path)}})


def registry_refs(specs: list[str]) -> list[str]:
    """The registry references the controller specs name: `ql:@active` -> `active`, `ql:@v3?...` -> `v3`."""
    refs = []
    for spec in specs:
        arg = spec.partition(":")[2]
        if arg.startswith("@"):
            refs.append(arg[1:].partition("?")[0])
    return list(dict.fromkeys(refs))


def registry_options(specs: list[str], database_url: str | None = None, registry=None) -> dict:  # noqa: ANN001
    """What a `ql:@active` / `ql:@v3` controller needs, resolved from the model registry; `{}` for other specs.

    Controllers import nothing from the store and read no environment: this
    hands them each reference's model directories (`registry_models`) and how
    to name the registry in messages (`model_registry`). The registry is the
    configured database's (`SIGNALWISE_DATABASE_URL`), or `database_url`'s.
    """
    refs = registry_refs(specs)
    if not refs:
        return {}
    from ..control.learning.qtable import ModelError
    from ..store.cli_engine import first_line, missing_sqlite_file
    from ..store.model_registry import RegistryError, open_registry

    if registry is None:
        from ..store.settings import Settings

        settings = Settings()
        missing = missing_sqlite_file(database_url or settings.database_url)
        if missing is not None and not Path(settings.model_registry).is_dir():
            # opening it would leave an empty database behind, only to find no model in it
            named = ", ".join(f"ql:@{r}" for r in refs)
            raise ModelError(f"{named}: no model registry at {missing} (register and deploy a model first: "
                             "signalwise models add DIR, models deploy vN; or name the registry's database with --db)")
    try:
        registry = registry or open_registry(database_url=database_url)
        return {"model_registry": registry.where, "registry_models": {ref: registry.resolve(ref) for ref in refs}}
    except RegistryError as exc:
        raise ModelError(str(exc)) from None
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - a database that cannot be opened: one line, not a traceback
        raise ModelError(f"cannot read the model registry: {first_line(exc)}") from None


def with_model_registry(cfg, specs: list[str], database_url: str | None = None):  # noqa: ANN001
    """`cfg` with `registry_options(specs)` in its controller options; references a config file resolves are kept."""
    have = dict(cfg.controller_options.get("registry_models") or {})
    missing = [spec for spec in specs if any(ref not in have for ref in registry_refs([spec]))]
    options = registry_options(missing, database_url)
    if not options:
        return cfg
    merged = {**cfg.controller_options, **options, "registry_models": {**options["registry_models"], **have}}
    return cfg.model_copy(update={"controller_options": merged})


def _progress_bar(description: str):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[sim]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), transient=False)


ScenarioOpt = Annotated[str | None, typer.Option("--scenario", "-s", help="single | corridor | grid | grid10x10 | resco:NAME (not with --sumocfg/--net)", show_default=False)]
TimingOpt = Annotated[str | None, typer.Option(
    "--timing", show_default=False,
    help="timing profile: safety (ITE clearances, pedestrian intervals, max green, cycle bounds), benchmark "
         "(RESCO's rules: 10 s decisions, 3 s yellow, no all-red, no teleports, max-pressure on halting "
         "vehicles) or reference (the plain max-pressure reference's: 5 s decisions, 3 s yellow, no all-red) "
         "[default: safety, or the --config file's]")]
DemandScaleOpt = Annotated[float | None, typer.Option(
    "--demand-scale", metavar="X", show_default=False,
    help="the demand times X (SUMO's --scale): 1.2 runs the same seed's traffic with 20 % more vehicles, for "
         "what-if studies of growth [default: 1, or the --config file's demand_scale]")]
WarmupOpt = Annotated[float | None, typer.Option(
    "--warmup", show_default=False, metavar="SECONDS",
    help="seconds at the start that fill the network and count in no summary figure (delay, waits, throughput, "
         "queues, CO2 and fuel count vehicles due from then on); a multiple of the record interval (interval_s, 60 s) "
         "[default: 0, or the --config file's warmup_s]")]
#: the built-in controllers that need no model, as the registry has them: every help that lists the choices
BUILTIN_CHOICES = builtin_choices()
ControllerOpt = Annotated[str | None, typer.Option("--controller", "-c", show_default=False,
                                                   help=f"{' | '.join(BUILTIN_CHOICES)} | ql (the "
                                                        "model shipped for single, corridor, grid) | ql:PATH | "
                                                        "an installed plugin | py:MODULE:FACTORY | "
                                                        "py:FILE.py:FACTORY (docs/controllers.md) "
                                                        "[default: max-pressure, or the --config file's]")]


def run_command(
    scenario: ScenarioOpt = None,
    controller: ControllerOpt = None,
    seed: Annotated[int | None, typer.Option(show_default=False, help="random seed; the same seed reproduces the run "
                                                                      "exactly [default: 1, or the --config file's]")] = None,
    duration: Annotated[float | None, typer.Option(help="simulated seconds (default: the scenario's window)")] = None,
    out: Annotated[Path | None, typer.Option(show_default=False, help="parent directory of the run directory "
                                                                      "[default: runs, or the --config file's out_dir]")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="exact run directory (default: OUT/<time>-<scenario>-<controller>-s<seed>)")] = None,
    sumocfg: Annotated[Path | None, typer.Option(help="your own SUMO config (.sumocfg)")] = None,
    net: Annotated[Path | None, typer.Option(help="your own network (.net.xml); use with --routes")] = None,
    routes: Annotated[list[Path] | None, typer.Option(help="route files for --net (repeatable)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of run settings (timing, shield, ...)")] = None,
    gui: Annotated[bool | None, typer.Option("--gui/--no-gui", show_default=False,
                                             help="watch it in sumo-gui (TraCI; slower) [default: no]")] = None,
    remote_port: Annotated[int | None, typer.Option(help="drive a SUMO already started with --remote-port")] = None,
    emissions: Annotated[bool | None, typer.Option("--emissions/--no-emissions", show_default=False,
                                                   help="record CO2 and fuel (SUMO emissions device) [default: yes]")] = None,
    db: Annotated[str | None, typer.Option(help="also write records into this database URL ('default' = SIGNALWISE_DATABASE_URL, else the embedded SQLite file signalwise.db here)")] = None,
    timing: TimingOpt = None,
    record: Annotated[str | None, typer.Option(show_default=False, help=(
        "full: also per-edge intervals, emissions and detector passages (ATSPM); lean: trips, signal events "
        "and states only (delay and the safety audit) [default: full, or the --config file's]"))] = None,
    evidence: Annotated[str | None, typer.Option(show_default=False, help=(
        "how a full record uses a second core: replay (a second SUMO replays the run's signal states and "
        "computes the emissions; it must drive the same traffic), inline (all in this process) or auto "
        "(replay when a core is free: the cores less this run and the load average); not inline, the audit of "
        "a full or lean record runs in a second process when a core is free [default: auto, or the --config "
        "file's]"))] = None,
    demand_scale: DemandScaleOpt = None,
    warmup: WarmupOpt = None,
) -> None:
    """Run one controller on one scenario and leave the evidence in a run directory."""
    from ..collector import collector_paused

    # from the configuration to the summary: what the run reads and makes is no cyclic garbage (`signalwise.collector`)
    with sigterm_as_interrupt(), collector_paused():  # `kill` marks the run directory incomplete, as Ctrl-C does
        _run(scenario, controller, seed, duration, out, run_dir, sumocfg, net, routes, config, gui, remote_port,
             emissions, db, timing, record, evidence, demand_scale, warmup)


@friendly_errors
def _run(scenario, controller, seed, duration, out, run_dir, sumocfg, net, routes, config, gui, remote_port,
         emissions, db, timing=None, record=None, evidence=None, demand_scale=None, warmup=None) -> None:
    from rich.console import Console

    from .run import execute_run, new_run_dir

    # `--db` is the database: the one `ql:@active` / `ql:@v3` read the model registry from, as `live --db` does
    cfg = _load_config(config, _registry_url(db), scenario=scenario, controller=controller, seed=seed,
                       duration_s=duration, out_dir=out, sumocfg=sumocfg, net=net, routes=routes or None, gui=gui,
                       remote_port=remote_port, emissions=emissions, record=record, evidence=evidence,
                       demand_scale=demand_scale, timing_profile=timing, warmup_s=warmup)
    note_profile_mismatch(cfg, [cfg.controller])
    from .loop import resolve_scenario, run_window

    scenario = resolve_scenario(cfg)
    run_window(cfg, scenario)  # fail on a bad scenario or warm-up before drawing a progress bar
    from .default_window import default_window_warning

    if (tail := default_window_warning(cfg.duration_s, scenario)) is not None:  # said again under the summary
        typer.secho(f"warning: {tail}", fg="yellow", err=True)
    _check_model_path(cfg.controller)
    _load_factories([cfg.controller])
    target = run_dir or new_run_dir(cfg)
    why = why_unwritable(target)
    if why:
        _fail(f"--run-dir {target}: {why}" if run_dir else f"--out {cfg.out_dir}: {why}")
    _open_store(db)
    console = Console(stderr=True)
    if cfg.remote_port is not None:  # a SUMO not started yet is waited for, silently otherwise
        from ..sim.backend import REMOTE_CONNECT_TRIES

        console.print(f"connecting to SUMO on port {cfg.remote_port} (waits up to {REMOTE_CONNECT_TRIES} s for it "
                      "to answer)", markup=False, highlight=False)
    with _progress_bar("run") as bar:
        task = bar.add_task(f"{cfg.controller} on {cfg.scenario_label}",
                            total=1.0, sim="")

        def progress(done_s: float, total_s: float) -> None:
            bar.update(task, completed=done_s / total_s if total_s else 1.0,
                       sim=f"{done_s / 60:.0f}/{total_s / 60:.0f} sim-min")

        # this process does nothing else
        result = execute_run(cfg, target, progress, audit_apart=True, on_start=_warn_at_start(cfg.controller))
    if db is not None:
        _publish([result.run_dir], db, console)
    print_run_summary(result.metrics, result.run_dir)


def _warn_at_start(controller: str):
    """What a run says on stderr as soon as its signals are read, before its first step: an exclusive pedestrian
    phase that `controller` serves only under the cycle bound (`exclusive_walks`), which a long run would otherwise
    show only in its pedestrians' waits. Its warnings under the summary say it again."""
    from .exclusive_walks import exclusive_walk_warnings

    def warn(intersections) -> None:
        for warning in exclusive_walk_warnings(intersections, controller):
            typer.secho(f"warning: {warning}", fg="yellow", err=True)
    return warn


def _check_model_path(controller: str) -> None:
    """A `ql:PATH` whose PATH holds no model is refused before the run directory is made (the controller would
    refuse it only once the run had started, leaving a failed run behind bad input)."""
    kind, _, arg = controller.partition(":")
    if kind != "ql" or not arg or arg.startswith("@"):
        return
    from ..control.learning.qtable import ModelError, load_model

    try:
        load_model(Path(arg))
    except ModelError as exc:
        _fail(f"controller {controller!r}: {exc}")


def _load_factories(specs: list[str]) -> None:
    """A user's controller (an installed plugin, `py:`) whose module does not import or lacks its factory is
    refused here, in one line (UnknownController, ControllerUnavailable), before a run directory is made or a
    worker started; what its factory makes is checked on the network's signals when the run starts."""
    from ..control.base import factory_of

    for spec in specs:
        factory_of(spec)


def _counted_from_text(metrics: dict) -> str:
    """Where a run's figures count from: `25320 s (07:02)` for a window that begins at 07:00:00 (its begin is
    the warm-up's length before), `120 s` for one that begins at 0."""
    from ..sim.scenario import seconds_text

    counted = metrics["counted_from_s"]
    return seconds_text(counted, counted - (metrics.get("warmup_s") or 0))


def print_run_summary(metrics: dict, run_dir: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..consoles import table_console

    n = metrics["network"]
    scaled = f"demand ×{metrics['demand_scale']:g}, " if "demand_scale" in metrics else ""
    t = Table(title=f"{metrics['controller']} on {metrics['scenario']} (seed {metrics['seed']}, {scaled}"
                    f"{metrics['simulated_s'] / 60:.0f} min simulated in {metrics['wall_s']:.1f} s"
                    + (f"; figures count from {_counted_from_text(metrics)}, after a {metrics['warmup_s']:g} s "
                       "warm-up" if metrics.get("warmup_s") else "") + ")")
    # a long label folds at a word ("pedestrians: time lost per walk (SUMO)"), its value on the first line
    t.add_column("metric", max_width=RUN_METRIC_WIDTH)
    # a long value folds: the table stays about 100 columns wide, whatever a network's signal ids
    t.add_column("value", justify="right", max_width=RUN_VALUE_WIDTH)
    rows = [
        # a figure per vehicle is null when there was no vehicle to average over: "—", never 0
        ("delay per vehicle", "— (no vehicle due)" if n["avg_delay_s"] is None
         else f"{n['avg_delay_s']:.1f} s"),
        ("avg waiting time", "— (no vehicle departed)" if n["avg_wait_s"] is None else f"{n['avg_wait_s']:.1f} s"),
        ("avg travel time", "— (no vehicle arrived)" if n["avg_travel_time_s"] is None
         else f"{n['avg_travel_time_s']:.1f} s"),
        ("stops per vehicle", "— (no vehicle departed)" if n["stops_per_veh"] is None
         else f"{n['stops_per_veh']:.2f}"),
        ("throughput (arrived)", f"{n['throughput_veh']} of {n['vehicles_total']} veh"),
        ("still running / never inserted", f"{n['running_at_end']} / {n['never_inserted']}"),
        ("teleports (SUMO)", _teleports_text(n)),
        # sampled at the signals the run controls: one left to its own program is not among them
        ("avg / max queue" + (" (controlled signals)" if metrics.get("refused_signals") else ""),
         f"{n['avg_queue_veh']:.1f} / {n['max_queue_veh']} veh"),
        ("CO2 / fuel", f"{n['co2_kg']:.1f} kg / {n['fuel_l']:.1f} l" if metrics.get("emissions_recorded", True)
         else "not recorded (emissions off, or a lean record)"),
        ("emergency vehicles: mean delay", f"{n['emergency_vehicles']} veh: " + _seconds(n["emergency_delay_s"])),
        # SUMO's time loss over each walk, not ATSPM's pedestrian delay (the wait at a crossing for the walk)
        ("pedestrians: time lost per walk (SUMO)", "0: — (no pedestrians in this run)" if not n["pedestrians"]
         else f"{n['pedestrians']}: " + _seconds(n["ped_delay_s"])
                                + (f" ({n['walking_at_end']} still walking)" if n.get("walking_at_end") else "")),
        # each pedestrian's standing over its walk (its waits at crosswalks): the mean hides the one who missed a walk
        ("pedestrians: wait mean / p95 / max", _ped_waits_text(n)),
        ("pedestrians jammed (SUMO)", "— (not counted)" if n.get("pedestrians_jammed") is None
         else str(n["pedestrians_jammed"])),
        ("preemptions / fallback share", f"{n['preemptions']} / {n['fallback_fraction']:.1%}"),
        ("shield interventions", ", ".join(f"{k} {v}" for k, v in metrics["shield_interventions"].items()) or "none"),
    ]
    if metrics.get("decision_time"):  # wall time of the controller's decisions: what a live run would wait for
        d = metrics["decision_time"]
        rows.append(("decision time: median / p99 / max", f"{d['median_ms']:.2f} / {d['p99_ms']:.2f} / "
                                                            f"{d['max_ms']:.2f} ms"))
    if "safety" in metrics:
        s = metrics["safety"]
        rows.append(("safety violations (independent audit)", f"{s['violations']}"
                     + (f" ({len(s['below_ite'])} clearance(s) below ITE)" if s.get("below_ite") else "")
                     + ("; pedestrian checks not applied: this timing profile has no pedestrian intervals "
                        "(signalwise audit says more)" if s.get("not_applied") else "")))
    if metrics.get("below_ite_timing"):  # the configured timing's departures from ITE: not counted as violations
        from .below_ite import below_ite_summary
        rows.append(("configured below ITE (not violations)", below_ite_summary(metrics["below_ite_timing"])))
    refused = metrics.get("refused_signals") or []
    if refused:
        rows.append(("signals left uncontrolled", _refused_cell(refused)))
    for k, v in rows:
        t.add_row(k, v)
    console = table_console()
    console.print(t)
    console.print(RUN_DELAY_NOTE, soft_wrap=True)
    from .below_ite import run_warning_lines

    # a clearance below ITE reads one line per setting; metrics.json keeps each signal's note and the audit's lines
    said = run_warning_lines(metrics.get("warnings", ()), metrics.get("below_ite_timing") or [],
                             metrics.get("safety", {}).get("below_ite", ()))
    for warning in ([_refused_warning(refused)] if refused else []) + said:
        # one line a warning, however narrow the stream: a log is read line by line, and grepped
        console.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}", soft_wrap=True)
    console.print(f"run directory: {run_dir}", soft_wrap=True)


#: the line under the run summary's table: its delay is RESCO's, as compare's report defines it (DEFINITIONS)
RUN_DELAY_NOTE = ("delay per vehicle: the RESCO definition, every vehicle due (arrived, still driving, never "
                  "inserted)")
#: the widest value column of the run summary's table, in characters
RUN_VALUE_WIDTH = 56
#: the widest metric column of the run summary's table: with the value column's, 100 characters
RUN_METRIC_WIDTH = 37
#: signals the run summary's cell names; the warning under the table names every one, with its reason
REFUSED_NAMED = 3


def _refused_cell(refused: list[dict]) -> str:
    """The signals left to their own program, as a table cell: their count and the first few, the reasons in
    the warning under the table (a generated network refuses dozens, and a cell of every reason stretched the
    table to 200 columns)."""
    more = f" and {len(refused) - REFUSED_NAMED} more" if len(refused) > REFUSED_NAMED else ""
    return f"{len(refused)}: {', '.join(r['id'] for r in refused[:REFUSED_NAMED])}{more} (reasons below)"


def _refused_warning(refused: list[dict]) -> str:
    """Every signal left to its own program, each reason once with the signals it refused."""
    from ..sim.signal_model import RefusedSignal
    from .loop import grouped_refusals

    return (f"{len(refused)} signal(s) left to their own program, not driven by the controller: "
            + grouped_refusals([RefusedSignal(r["id"], r["reason"]) for r in refused], shown=len(refused)))


def _teleports_text(network: dict) -> str:
    """SUMO's teleports of a run and their kinds; a metrics.json from before they were counted reads unknown."""
    total = network.get("teleports")
    if total is None:
        return "— (not counted)"
    kinds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in (network.get("teleports_by_kind") or {}).items() if v)
    return f"{total} ({kinds})" if kinds else str(total)


def compare_command(
    scenario: Annotated[str | None, typer.Option("--scenario", "-s", help="single | corridor | grid | grid10x10 | resco:NAME; default corridor (not with --sumocfg/--net)", show_default=False)] = None,
    controllers: Annotated[str, typer.Option("--controllers", "-c", help=(
        f"comma-separated: {', '.join(BUILTIN_CHOICES)}, ql (the shipped or active model), ql:PATH, "
        "ql:@active, an installed plugin, py:MODULE:FACTORY, py:FILE.py:FACTORY (docs/controllers.md); the first "
        "is the baseline"))] = DEMO_CONTROLLERS,
    seeds: Annotated[int, typer.Option(help=(
        "number of seeds (1..N). On a built-in scenario each seed draws new demand; on RESCO networks and route "
        "files that list each vehicle (randomTrips') the demand is the same on every seed, which varies only SUMO's "
        "randomness (driver imperfection, insertion): the ± and p then cover one demand realisation. The report "
        "says which"))] = 5,
    first_seed: Annotated[int, typer.Option(help="seeds run from this one upward")] = 1,
    duration: Annotated[float | None, typer.Option(help="simulated seconds per run")] = None,
    out: Annotated[Path | None, typer.Option(help="output directory, new or empty (default runs/compare-<time>-<scenario>)")] = None,
    workers: Annotated[int | None, typer.Option(help="parallel worker processes (default: CPU count)")] = None,
    sumocfg: Annotated[Path | None, typer.Option(help="your own SUMO config (.sumocfg)")] = None,
    net: Annotated[Path | None, typer.Option(help="your own network (.net.xml); use with --routes")] = None,
    routes: Annotated[list[Path] | None, typer.Option(help="route files for --net (repeatable)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of run settings")] = None,
    db: Annotated[str | None, typer.Option(help="also write every run into this database URL ('default' = SIGNALWISE_DATABASE_URL, else the embedded SQLite file signalwise.db here)")] = None,
    timing: TimingOpt = None,
    demand_scale: DemandScaleOpt = None,
    warmup: WarmupOpt = None,
) -> None:
    """Compare controllers over seeds: mean, 95% CI, change vs the first with the paired t-test p over the same
    seeds (p_paired; Welch's beside it in summary.csv, p_welch), a chart, and report.md for a memo."""
    with sigterm_as_interrupt():  # `kill` stops the runs and marks their directories incomplete, as Ctrl-C does
        _compare(scenario, controllers, seeds, first_seed, duration, out, workers, sumocfg, config, db, net, routes,
                 timing, demand_scale, warmup)


@friendly_errors
def _compare(scenario, controllers, seeds, first_seed, duration, out, workers, sumocfg, config, db, net=None,
             routes=None, timing=None, demand_scale=None, warmup=None) -> None:
    import datetime as dt

    from rich.console import Console

    from .compare import REPORT, check_network, compare_controllers
    from .loop import resolve_scenario, run_window, sumocfg_note
    from .run import slug

    names = [c.strip() for c in controllers.split(",") if c.strip()]
    if not names:
        _fail("--controllers is empty")
    from ..control.base import spec_error

    for name in names:  # named as the option the user gave (the run configuration calls it --controller)
        why = spec_error(name)
        if why:
            _fail(f"invalid controller in --controllers: {why}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        _fail(f"--controllers names {', '.join(twice)} twice: each controller runs once per seed")
    check_seeds(seeds, first_seed)
    if workers is not None and workers < 1:
        _fail("--workers must be at least 1")
    own = sumocfg is not None or net is not None or bool(routes)
    if scenario is None and not own:
        scenario = DEMO_SCENARIO
    base = _load_config(config, scenario=scenario, controller=names[0], duration_s=duration, sumocfg=sumocfg,
                        net=net, routes=routes or None, demand_scale=demand_scale, timing_profile=timing,
                        warmup_s=warmup)
    base = with_shipped_model(with_model_registry(base, names, _registry_url(db)), names)
    for name in names:  # fail fast on a typo, before starting any worker
        base.model_validate({**base.model_dump(), "controller": name})
    _check_models(names)
    _load_factories(names)
    # fail on a missing or bad network before starting any worker
    scenario_read = resolve_scenario(base)
    run_window(base, scenario_read)
    note = sumocfg_note(base, scenario_read)
    # ... and on one no run could use (no signal to control, routes over unknown edges), or a model that does not fit
    seen = check_network(base, names)
    # said of models that will run: a model refused above gets its refusal alone
    caveats = note_profile_mismatch(base, names) + note_model_conditions(base, names,
                                                                          list(range(first_seed, first_seed + seeds)))
    shown = ([note] if note else []) + network_warnings(seen.refused,
                                                        seen.plan_notes if BASELINE_CONTROLLER in names else {})
    for warning in shown:
        typer.secho(f"warning: {warning}", fg="yellow", err=True)
    out = out or Path("runs") / f"compare-{dt.datetime.now():%Y%m%d-%H%M%S}-{slug(base.scenario_label)}"
    why = why_not_fresh(out)
    if why:
        _fail(f"--out {out}: {why}")
    _open_store(db)
    seed_list = list(range(first_seed, first_seed + seeds))
    console = Console(stderr=True)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..consoles import progress_line

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[last]}"), console=console) as bar:
        scaled = f", demand ×{base.demand_scale:g}" if base.demand_scale != 1.0 else ""
        task = bar.add_task(f"compare on {base.scenario_label}{scaled}", total=len(names) * len(seed_list), last="")

        def on_done(c, s, metrics, error):
            last = f"{c} s{s}: " + (f"{_seconds(metrics['network']['avg_delay_s'])} delay" if metrics
                                    else f"FAILED {error}")
            bar.update(task, advance=1, last=last)
            progress_line(bar, task, "runs", last)

        result = compare_controllers(base, names, seed_list, out, workers, on_done, caveats=caveats)
    if db is not None:
        _publish(sorted(result.run_dirs.values()), db, console)
    print_compare_table(result.summary, shown=shown)
    if result.chart:
        Console().print(f"chart: {result.chart}", soft_wrap=True)  # a path folded over two lines cannot be pasted
    Console().print(f"summary: {result.out_dir / 'summary.csv'} (runs in {result.out_dir})", soft_wrap=True)
    Console().print(f"report: {result.out_dir / REPORT} (conditions, table, definitions, chart)", soft_wrap=True)
    if result.failures:
        _fail(f"{len(result.failures)} run(s) failed: " + "; ".join(f"{c} s{s}: {m}" for (c, s), m in result.failures.items()), code=1)


def _check_models(names: list[str]) -> None:
    """A `ql:PATH` that is no model fails here, in one line, not in every worker's run of every seed."""
    from ..control.learning.qtable import ModelError, load_model

    for name in names:
        kind, _, arg = name.partition(":")
        if kind != "ql" or not arg or arg.startswith("@"):
            continue  # bare `ql` (the shipped or active model) and a registry reference resolve when the run starts
        try:
            load_model(Path(arg.partition("?")[0]))  # `PATH?guide_visits=N`: the options are the controller's
        except ModelError as exc:
            _fail(f"--controllers {name}: {exc}")


def print_compare_table(summary: dict, width: int | None = None, shown: Collection[str] = ()) -> None:
    """One column per controller: mean ± 95% CI, then change vs the baseline and the paired t-test's p over the
    seeds both ran (each seed is the same demand for every controller, so the runs are pairs; Welch's p, which
    ignores that, is in summary.csv beside it, `p_welch`). "p n/a" where the paired test is undefined. A change with p
    below 0.05 and of 1 % or more says "better" or "worse" in words, not only in colour: a log or a pipe has none;
    any other tested change says "no clear change", and one of a figure averaged over a handful of vehicles a seed
    "too few to judge" (its label gives how many: `compare.summarize`).

    A heading line above the title says the conditions (`compare.conditions_text`) when the summary has them, so
    a table at another demand or timing profile cannot be taken for this one. Five controllers fit 100 columns (`width`, else
    `consoles.table_console`); a controller that never ran (the fallback served its runs) is marked in its
    heading and its fallback share row. Under it, the runs' own warnings, each once with the runs that gave it
    (`compare.warning_groups`), but for those in `shown` (printed before the runs started).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..analytics.stats import p_text
    from ..consoles import table_console
    from .compare import (
        FAULT_ROWS,
        MIN_CHANGE_PCT,
        change_text,
        conditions_text,
        mean_text,
        per_seed_text,
        seeds_vary_text,
        warning_groups,
    )

    controllers = summary["controllers"]
    base = summary["baseline"]
    never = set(summary.get("never_ran", ()))
    n_seeds = len(summary["seeds"])
    # what the table is of heads it on a line of its own, never folded: a title folds at the table's width, and a
    # line split over four reads badly and greps worse
    heading = f"{summary.get('scenario', '')}: {conditions_text(summary['conditions'])}" \
        if summary.get("conditions") else None
    where = "" if heading else summary.get("scenario", "") + (
        f", after a {summary['warmup_s']:g} s warm-up" if summary.get("warmup_s") else "") + ": "
    t = Table(title=f"{where}mean ± 95% CI over {n_seeds} seed(s); change vs {base} \\[its 95% CI], paired t-test "
                    "p over the same seeds (Welch's: p_welch in summary.csv); better/worse where p < 0.05 and the change is "
                    f"{MIN_CHANGE_PCT:g} % or more, else no clear change", title_justify="left",
              padding=(0, 1), collapse_padding=True)
    console = Console(width=width) if width else table_console()
    # the headline's name never folds (a reader, and a grep, find it on one line); a verdict folds in its cell. On a
    # terminal narrower than 140 columns the names fold at 22 so five controllers fit 100; on a wider one, and in a
    # pipe or a file (a log, `tee`), whose width is what the table needs, no name folds
    names_in = 22 if console.width < 140 and (console.is_terminal or width) else None
    t.add_column("metric", overflow="fold", min_width=len("delay per vehicle (s)") + 1, max_width=names_in)
    for c in controllers:
        t.add_column(c + ("\n[red]NEVER RAN[/red]" if c in never else ""), justify="right", overflow="fold")
    for row in summary["metrics"].values():
        cells = []
        for c in controllers:
            e = row["controllers"][c]
            text = mean_text(e, n_seeds)
            if c != base and e["mean"] is not None and e.get("change_pct") is not None:
                # None: no test (p n/a); "no clear change" (p at or above 0.05, or a change under 1 %) or "too
                # few to judge" where a test ran but gives no verdict
                verdict = e.get("verdict") or e.get("no_verdict")
                color = {"better": "green", "worse": "red"}.get(verdict, "dim")
                ptxt = p_text(e.get("p_paired"))
                if e.get("seeds_compared") is not None:  # fewer than the seeds each side measured
                    ptxt += f", {len(e['seeds_compared'])} seed(s) both measured"
                # the word on a line of its own: five controllers still fit 100 columns
                text += f"\n[{color}]{verdict + chr(10) if verdict else ''}{change_text(e, space='')} {ptxt}[/{color}]"
            cells.append(text)
        unit = f" ({row['unit']})" if row["unit"] else ""
        few = row.get("per_seed_n") or {}
        t.add_row(row["label"] + unit + (f"\n{per_seed_text(few, judged=False)}" if few.get("too_few") else "")
                  + (f"\n{row['none_in_runs']}" if row.get("none_in_runs") else ""), *cells)
    share = summary.get("fallback_share", {})
    if share:
        t.add_row("fallback share", *[("[red]" if c in never else "") +
                                      ("—" if share.get(c) is None else f"{share[c]:.1%}") for c in controllers])
    for key, label in FAULT_ROWS:  # only when a run had one: a controller that fails is rare, and must show
        if any(summary.get(key, {}).values()):
            t.add_row(label, *["—" if summary[key].get(c) is None else str(summary[key][c]) for c in controllers])
    viol = summary.get("safety_violations", {})
    if viol:
        t.add_row("safety violations", *["—" if viol.get(c, 0) is None else str(viol.get(c, 0)) for c in controllers])
    if heading:
        console.print(heading, style="bold", soft_wrap=True, markup=False, highlight=False)
    console.print(t)
    for c in controllers:
        if c in never:
            console.print(f"[bold yellow]warning:[/bold yellow] {c} never ran: the shield's fallback served its runs, "
                          "so its column shows the fallback plan, not the controller")
    for group in warning_groups(summary.get("run_warnings", {}), shown):
        # one line a warning, as `run` prints them: a log is read line by line, and grepped
        console.print(f"[bold yellow]warning:[/bold yellow] {escape(group['text'])}", soft_wrap=True)
    if (summary.get("conditions") or {}).get("seeds_vary") == "sumo":  # the ± reads otherwise as demand's spread
        console.print(f"note: seeds: {escape(seeds_vary_text(summary['conditions']))}", soft_wrap=True)


def scenarios_command() -> None:
    """List the scenarios you can run."""
    from rich.table import Table

    from ..consoles import table_console
    from ..sim.scenario import list_scenarios

    t = Table(title="scenarios (or bring your own: --sumocfg FILE, or --net FILE --routes FILE)")
    t.add_column("name")
    t.add_column("description")
    for name, desc in list_scenarios():
        t.add_row(name, desc)
    table_console().print(t)


def demo_command(
    seeds: Annotated[int, typer.Option(help="seeds per controller")] = DEMO_SEEDS,
    out: Annotated[Path | None, typer.Option(
        help=f"output directory, new or empty (default runs/compare-<time>-{DEMO_SCENARIO})", show_default=False)] = None,
    duration: Annotated[float | None, typer.Option(
        help="simulated seconds per run (default: the corridor's whole hour); shorter for a quick look, "
             "before the peak builds", show_default=False)] = None,
) -> None:
    """Compare fixed, webster, actuated, max-pressure and the shipped learned model on the corridor (`make demo`)."""
    from rich.console import Console

    if seeds < 1:
        _fail("--seeds must be at least 1")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        _fail(f"--duration must be a number of seconds above 0, not {duration:g}")
    span = "1 simulated hour, off-peak -> peak -> off-peak" if duration is None else f"its first {duration:g} simulated s"
    Console().print(f"[bold]signalwise demo[/bold]: {DEMO_WITH_LEARNING} on the built-in '{DEMO_SCENARIO}' "
                    f"(5 signals, {span}), {seeds} seeds each, "
                    "every decision through the safety shield; ql is the learned model shipped for the corridor, "
                    "the table shows its fallback share and the independent safety audit.")
    _compare(DEMO_SCENARIO, DEMO_WITH_LEARNING, seeds, 1, duration, out, None, None, None, None)


def publish_command(
    run_dirs: Annotated[list[Path], typer.Argument(
        help="run directories of `signalwise run`, or a `signalwise compare` directory (every run in it); a live "
             "run stores its records as it goes", show_default=False)],
    db: Annotated[str | None, typer.Option(help=DB_HELP)] = None,
) -> None:
    """Store existing run directories: their records, metrics and hi-res events."""
    _publish_dirs(run_dirs, db)


@friendly_errors
def _publish_dirs(run_dirs: list[Path], db: str | None) -> None:
    from rich.console import Console

    complete = [run for d in run_dirs for run in _runs_in(d)]
    _publish(complete, db or "default", Console(stderr=True))


def _runs_in(d: Path) -> list[Path]:
    """`d` when it is a complete run directory, the complete runs in it when it is a compare's; else an error."""
    if is_complete_run(d):
        return [d]
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a directory (a run directory holds metrics.json, config.yaml, ...)"
                                if d.exists() else f"{d}: no such run directory")
    runs = comparison_runs(d)
    if not runs:
        missing = [name for name in ("metrics.json", "config.yaml") if not (d / name).is_file()]
        raise FileNotFoundError(f"{d}: not a complete run directory (no {' nor '.join(missing)}"
                                f"{_run_status(d)}) nor a compare directory holding any")
    return runs


def _run_status(d: Path) -> str:
    """`; run.json says ...` when the directory's run.json says why it is not complete."""
    import json

    try:
        info = json.loads((d / "run.json").read_text())
    except (OSError, ValueError):
        return ""
    status, reason = info.get("status"), info.get("reason")
    if not isinstance(status, str) or status == "complete":
        return ""
    return f"; run.json says: {status}" + (f", {reason}" if isinstance(reason, str) and reason else "")


def _publish(run_dirs: list[Path], db: str, console) -> None:
    """Write runs into the store (per-intersection records, metrics, events)."""
    try:
        from .records import RunFilesError, publish_runs
    except ImportError as exc:  # the store is an optional part of older installs
        _fail(f"the store is not available: {exc}")
    from ..store.cli_engine import open_or_exit

    url = _store_url(db)

    def store() -> int | RunFilesError:
        try:
            # a run stored under another id than its name (the name is another directory's) is said, never unsaid
            return publish_runs(run_dirs, url, say=lambda line: console.print(f"note: {line}", soft_wrap=True))
        except RunFilesError as exc:  # a damaged run directory is bad input, not a store that failed
            return exc

    n = open_or_exit(store, f"cannot store the runs in {_shown_url(url)}")
    if isinstance(n, RunFilesError):
        _fail(f"{n}; nothing was stored")
    console.print(f"stored {len(run_dirs)} run(s), {n} intersection records -> {_shown_url(url)}", soft_wrap=True)


def _registry_url(db: str | None) -> str | None:
    """The model registry's database for `--db` (None: the configured one, SIGNALWISE_DATABASE_URL)."""
    return None if db is None else _store_url(db)


def _store_url(db: str) -> str:
    from ..store import Settings

    return Settings().database_url if db in ("", "default") else db


def _open_store(db: str | None) -> None:
    """With `--db`, open (and migrate) the database before simulating: a run is not simulated to be lost."""
    if db is not None:
        from ..store.cli_engine import engine_or_exit

        engine_or_exit(_store_url(db))


def _shown_url(url: str) -> str:
    """A database URL to print: its secrets masked (`core.redaction.shown_url`)."""
    from ..core.redaction import shown_url

    return shown_url(url)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("compare")(compare_command)
    app.command("scenarios")(scenarios_command)
    app.command("demo")(demo_command)
    app.command("publish")(publish_command)

