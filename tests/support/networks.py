"""Networks made in a test by SUMO's own generators (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

from signalwise.sim.sumo_home import sumo_home


def generated_network_with_pockets(folder: Path) -> tuple[Path, Path]:
    """A random network from SUMO's own generator: 2 lanes, a left-turn pocket at every approach, signals
    where SUMO guesses them; random trips over 600 s (both tools ship in the eclipse-sumo package)."""
    import os
    import subprocess
    import sys

    home = sumo_home()
    env = {**os.environ, "SUMO_HOME": str(home)}
    net, trips = folder / "net.net.xml", folder / "trips.rou.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--rand", "--rand.iterations", "30", "--seed", "7", "-L", "2",
                    "--turn-lanes", "1", "--tls.guess", "-o", str(net)], check=True, capture_output=True, env=env)
    subprocess.run([sys.executable, str(home / "tools" / "randomTrips.py"), "-n", str(net), "-e", "600", "-p", "1.5",
                    "--seed", "42", "--validate", "-o", str(trips)], check=True, capture_output=True, env=env,
                   cwd=folder)
    return net, trips


def netconvert_network(folder: Path, name: str, nodes_xml: str, edges_xml: str, *options: str,
                       connections_xml: str | None = None) -> Path:
    """`folder/NAME.net.xml` built by SUMO's netconvert from the given plain nodes and edges (and connections)
    files' text, with its `options` (`--crossings.guess`, ...)."""
    import os
    import subprocess

    (folder / f"{name}.nod.xml").write_text(nodes_xml)
    (folder / f"{name}.edg.xml").write_text(edges_xml)
    args = ["-n", f"{name}.nod.xml", "-e", f"{name}.edg.xml"]
    if connections_xml is not None:
        (folder / f"{name}.con.xml").write_text(connections_xml)
        args += ["-x", f"{name}.con.xml"]
    home = sumo_home()
    net = folder / f"{name}.net.xml"
    subprocess.run([str(home / "bin" / "netconvert"), *args, *options, "-o", net.name], check=True,
                   capture_output=True, cwd=folder, env={**os.environ, "SUMO_HOME": str(home)})
    return net
