"""The deployment files: compose validated by docker when it is there; their structure always."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_services_have_health_checks_and_take_config_from_the_environment_only():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"runtime", "api", "postgres", "redis", "prometheus"} <= set(services)
    for name, svc in services.items():
        assert "healthcheck" in svc, name
        assert not svc.get("env_file"), name
    for name in ("runtime", "api"):
        env = services[name]["environment"]
        assert all(k.startswith("SIGNALWISE_") for k in env), env
        assert "${SIGNALWISE_JWT_SECRET" in env["SIGNALWISE_JWT_SECRET"]  # from the environment, never written here
        assert "redis://:${REDIS_PASSWORD" in env["SIGNALWISE_REDIS_URL"]  # Redis asks for a password
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "--requirepass" in services["redis"]["command"]
    assert (ROOT / "deploy" / "prometheus.yml").is_file()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in dockerfile and "USER signalwise" in dockerfile


def test_docker_compose_config_accepts_the_file():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"docker compose is not available here ({(probe.stderr or probe.stdout).strip()[:80]})")
    p = subprocess.run([docker, "compose", "-f", str(ROOT / "compose.yaml"), "config", "--quiet"], capture_output=True,
                       text=True, timeout=60, cwd=ROOT,
                       env={"POSTGRES_PASSWORD": "x", "SIGNALWISE_JWT_SECRET": "y" * 48, "REDIS_PASSWORD": "r",
                            "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
