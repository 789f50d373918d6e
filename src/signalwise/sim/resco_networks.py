"""RESCO's own network files, from the copies the sumo-rl package ships.

sumo-rl's copies of two RESCO networks are not RESCO's: in ingolstadt7 and
ingolstadt21 it comments out phases of their signal programs. The cluster
signal of both (`cluster_306484187_...`) loses its 25 s `rrrrrrGGGGrr` green,
so its own fixed-time program serves links 6-7 for 5 s a cycle instead of 30 s,
and the adaptive controllers have one green phase fewer to choose there;
ingolstadt21's signal 243641585 also loses a 1 s all-red. Every published
RESCO figure was measured on RESCO's files (Pi-Star-Lab/RESCO,
`resco_benchmark/environments/NAME/NAME.net.xml`).

Uncommenting those phases gives RESCO's file byte for byte; its SHA-256 is
checked before the file is used, so a changed sumo-rl copy is refused rather
than run as something else. The restored file and a sumocfg beside it (the
same routes and time window, so tools such as the reference script can run
it) are written once to a cache directory: `SIGNALWISE_CACHE_DIR`, else
`$XDG_CACHE_HOME/signalwise`, else `~/.cache/signalwise`. The files are not
vendored: these networks carry their own licences, and sumo-rl is the
package that distributes them.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

#: SHA-256 of RESCO's own network file, for the networks whose sumo-rl copy differs from it
RESCO_NET_SHA256 = {
    "ingolstadt7": "c303455a52a4405624907421892331ccffe119bfa36511ec530226e0447bae47",
    "ingolstadt21": "67b4cb8a6a346ef26b9db92253d913c6846fed4b15785694677c54b1b9b00284",
}

_COMMENTED_PHASE = re.compile(rb"<!--\s*(<phase\b[^>]*/>)\s*-->")


class RescoNetworkError(ValueError):
    """sumo-rl's copy cannot be turned into RESCO's file."""


def cache_dir() -> Path:
    """Where derived files are kept between runs."""
    explicit = os.environ.get("SIGNALWISE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "signalwise"


def resco_sumocfg(folder: Path, net_name: str) -> Path:
    """The sumocfg that runs RESCO's own `net_name`: sumo-rl's, or one beside the restored network."""
    sumocfg = folder / f"{net_name}.sumocfg"
    want = RESCO_NET_SHA256.get(net_name)
    if want is None:
        return sumocfg
    source = (folder / f"{net_name}.net.xml").read_bytes()
    if _sha256(source) == want:  # a sumo-rl that ships RESCO's file itself
        return sumocfg
    # per sumo-rl folder too: the sumocfg beside the restored file names that folder's route files by absolute path,
    # so two installs (a checkout and a CI clone) sharing the cache must not share it, nor one outlive its folder
    folder_digest = _sha256(str(folder.resolve()).encode())[:8]
    target = cache_dir() / "resco" / f"{net_name}-{want[:16]}-{folder_digest}"
    restored_cfg = target / f"{net_name}.sumocfg"
    if restored_cfg.is_file():
        return restored_cfg
    restored = _COMMENTED_PHASE.sub(rb"\1", source)
    if _sha256(restored) != want:
        raise RescoNetworkError(
            f"{folder / f'{net_name}.net.xml'}: restoring the phases sumo-rl commented out does not give RESCO's "
            f"{net_name} (SHA-256 {want[:12]}...); this sumo-rl is not the version signalwise pins")
    target.mkdir(parents=True, exist_ok=True)
    _write_whole(target / f"{net_name}.net.xml", restored)
    _write_whole(restored_cfg, _config_for(sumocfg, target / f"{net_name}.net.xml"))
    return restored_cfg


def _config_for(sumocfg: Path, net_file: Path) -> bytes:
    """sumo-rl's sumocfg with the restored network and its own files by absolute path."""
    root = ET.parse(sumocfg).getroot()
    for el in root.iter():
        value = el.get("value")
        if el.tag == "net-file":
            el.set("value", str(net_file))
        elif el.tag in ("route-files", "additional-files") and value:
            el.set("value", ",".join(str((sumocfg.parent / v.strip()).resolve()) for v in value.split(",")))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _write_whole(path: Path, data: bytes) -> None:
    """Write by renaming a finished file into place: parallel workers never read half a network."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
