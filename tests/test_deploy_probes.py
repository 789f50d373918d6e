"""The containers' health checks probe liveness, not the dependencies: a PostgreSQL or Redis outage that made
`/health` answer 503 got the runtime restarted by Docker, which is a new live run from t=0."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_the_image_and_the_compose_services_probe_liveness():
    dockerfile = (ROOT / "Dockerfile").read_text()
    check = dockerfile[dockerfile.index("HEALTHCHECK"):].split("\n#", 1)[0]
    assert re.findall(r"http://127\.0\.0\.1:\d+(/[\w/]*)", check) == ["/health/live"], check
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name in ("runtime", "api"):
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert re.findall(r"http://127\.0\.0\.1:\d+(/[\w/]*)", probe) == ["/health/live"], (name, probe)
