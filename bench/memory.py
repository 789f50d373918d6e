"""Peak memory of `signalwise run` against a plain libsumo process stepping the same network.

    .venv/bin/python bench/memory.py [--network resco:grid4x4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import PY, peak_rss_mb
from overhead import PLAIN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--network", default="resco:grid4x4")
    ap.add_argument("--controller", default="max-pressure")
    args = ap.parse_args()
    plain = peak_rss_mb([PY, "-c", PLAIN, args.network])
    signalwise = str(Path(sys.executable).with_name("signalwise"))
    with tempfile.TemporaryDirectory() as d:
        ours = peak_rss_mb([signalwise, "run", "--scenario", args.network, "--controller", args.controller,
                            "--run-dir", str(Path(d) / "r")])
    res = {"network": args.network, "plain_libsumo_peak_rss_mb": round(plain, 1),
           "signalwise_run_peak_rss_mb": round(ours, 1), "ratio": round(ours / plain, 2), "target_ratio": 2.0}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
