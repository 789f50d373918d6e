"""What each of SUMO's evidence outputs costs SUMO itself, per network.

    .venv/bin/python bench/sumo_evidence_cost.py [--repeat 5] [--networks resco:grid4x4,resco:cologne8]

A `--record full` run asks SUMO for more than a lean one: per-edge traffic
intervals (edgeData), per-edge emissions intervals (an emissions edgeData,
every vehicle on every lane at every step, junctions included) and an instant
induction loop at every stop bar and advance position (detector passages).
SUMO computes and writes them inside its steps, so no change on our side of
the loop reaches them. Here SUMO runs each network with its own programs
(no controller, no Python between steps) and the outputs of a lean run
(tripinfo, statistics) plus one of those, as a run writes them; fresh
processes, alternating; medians of the CPU time of SUMO's steps, and what each
adds to the lean set.
"""

from __future__ import annotations

import argparse
import json

from _common import median, run_child

VARIANTS = ("lean", "edge_intervals", "emissions", "detector_loops", "full")
#: with --emission-variants: the same HBEFA emissions asked for in cheaper shapes, to tell computing them from
#: aggregating and writing them (per edge without junction-internal lanes; CO2 and fuel columns only; per vehicle
#: in tripinfo through SUMO's emissions device, no per-edge file)
EMISSION_VARIANTS = ("emissions_no_internal", "emissions_co2_fuel", "emissions_device")

CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
from signalwise.sim.backend import SumoOptions, build_command
from signalwise.sim.detectors import place_detectors
from signalwise.sim.outputs import write_meandata_file
from signalwise.sim.scenario import load
from signalwise.sim.sumo_home import import_libsumo
s = load(sys.argv[1]); variant = sys.argv[2]; d = Path(tempfile.mkdtemp())
adds = list(s.additional_files)
if variant in ("edge_intervals", "full"):
    adds.append(write_meandata_file(d / "meandata.add.xml", 60, d / "edgedata.xml",
                                    d / "emissions.xml" if variant == "full" else None))
EMISSIONS = {  # the emissions interval alone, in each shape
    "emissions": 'withInternal="true"', "emissions_no_internal": "",
    "emissions_co2_fuel": 'withInternal="true" writeAttributes="CO2_abs fuel_abs"'}
if variant in EMISSIONS:
    adds.append(d / "emissions.add.xml")
    adds[-1].write_text('<additional><edgeData id="sw_emissions" type="emissions" period="60" file="emissions.xml" '
                        f'excludeEmpty="true" {EMISSIONS[variant]}/></additional>')
if variant in ("detector_loops", "full"):
    adds.append(place_detectors(s.net_file, d, live=False, instant=True).instant_file)
extra = ["--tripinfo-output.write-unfinished", "true", "--tripinfo-output.write-undeparted", "true"]
if variant.startswith("emissions") or variant == "full":
    extra += ["--emissions.volumetric-fuel", "true"]
if variant == "emissions_device":
    extra += ["--device.emissions.probability", "1"]
opts = SumoOptions(net_file=s.net_file, route_files=s.route_files, additional_files=adds, begin_s=s.begin_s,
                   end_s=s.end_s, extra_args=extra,
                   outputs={"tripinfo-output": d / "tripinfo.xml", "statistic-output": d / "statistics.xml"})
ls = import_libsumo()
ls.start(build_command(opts))
c = time.process_time()
while ls.simulation.getTime() < s.end_s:
    ls.simulationStep()
ls.close()
print(json.dumps({"steps_cpu_s": time.process_time() - c}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--networks", default="resco:grid4x4,resco:cologne8")
    ap.add_argument("--emission-variants", action="store_true",
                    help="also the emissions in cheaper shapes (no junction lanes, two columns, per vehicle)")
    args = ap.parse_args()
    variants = VARIANTS + (EMISSION_VARIANTS if args.emission_variants else ())
    results = {}
    for net in args.networks.split(","):
        cpu: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.repeat):
            for v in variants:
                cpu[v].append(run_child(CHILD, net, v)[1]["steps_cpu_s"])
        lean = median(cpu["lean"])
        res = {f"{v}_steps_cpu_s": round(median(c), 3) for v, c in cpu.items()}
        res.update({f"{v}_adds_s": round(median(cpu[v]) - lean, 3) for v in variants if v != "lean"})
        res["repeats"] = args.repeat
        results[net] = res
        print(net, json.dumps(res), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
