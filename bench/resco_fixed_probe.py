"""What could RESCO's published fixed-time figures be? Two candidates, on SUMO as installed here.

    .venv/bin/python bench/resco_fixed_probe.py [--networks cologne1,ingolstadt1,cologne8] [--seeds 1,2]

- `own`: SUMO runs each network's own programs untouched, with RESCO's SUMO
  options (no teleports), explicit seeds;
- `installed`: the program RESCO's `Signal` installs before any agent acts
  (`traffic_signal.py`: the green phases in order, then every generated 3 s
  yellow appended, as a static program), left to run without switching.

Prints RESCO's delay (timeLoss + departDelay over every vehicle, those still
running and never inserted included) beside the published figure. Neither is
RESCO's FIXED agent, whose code is not published; docs/benchmarks.md says
what the figures show.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from resco import PUBLISHED_FIXED

CHILD = r"""
import json, os, sys, tempfile, xml.etree.ElementTree as ET
from signalwise.sim.scenario import load
from signalwise.sim.sumo_home import import_libsumo, sumo_binary
net, mode, seed = sys.argv[1], sys.argv[2], sys.argv[3]
s = load("resco:" + net)
out = os.path.join(tempfile.mkdtemp(), "trip.xml")
ls = import_libsumo()
ls.start([sumo_binary(), "-n", str(s.net_file), "-r", ",".join(map(str, s.route_files)), "-b", f"{s.begin_s:g}",
          "-e", f"{s.end_s:g}", "--seed", seed, "--time-to-teleport", "-1", "--no-step-log", "true",
          "--no-warnings", "true", "--tripinfo-output", out, "--tripinfo-output.write-unfinished", "true",
          "--tripinfo-output.write-undeparted", "true"])
if mode == "installed":
    for tls in ls.trafficlight.getIDList():
        logic = ls.trafficlight.getAllProgramLogics(tls)[0]
        greens = [p for p in logic.phases if "y" not in p.state and "g" in p.state.lower()]
        phases = list(greens)
        for i, a in enumerate(greens):
            for j, b in enumerate(greens):
                if i == j:
                    continue
                yellow = "".join("y" if ca in "Gg" and cb in "rs" else ca for ca, cb in zip(a.state, b.state))
                if yellow != a.state:
                    phases.append(ls.trafficlight.Phase(3, yellow))
        logic.type = 0
        logic.phases = phases
        ls.trafficlight.setProgramLogic(tls, logic)
while ls.simulation.getTime() < s.end_s:
    ls.simulationStep()
ls.close()
trips = ET.parse(out).getroot().findall("tripinfo")
delay = sum(float(t.get("timeLoss")) + float(t.get("departDelay")) for t in trips) / len(trips)
print(json.dumps({"delay_s": delay}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default="cologne1,ingolstadt1,cologne8")
    ap.add_argument("--seeds", default="1,2")
    args = ap.parse_args()
    print("| network | own program | RESCO's installed program | RESCO published fixed-time |")
    print("|---|---|---|---|")
    for net in args.networks.split(","):
        row = {}
        for mode in ("own", "installed"):
            delays = []
            for seed in args.seeds.split(","):
                p = subprocess.run([sys.executable, "-c", CHILD, net, mode, seed], capture_output=True, text=True,
                                   check=True, cwd=tempfile.gettempdir(), env=os.environ)
                delays.append(json.loads(p.stdout.strip().splitlines()[-1])["delay_s"])
            row[mode] = statistics.mean(delays)
        print(f"| {net} | {row['own']:.1f} | {row['installed']:.1f} | {PUBLISHED_FIXED.get(net, float('nan')):.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
