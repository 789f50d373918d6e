"""Write docs/configuration.md, the reference of every configuration key, from the pydantic models.

    .venv/bin/python scripts/config_reference.py          # rewrite docs/configuration.md
    .venv/bin/python scripts/config_reference.py --check  # exit 1 if the file differs from the models

The run configuration (`signalwise.runtime.config.RunConfig`, with its nested
`TimingConfig` and `ShieldSettings`), the `alerts:` section `signalwise live` reads
from the same file (`signalwise.runtime.live.alerts.AlertConfig` and its `AlertRule`), and the server settings
(`signalwise.store.settings.Settings`, environment prefix `SIGNALWISE_`) are
the only source: each key's type, default and range come from its field, its
unit from the name's suffix, its description from the field's `description`
or the `#:` comment above it. A key without a description is an error, so a
new setting cannot arrive undocumented. `tests/test_docs.py` regenerates the
page in memory and compares, so the page cannot drift from the code.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
import typing
from pathlib import Path

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from signalwise.runtime.config import PHASE_TIMING_FIELDS, TIMING_FIELDS, RunConfig
from signalwise.runtime.live.alerts import BUILTIN_RULES, AlertConfig, AlertRule
from signalwise.store.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "configuration.md"

#: name suffix -> unit
SUFFIX_UNITS = {"_s": "s", "_m": "m", "_mps": "m/s", "_vph": "veh/h", "_veh": "vehicles"}
#: words that name a unit when one of the first two words of a description, for keys without a unit suffix
DESCRIPTION_UNITS = {"seconds": "s", "metres": "m", "records": "records", "items": "items", "vehicles": "vehicles"}

EXAMPLE_YAML = """\
# signalwise run --scenario corridor --controller actuated --config corridor.yaml
interval_s: 300            # time series and store records every 5 minutes
emissions: true
timing:
  min_green_s: 7
  max_green_s: 50
  ped_walk_s: 7
  cycle_max_s: 120
  per_intersection:        # SUMO traffic-light id -> timing keys that differ there
    J3:
      max_green_s: 70
      yellow_s: 4.0
      phases:              # phase number (as the event log numbers it) -> its own min/max green
        1: {min_green_s: 15}
        2: {max_green_s: 25}
    J5:
      all_red_s: 2.0
shield:
  confidence_threshold: 0.6
  preempt_distance_m: 200
controller_options:        # read by the controller that runs (here: actuated)
  passage_s: 2.5
"""

#: environment variables outside the settings models: the cache of derived files, how simulation processes
#: start, and the test database's (read by the test suite only)
OTHER_ENVIRONMENT = (
    ("SIGNALWISE_CACHE_DIR", "`$XDG_CACHE_HOME/signalwise`, else `~/.cache/signalwise`",
     "where derived files are kept between runs: RESCO's own ingolstadt7 and ingolstadt21 networks, restored from "
     "sumo-rl's copies (`sim/resco_networks.py`)"),
    ("SIGNALWISE_START_METHOD", "`forkserver`",
     "how each simulation process (a run of `compare`, a training episode, the live SUMO worker) starts: forked "
     "from a server that imported numpy, libsumo and signalwise once, or `spawn`, a new interpreter each "
     "(`sim/processes.py`, [architecture.md](architecture.md#a-process-per-simulation))"),
    ("SIGNALWISE_MQTT_USERNAME", "unset (no user name)",
     "the user name `signalwise live --mqtt` gives a broker that wants one ([live-feeds.md](live-feeds.md#mqtt))"),
    ("SIGNALWISE_MQTT_PASSWORD", "unset (no password)",
     "its password (only with a user name); read from the environment, never the command line, which `ps` shows"),
    ("SIGNALWISE_MQTT_CA_FILE", "unset (the system's CA store with `--mqtt-tls`)",
     "the CA file (PEM) that verifies the `--mqtt` broker's certificate, when `--mqtt-ca-file` is not given; means "
     "TLS ([live-feeds.md](live-feeds.md#tls))"),
    ("SIGNALWISE_MQTT_CERT_FILE", "unset (no client certificate)",
     "the client certificate (PEM) for a TLS broker that asks for one, when `--mqtt-cert-file` is not given"),
    ("SIGNALWISE_MQTT_KEY_FILE", "unset (the key is in the certificate's file)",
     "that certificate's private key (PEM), when `--mqtt-key-file` is not given"),
    ("SIGNALWISE_MQTT_KEY_PASSWORD", "unset (the key is not encrypted)",
     "the password of an encrypted client key; the environment only, never the command line"),
    ("SIGNALWISE_TEST_POSTGRES_URL", "`postgresql+psycopg://postgres@127.0.0.1:5432/test`",
     "the PostgreSQL server the test suite and the store benchmarks use; tests skip when it is unreachable"),
)


# -- reading the models ------------------------------------------------------------------------------------------

def comment_descriptions(model: type[BaseModel]) -> dict[str, str]:
    """The `#:` comment lines directly above each field of `model`'s class body, joined."""
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(model).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+)\s*:", stripped)
        if match and pending:
            found[match.group(1)] = " ".join(pending)
        pending = []
    return found


