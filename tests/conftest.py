"""Fixtures shared by the store, API and runtime tests."""

import os
import sys
from pathlib import Path

import pytest

# a pytest-xdist worker (`make test`) has COLUMNS=80 in its environment, where a plain pytest has none; the commands the
# tests run lay their tables out in COLUMNS when it is set (consoles.table_console), so it is removed: every test
# sees what a script piping a command sees, whichever way the suite runs
os.environ.pop("COLUMNS", None)

# `support.*`: helpers only tests and benchmarks use, kept out of the installed package
sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import HealthCheck, settings  # noqa: E402
from support.databases import DATABASE_KINDS, database_kind, isolated_database  # noqa: E402

# the suite runs on shared 2-core machines whose load comes and goes: a property test is judged on what it finds,
# never on how fast its inputs were drawn or how long one example took (the benchmarks time things)
settings.register_profile("shared_machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared_machine")


@pytest.fixture(params=DATABASE_KINDS)
def db_url(request, tmp_path):
    """An empty database URL: SQLite always, PostgreSQL when 127.0.0.1:5432 is reachable."""
    with isolated_database(database_kind(request), tmp_path) as url:
        yield url


#: the files that take longest, longest first (the summed time of each file's tests, from runs of the suite on the
#: 2-core machine): `make test` runs them first, in this order (--no-loadscope-reorder), so that no worker picks up
#: a long file last and keeps the whole suite waiting for it (ordered by directory only, the atspm runs started
#: last and ran alone for over a minute). The first 40 are ordered by their time in `make test` (its slow tests
#: left out); the files whose time is mostly slow tests follow, for `make test-all` (Ray's first of those: most
#: of it is Ray's start-up). A file not named here follows them, directory by directory in LONGEST_FIRST's order.
#: Re-measure when a file grows: `pytest -p no:cacheprovider --durations=0 -q -m "not slow" tests/DIR` and sum
#: the setup and call times per file.
LONGEST_FILES_FIRST = (
    "runtime/test_live_runtime.py",
    "atspm/test_runs.py",
    "dashboard/test_live_dashboard.py",
    "runtime/test_user_networks.py",
    "runtime/test_run.py",
    "vision/test_cli_streams.py",
    "training/test_refusals.py",
    "envs/test_env.py",
    "runtime/test_mqtt_tls.py",
    "runtime/test_live_unhappy.py",
    "vision/test_rules.py",
    "dashboard/test_dashboard_accessibility.py",
    "store/test_retention_by_storage_and_age.py",
    "runtime/test_input_conflicts.py",
    "api/test_api_ingest_analytics.py",
    "runtime/test_teleports.py",
    "control/test_user_controllers.py",
    "vision/test_stream_ops.py",
    "runtime/test_resco_bench_fresh_and_table.py",
    "dashboard/test_live_operator.py",
    "runtime/test_compare_refusals.py",
    "dashboard/test_stored_dashboard.py",
    "store/test_upgrade_path.py",
    "api/test_streams.py",
    "api/test_auth.py",
    "runtime/test_publish.py",
    "api/test_atspm_run_detectors.py",
    "store/test_live_writer.py",
    "store/test_store_rollups.py",
    "runtime/test_demo.py",
    "runtime/test_warmup.py",
    "training/test_training.py",
    "vision/test_grade_files.py",
    "api/test_live_timing_changes.py",
    "runtime/test_feeds.py",
    "store/test_detector_configs.py",
    "runtime/test_live_refusals.py",
    "api/test_ml_registry.py",
    "store/test_retention.py",
    "runtime/test_resco_bench_sweep.py",
    "training/test_ray.py",
    "api/test_ml_jobs.py",
    "training/test_policy_search.py",
    "sim/test_camera_render.py",
    "store/test_store_migrations.py",
    "runtime/test_live_command.py",
    "runtime/test_mqtt_outage_alert.py",
    "runtime/test_user_controllers_live.py",
    "dashboard/test_live_restart.py",
    "api/test_stream_expiry.py",
    "api/test_rate_limits.py",
    "training/test_tabular_own_network.py",
    "training/test_demand_scale.py",
    "sim/test_replay.py",
    "training/test_resume.py",
    "sim/test_builtin_scenarios.py",
    "store/test_store_ingest.py",
    "test_cli_in_process.py",
    "training/test_train_config.py",
    "training/test_per_signal.py",
    "sim/test_signal_model.py",
    "api/test_api_fuzz.py",
    "envs/test_env_docs.py",
)

#: then the other files, by directory: the directories whose remaining files take longest first
LONGEST_FIRST = ("runtime", "store", "api", "vision", "training", "dashboard", "control", "sim", "atspm", "envs")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent

    def rank(item) -> tuple[int, int]:
        path = Path(str(item.path)).relative_to(here)
        if path.as_posix() in LONGEST_FILES_FIRST:
            return 0, LONGEST_FILES_FIRST.index(path.as_posix())
        top = path.parts[0] if len(path.parts) > 1 else None
        return 1, LONGEST_FIRST.index(top) if top in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file keeps its tests' order, and each directory the order of its files
