"""Runs published before an upgrade that added a condition setting (`timing.protected_yellow`) and runs after it:
the ones whose signals behaved differently are never paired, and the comparison says why a run has no baseline;
the ones that behaved alike still pair. Real SUMO runs, published into a real store, read through the API."""

from __future__ import annotations

import shutil

import pytest
import yaml
from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.records import publish_runs, simulation_id
from signalwise.runtime.run import execute_run
from signalwise.store.settings import Settings


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    """fixed and actuated, seed 1, 120 s on `single`, under the safety and the benchmark timing profiles."""
    tmp = tmp_path_factory.mktemp("pairing")
    dirs = {}
    for timing in ("safety", "benchmark"):
        for controller in ("fixed", "actuated"):
            d = tmp / f"{timing}-{controller}-s1"
            execute_run(RunConfig(scenario="single", controller=controller, seed=1, duration_s=120, timing=timing,
                                  out_dir=tmp), d)
            dirs[(timing, controller)] = d
    return dirs


def _as_old_release(run_dir, into):
    """The run directory as a release before `timing.protected_yellow` wrote it: its configuration without the key."""
    shutil.copytree(run_dir, into)
    config = yaml.safe_load((into / "config.yaml").read_text())
    assert "protected_yellow" in config["timing"]
    del config["timing"]["protected_yellow"]
    (into / "config.yaml").write_text(yaml.safe_dump(config))
    return into


def _comparisons(db: str) -> dict:
    with TestClient(create_app(Settings(database_url=db, cache_ttl_s=0))) as client:  # loopback: no key
        r = client.get("/api/v1/analytics/comparison/baseline-vs-ai", params={"scenario": "single"})
    assert r.status_code == 200, r.text
    return {e["conditions"]["timing"]["profile"]: e for e in r.json()["items"]}


def test_a_run_after_the_upgrade_says_why_a_stored_baseline_is_not_its_own(run_dirs, tmp_path):
    db = f"sqlite:///{tmp_path / 'store.db'}"
    old_safety = _as_old_release(run_dirs[("safety", "fixed")], tmp_path / "old-safety-fixed-s1")
    old_benchmark = _as_old_release(run_dirs[("benchmark", "fixed")], tmp_path / "old-benchmark-fixed-s1")
    publish_runs([old_safety, old_benchmark], db)  # the baselines stored before the upgrade
    publish_runs([run_dirs[("safety", "actuated")], run_dirs[("benchmark", "actuated")]], db)
    entries = _comparisons(db)

    # safety: the old shield showed no yellow to a protected arrow going permitted, the new one does: not paired,
    # and the answer names the setting and what to do
    safety = entries["safety"]
    assert safety["seeds"] == [] and safety["unpaired_seeds"] == [1] and safety["metrics"] == []
    assert safety["unpaired_reason"] == (
        "no fixed run of single with the same conditions for seed(s) 1; 1 stored fixed run(s) differ only in "
        "timing.protected_yellow, added by a newer release than the one that ran them (they read "
        "timing.protected_yellow as false): run the baseline again")

    # benchmark: RESCO's yellow, which the old release showed too (protected_yellow false): still paired
    bench = entries["benchmark"]
    assert bench["seeds"] == [1] and bench["unpaired_seeds"] == [] and bench["unpaired_reason"] is None
    assert set(bench["simulation_ids"]) == {simulation_id(old_benchmark),
                                            simulation_id(run_dirs[("benchmark", "actuated")])}

    # the baseline run again after the upgrade: paired, nothing to say
    publish_runs([run_dirs[("safety", "fixed")]], db)
    safety = _comparisons(db)["safety"]
    assert safety["seeds"] == [1] and safety["unpaired_reason"] is None


def test_a_baseline_under_other_conditions_is_named_not_blamed_on_an_upgrade(run_dirs, tmp_path):
    db = f"sqlite:///{tmp_path / 'store.db'}"
    publish_runs([run_dirs[("benchmark", "fixed")], run_dirs[("safety", "actuated")]], db)
    (entry,) = _comparisons(db).values()
    reason = entry["unpaired_reason"]
    assert reason.startswith("no fixed run of single with the same conditions for seed(s) 1; the closest, 1 stored "
                             "fixed run(s), differ in "), reason
    assert "timing.profile" in reason and "timing.protected_yellow" in reason and "again" not in reason