def describe(name: str, field: FieldInfo, comments: dict[str, str], where: str) -> str:
    text = field.description or comments.get(name)
    if not text:
        raise SystemExit(f"{where}{name} has no description: add description= to its Field (or a #: comment)")
    return " ".join(text.split())


def type_name(annotation) -> str:
    """A field's type as YAML / environment users read it."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:  # a constrained number (`Finite`): its type
        return type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}" if args else "mapping"
    if annotation is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    names = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def value_range(field: FieldInfo) -> str:
    """The Field's ge/gt/le/lt constraints as `lo ≤ x ≤ hi`, or an empty string."""
    low = high = ""
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            low = f"{_number(constraint.ge)} ≤ "
        elif isinstance(constraint, annotated_types.Gt):
            low = f"{_number(constraint.gt)} < "
        elif isinstance(constraint, annotated_types.Le):
            high = f" ≤ {_number(constraint.le)}"
        elif isinstance(constraint, annotated_types.Lt):
            high = f" < {_number(constraint.lt)}"
    return f"{low}x{high}" if low or high else ""


def unit(name: str, description: str) -> str:
    for suffix, symbol in sorted(SUFFIX_UNITS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return symbol
    for word in re.findall(r"[a-z]+", description.lower())[:2]:  # "simulated seconds ...", "most records ..."
        if word in DESCRIPTION_UNITS:
            return DESCRIPTION_UNITS[word]
    return ""


def default(field: FieldInfo) -> str:
    if field.is_required():  # an alert rule's name, metric and threshold
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, Path):
        value = str(value)
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"`{text}`"


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str, str, str]]:
    """(dotted key, type, default, range, unit, description) of every field, nested models after their parent."""
    comments = comment_descriptions(model)
    out, nested = [], []
    for name, field in model.model_fields.items():
        text = describe(name, field, comments, f"{model.__name__}.")
        key = f"{prefix}{name}"
        out.append((key, type_name(field.annotation), default(field), value_range(field), unit(name, text), text))
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            nested.append((field.annotation, f"{key}."))
    for sub, sub_prefix in nested:
        out.extend(rows(sub, sub_prefix))
    return out


# -- writing the page ----------------------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else ""


def _table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in body]
    return lines


ALERTS_EXAMPLE_YAML = """\
# signalwise live --scenario corridor --config live.yaml
alerts:
  webhook_url: https://ops.example.org/signalwise-alerts
  rules:
    - name: stale_data       # a built-in rule, adjusted: only the keys it changes
      for_s: 5
    - name: big_queue_j2     # a rule of the run's own
      metric: queue_spillback.J2
      op: ">="
      threshold: 1
      for_s: 20
      level: error
      clear_threshold: 0.5
"""


def alert_rows() -> list[tuple[str, str, str, str, str, str]]:
    """The `alerts:` section's keys, then a rule's (`alerts.rules[].…`)."""
    section = [row for row in rows(AlertConfig, "alerts.")]
    rule = rows(AlertRule, "alerts.rules[].")
    return section + rule


def render() -> str:
    """The whole of docs/configuration.md."""
    example = yaml.safe_load(EXAMPLE_YAML)
    RunConfig.model_validate(example)  # the example must be a valid configuration
    run_rows = [(f"`{k}`", *rest) for k, *rest in rows(RunConfig)]
    env_prefix = Settings.model_config.get("env_prefix", "")
    server_rows = [(f"`{k}`", f"`{env_prefix}{k.upper()}`", *rest) for k, *rest in rows(Settings)]
    timing_keys = ", ".join(f"`{k}`" for k in sorted(TIMING_FIELDS))
    AlertConfig.model_validate(yaml.safe_load(ALERTS_EXAMPLE_YAML)["alerts"])  # the example must be valid
    alerts_table = [(f"`{k}`", *rest) for k, *rest in alert_rows()]
    builtin_table = [(f"`{r.name}`", f"`{r.metric} {r.op} {_number(r.threshold)}`", _number(r.for_s),
                      r.level, "" if r.clear_threshold is None else _number(r.clear_threshold),
                      "yes" if r.until_acknowledged else "", " ".join(r.description.split()))
                     for r in BUILTIN_RULES]
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/config_reference.py from the pydantic models; do not edit by hand.",
        "     Regenerate with: .venv/bin/python scripts/config_reference.py -->",
        "",
        "signalwise has two sets of settings:",
        "",
        "- the **run configuration**, a YAML file given with `--config FILE.yaml` to `signalwise run`, "
        "`compare` and `live`: what runs, its safety timing and the shield's thresholds "
        "(`signalwise.runtime.config.RunConfig`); `signalwise train --agent phase-score` (the default agent; "
        "the tabular agent trains under the default profile) takes its `timing`, `shield`, `step_length_s`, "
        "`time_to_teleport_s`, `sumo_options` and `sumocfg_options` for every training episode "
        "([learning.md](learning.md#learning-controller));",
        f"- the **server settings** of the store and the API, read from environment variables prefixed "
        f"`{env_prefix}` (`signalwise.store.settings.Settings`).",
        "",
        "Every run writes its resolved configuration, with absolute paths, to `config.yaml` in its run "
        "directory, so `--config runs/<run>/config.yaml` (with the run's `--controller` and `--seed`, see "
        "below) runs it again from anywhere. Unknown keys and out-of-range values are refused with a "
        "one-line `error:` naming the key: an unknown key with the file and the setting it most likely meant "
        "(`error: city.yaml: unknown setting timing.min_gren_s (did you mean timing.min_green_s?)`), a refused "
        "value with the command-line option that sets it where there is one (`invalid duration_s (--duration): "
        "...`).",
        "",
        "## Run configuration (`--config FILE.yaml`)",
        "",
        "A file to start from, each setting a city changes first with a comment: "
        "[examples/city.yaml](../examples/city.yaml) (`signalwise run --sumocfg my.sumocfg --config city.yaml` "
        "once copied beside your network). Another, with per-intersection overrides:",
        "",
        "```yaml",
        EXAMPLE_YAML.rstrip("\n"),
        "```",
        "",
        "Options given on the command line take precedence over the file; a key the command line leaves out "
        "keeps the file's value (`signalwise run --config FILE` runs the file's `controller`, `seed` and "
        "`out_dir` unless `--controller`, `--seed` or `--out` say otherwise). `signalwise compare` takes the "
        "controllers from `--controllers` and the seeds from `--seeds`, whatever the file says.",
        "",
        "Range `2 ≤ x ≤ 60` means the value must lie within those bounds; units come from the key's suffix "
        "(`_s` seconds, `_m` metres, `_mps` metres per second, `_vph` vehicles per hour, `_veh` vehicles).",
        "",
        *_table(("key", "type", "default", "range", "unit", "description"), run_rows),
        "",
        "Rules across keys:",
        "",
        "- `min_green_s` ≤ `max_green_s` and `cycle_min_s` ≤ `cycle_max_s`, at the top level and in every "
        "per-intersection override merged with the defaults;",
        "- one network at most: `scenario`, or `sumocfg`, or `net` with `routes`; with none of them the "
        "scenario is `single`;",
        "- `null` timing values are derived per intersection from its geometry (`src/signalwise/core/timing.py`); "
        "a phase serving a crosswalk gets at least walk + pedestrian clearance as its minimum green, and a "
        "`cycle_max_s` too short for every phase at minimum green is raised (the run's `signal_model.json` notes it). "
        "ITE's yellow and red clearance are recorded to the nearest 0.1 s, the pedestrian clearance rounded up to "
        "0.1 s ([networks.md](networks.md#signal-programs-clearances-and-pedestrians) says what that means and how "
        "to set a value by hand);",
        "- the signal shows each interval in whole simulation steps: a 3.3 s ITE yellow lasts 4 s at 1 s steps. "
        "A run's `signal_model.json` gives each phase's values (`phase_yellow_s`, `phase_all_red_s`) and what the "
        "signal shows (`phase_yellow_shown_s`, `phase_all_red_shown_s`), the intervals of its event log. A "
        "`yellow_s`, `all_red_s` or `ped_clearance_s` you set that is no whole number of steps runs rounded up, and "
        "the run (and a live run, as it starts and in the answer to a timing change that leaves it: docs/live.md) "
        "warns once per value, naming the signals, the value run and a step that shows it exactly: `timing.per_intersection.J3.yellow_s 4.5 s runs as 5 s at signal(s) J3: at 1 s "
        "steps each yellow is shown in whole steps, rounded up (step_length_s 0.5 shows it exactly)`. Values derived "
        "from the geometry are minimums, shown rounded up without a warning.",
        "",
        "## Per-intersection timing overrides",
        "",
        "`timing.per_intersection` maps a SUMO traffic-light id to the timing keys that differ at that signal; "
        "the rest come from the `timing` defaults above. The allowed keys are "
        f"{timing_keys}, with the same ranges, and `phases`. An unknown key or a signal that is not in the network "
        "is refused by name (the error lists the network's traffic lights).",
        "",
        f"`phases` gives a phase its own {' and '.join(f'`{k}`' for k in PHASE_TIMING_FIELDS)}, as a timing sheet "
        "does: it maps a phase number to those keys, and the phase's other values are the signal's. A phase is "
        "numbered as signalwise numbers it everywhere: 1 for the signal's first green phase, the `Parameter` of "
        "its events in `events.csv`, the phase of `signalwise atspm`'s charts and tables (before a `--nema` "
        "mapping) and of the dashboard; `signal_model.json` lists each signal's phases with their links. Each "
        "phase's values are held to the same ranges and safety-profile limits as the signal's, merged with them "
        "(`min_green_s` at most `max_green_s`, `max_green_s` at most 300 s under the safety profile); a phase "
        "serving a crosswalk still gets at least walk + pedestrian clearance as its minimum green, and the cycle "
        "bound is raised to fit every phase's minimum. A key a phase does not take, a phase that is not a "
        "number, or a phase the signal does not have is refused by name (the last when the run starts, listing "
        "the signal's phases with the approaches each serves; a live timing change is refused the same way). "
        "`signal_model.json` records each phase's values (`timing.min_green_s`, `timing.max_green_s`, indexed "
        "like the phases), and the audit holds each phase's greens to its own. The `actuated` controller's "
        "passage per phase is a controller option, `controller_options.passage_s` "
        "([controllers.md](controllers.md#actuated)).",
        "",
        "```yaml",
        "timing:",
        "  max_green_s: 60",
        "  per_intersection:",
        "    J3:                 # SUMO traffic-light id, as in the .net.xml",
        "      max_green_s: 70",
        "      ped_walk_s: 10",
        "      phases:           # phase number -> its own minimum and maximum green",
        "        1: {min_green_s: 15, max_green_s: 70}   # the arterial through",
        "        2: {min_green_s: 5, max_green_s: 25}    # its protected left",
        "    J5:",
        "      yellow_s: null    # back to the ITE formula at this signal",
        "```",
        "",
        "On `single` (signal C), `phases: {1: {min_green_s: 10, max_green_s: 40}, 2: {max_green_s: 12}, 4: "
        "{min_green_s: 9, max_green_s: 15}}` under `actuated` gives `signal_model.json` `min_green_s` [22, 5, 22, 9] "
        "(phase 1's 10 s raised to its walk + pedestrian clearance) and `max_green_s` [40, 12, 60, 15]; in 600 s "
        "the event log's greens of phases 2 and 4 max out at 12 s and 15 s while phase 3 runs up to its 60 s, and the "
        "audit finds no violation (`tests/runtime/test_phase_timing.py`).",
        "",
        "## Alerts (`alerts:` in the `--config` file of `signalwise live`)",
        "",
        "`signalwise live` reads an `alerts:` section from its `--config` file (the other commands leave it out): "
        "the run's own alert rules beside the built-in ones, and a webhook. A section that is not valid refuses "
        "the run with one line (`error: alerts: rules.0.metric: Field required`, exit 2). The rules in force, and "
        "the figures a rule may name, are in [live.md](live.md#readers-snapshots-profiler-alerts); an operator "
        "changes them at run time with `PUT /api/v1/live/config/alerts`, which takes a rule the same way.",
        "",
        "```yaml",
        ALERTS_EXAMPLE_YAML.rstrip("\n"),
        "```",
        "",
        *_table(("key", "type", "default", "range", "unit", "description"), alerts_table),
        "",
        "A rule raises when `figure op threshold` has held for `for_s` (wall seconds), once, and clears when the "
        "figure no longer satisfies `op` against `clear_threshold` (hysteresis). A rule named like a built-in one "
        "replaces it; the keys it leaves out are the built-in rule's own. The built-in rules:",
        "",
        *_table(("rule", "raises when", "for_s", "level", "clear_threshold", "until_acknowledged", "why"),
                builtin_table),
        "",
        "The webhook gets one POST (JSON, `Content-Type: application/json`, 5 s timeout) per alert raised and "
        "per alert cleared, from a background thread; a failed POST is logged, not retried (the run's "
        "`alerts.jsonl`, the store and `GET /api/v1/live/alerts` keep the record). The one a `--field none` "
        "run of `corridor` with no feed sent (`stale_data` adjusted to `for_s: 2`):",
        "",
        "```json",
        *['{', '  "id": "137dff5a24074091",', '  "rule": "stale_data",', '  "level": "warning",', '  "metric": "stale_sources",', '  "value": 5.0,', '  "threshold": 0.0,', '  "raised_at_s": 4.0,', '  "cleared_at_s": null,', '  "wall_time": "2026-11-29T20:58:58.997+00:00",', '  "message": "stale_data: stale_sources = 5 > 0 for 2 s at J1, J2, J3 (feed:detectors unhealthy: no message yet from this intersection\'s detectors; its shield is on the fallback plan) and 2 more: a signal\'s observation is stale or unhealthy (a feed went silent or sends impossible values); each signal named says what it runs on meanwhile (its fallback plan, an operator\'s hold, a plan that reads no data)",', '  "acknowledged_by": null,', '  "acknowledged_at": null,', '  "cleared_wall_time": null,', '  "cleared_value": null,', '  "cleared_reason": null,', '  "subjects": [', '    "J1",', '    "J2",', '    "J3",', '    "J4",', '    "J5"', '  ],', '  "now_value": 5.0,', '  "now_subjects": [', '    "J1",', '    "J2",', '    "J3",', '    "J4",', '    "J5"', '  ],', '  "now_message": "stale_data: stale_sources = 5 > 0 for 2 s at J1, J2, J3 (feed:detectors unhealthy: no message yet from this intersection\'s detectors; its shield is on the fallback plan) and 2 more: a signal\'s observation is stale or unhealthy (a feed went silent or sends impossible values); each signal named says what it runs on meanwhile (its fallback plan, an operator\'s hold, a plan that reads no data)",', '  "now_since_s": 4.0,', '  "state": "active",', '  "simulation_id": "20261129-205853-live-corridor-max-pressure",', '  "scenario": "corridor"', '}'],
        "```",
        "",
        f"## Server settings (environment, `{env_prefix}*`)",
        "",
        "Read by the HTTP API (`signalwise serve`, and the API of `signalwise live`); "
        "`signalwise.api.create_app(Settings(...))` takes them explicitly. `SIGNALWISE_DATABASE_URL` is also "
        "the database of `ingest`, `db`, `events import` and `--db default`; an explicit `--db URL` wins.",
        "",
        *_table(("key", "environment variable", "type", "default", "range", "unit", "description"), server_rows),
        "",
        "## Other environment variables",
        "",
        *_table(("variable", "default", "meaning"), [(f"`{n}`", d, m) for n, d, m in OTHER_ENVIRONMENT]),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/configuration.md is not up to date")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            sys.exit(f"{OUTPUT.relative_to(ROOT)} is out of date: run .venv/bin/python scripts/config_reference.py")
        return
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
