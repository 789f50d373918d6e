"""What `signalwise models add` and `signalwise train --resume` refuse, with one `error:` line and exit 2, rather
than registering a model that cannot run or resuming a training other than the one asked for. Real SUMO runs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli import in_a_process, signalwise
from support.cli_checks import refused
from support.models import damaged_copy

from signalwise.control.learning.shipped import shipped_model_path


def cli(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """In this process: a registry command, or a training refused before anything runs."""
    return signalwise(*args, env=env)


def _registry_env(tmp_path: Path) -> dict:
    return {"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'reg.db'}",
            "SIGNALWISE_MODEL_CACHE": str(tmp_path / "cache"),
            "SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "no-directory-registry")}


BROKEN = {
    "a weight that is no number": (lambda p: p["weights"].__setitem__(2, "x"), "could not convert"),
    "too few weights": (lambda p: p.__setitem__("weights", p["weights"][:3]), "finite weights"),
    "a NaN weight": (lambda p: p["weights"].__setitem__(2, float("nan")), "finite weights"),
    "an unknown feature": (lambda p: p["features"].__setitem__(1, "no_such_feature"), "no_such_feature"),
    "a signal's own weights too short": (lambda p: p.__setitem__("signal_weights", {"C": [1.0]}), "signal C"),
    "an unknown measure": (lambda p: p.__setitem__("measure", "bogus"), "measure"),
    "a negative decision period": (lambda p: p.__setitem__("period_s", -1), "period_s"),
    "no policy at all": (None, "without its policy"),
}


@pytest.mark.slow
def test_models_add_refuses_a_phase_score_model_that_cannot_run(tmp_path):
    """Every case of BROKEN, each on its own copy of the model, into one registry (its database made once)."""
    env = _registry_env(tmp_path)
    for i, (case, (change, words)) in enumerate(BROKEN.items()):
        model = tmp_path / f"model-{i}"
        shutil.copytree(shipped_model_path("single"), model)
        meta = json.loads((model / "meta.json").read_text())
        if change is None:
            del meta["policy"]
        else:
            change(meta["policy"])
        (model / "meta.json").write_text(json.dumps(meta))
        r = cli("models", "add", str(model), env=env)
        assert r.returncode == 2 and words in r.stderr, (case, r.stdout, r.stderr)  # names the case that failed
        refused(r, str(model), words)
        assert _registered(tmp_path) == [], case  # `models list` says so too: tested once, below
        # the same directory runs nowhere either: the refusal is what a run would say
        ran = in_a_process("run", "-s", "single", "-c", f"ql:{model}", "--duration", "10",
                           "--out", str(tmp_path / "runs"))  # the policy is checked against the network: SUMO
        assert ran.returncode == 2 and "error:" in ran.stderr, (case, ran.stderr)


def _registered(tmp_path: Path) -> list[str]:
    """The versions in the registry of `_registry_env`, read in this process (a `signalwise` process costs a
    second of imports; the refusal test asks eight times)."""
    from signalwise.store.model_registry import open_registry
    from signalwise.store.settings import Settings

    env = _registry_env(tmp_path)
    settings = Settings(database_url=env["SIGNALWISE_DATABASE_URL"], model_cache=env["SIGNALWISE_MODEL_CACHE"],
                        model_registry=env["SIGNALWISE_MODEL_REGISTRY"])
    return [v.version for v in open_registry(settings).versions()]


def test_models_list_says_when_a_refused_model_left_the_registry_empty(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(shipped_model_path("single"), model)
    (model / "meta.json").write_text("{}")
    env = _registry_env(tmp_path)
    assert cli("models", "add", str(model), env=env).returncode == 2
    listed = cli("models", "list", env=env)
    assert listed.returncode == 0 and "no model registered" in listed.stdout


@pytest.mark.parametrize("scenario", ["single", "corridor", "grid"])
def test_models_add_still_registers_the_shipped_models(tmp_path, scenario):
    r = cli("models", "add", str(shipped_model_path(scenario)), env=_registry_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("registered v1")
    assert _registered(tmp_path) == ["v1"]


def test_resume_with_nothing_to_resume_is_refused_also_with_guide_visits_auto(tmp_path):
    out = tmp_path / "empty"
    refused(cli("train", "-s", "single", "--episodes", "1", "--duration", "30", "--out", str(out), "--resume"),
            "nothing to resume")
    assert not (out / "model").exists() and not (out / "guide-10").exists()  # nothing was trained from scratch


SHORT = ["-s", "single", "--guide-visits", "30", "--batch", "1", "--workers", "1", "--duration", "60"]


@pytest.fixture(scope="module")
def one_episode(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "t"
    # --gamma 0.5 (not the default): the resumes below that leave it out show it goes on
    r = in_a_process("train", *SHORT, "--gamma", "0.5", "--episodes", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize(("options", "words"), [
    (["--duration", "120"], "another duration"),
    (["--gamma", "0.7"], "another --gamma"),
    (["--epsilon-start", "0.9"], "another --epsilon-start"),
    (["--actions", "phases", "--state", "lane-groups"], "--actions/--state"),
])
def test_resume_refuses_options_other_than_the_run_it_continues(one_episode, tmp_path, options, words):
    out = tmp_path / "t"
    shutil.copytree(one_episode, out)
    state = (out / "train_state.json").read_text()
    more = [*SHORT, "--episodes", "2", "--out", str(out), "--resume"]
    for i, opt in enumerate(options[::2]):  # the option given last wins: SHORT's value is overridden
        more += [opt, options[2 * i + 1]]
    refused(cli("train", *more), words)
    assert (out / "train_state.json").read_text() == state  # nothing was trained


@pytest.fixture(scope="module")
def resumed_to_two(one_episode, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy of `one_episode` resumed to 2 episodes with the same options (and more workers, which a resume does
    not compare): the command's result, and the training it leaves (read by the tests below, never changed)."""
    out = tmp_path_factory.mktemp("resumed") / "t"
    shutil.copytree(one_episode, out)
    r = in_a_process("train", *SHORT, "--gamma", "0.5", "--episodes", "2", "--workers", "2", "--out", str(out),
                     "--resume")
    return out, r


def test_resume_with_the_same_options_goes_on(resumed_to_two):
    out, r = resumed_to_two
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "train_state.json").read_text())["episodes_done"] == 2


def test_resume_with_fewer_episodes_than_done_is_refused(resumed_to_two, tmp_path):
    done, r = resumed_to_two  # 2 episodes done
    assert r.returncode == 0, r.stderr
    out = tmp_path / "t"
    shutil.copytree(done, out)
    state = (out / "train_state.json").read_text()
    refused(cli("train", *SHORT, "--episodes", "1", "--out", str(out), "--resume"), "fewer than the 2")
    assert (out / "train_state.json").read_text() == state


def test_each_agent_refuses_the_other_agents_options_it_would_ignore(tmp_path):
    out = tmp_path / "t"
    refused(cli("train", "--agent", "phase-score", "--episodes", "3", "--gamma", "0.5", "--out", str(out)),
            "--episodes, --gamma: for --agent tabular")
    refused(cli("train", "--agent", "tabular", "--generations", "3", "--measure", "density", "--out", str(out)),
            "--generations, --measure: for --agent phase-score")
    refused(cli("train", "--episodes", "2", "--popsize", "4", "--out", str(out)),
            "--popsize: for --agent phase-score (--episodes without --agent chose tabular)")
    assert not out.exists()


@pytest.mark.parametrize("agent", [["--agent", "tabular", "--episodes", "1"],
                                   ["--agent", "phase-score", "--generations", "1", "--popsize", "2"]])
@pytest.mark.parametrize("duration", ["0", "-5", "nan"])
def test_train_refuses_a_duration_before_making_its_directory(tmp_path, agent, duration):
    out = tmp_path / "t"
    refused(cli("train", "-s", "single", *agent, "--duration", duration, "--out", str(out)), "--duration")
    assert not out.exists()


def test_resume_takes_the_threshold_batch_and_duration_it_was_started_with_where_left_out(one_episode, tmp_path):
    """--guide-visits (default auto), --batch (default 2) and --duration left out were refused as 'another' value
    than the run's, though a left-out option is documented to come from the run being resumed; --gamma (0.5 in
    `one_episode`) left out goes on too."""
    out = tmp_path / "t"
    shutil.copytree(one_episode, out)
    r = in_a_process("train", "-s", "single", "--workers", "1", "--episodes", "2", "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    state = json.loads((out / "train_state.json").read_text())
    assert state["episodes_done"] == 2
    assert (state["config"]["batch"], state["config"]["duration_s"], state["config"]["hyper"]["guide_visits"]) == (
        1, 60.0, 30)
    assert state["config"]["hyper"]["gamma"] == 0.5  # no --gamma: the run's 0.5 goes on, not the default
    assert not (out / "guide-10").exists()  # no second training started beside the first


SINGLE = Path(__file__).resolve().parents[2] / "src" / "signalwise" / "sim" / "scenarios" / "single"


@pytest.mark.parametrize("files", [["--sumocfg", str(SINGLE / "scenario.sumocfg")],
                                   ["--net", str(SINGLE / "net.net.xml"), "--routes", str(SINGLE / "demand.rou.xml")]])
def test_train_refuses_a_scenario_beside_network_files_as_run_and_evaluate_do(tmp_path, files):
    out = tmp_path / "t"
    refused(cli("train", "-s", "corridor", *files, "--generations", "1", "--popsize", "2", "--duration", "30",
                "--out", str(out)), "--scenario is not used with --sumocfg or --net")
    assert not out.exists()


def test_resume_of_an_auto_training_with_one_threshold_says_which_to_give(one_episode, tmp_path):
    out = tmp_path / "t"
    # what a --guide-visits auto training holds: a training per candidate threshold in out/guide-N (here the
    # training of SHORT for 1 episode, as `one_episode` holds it)
    shutil.copytree(one_episode, out / "guide-30")
    refused(cli("train", *SHORT, "--episodes", "2", "--out", str(out), "--resume"), "--guide-visits auto")
    assert not (out / "model").exists()


DAMAGED = {  # meta.json edits a hand or a half-copied file makes, each refused in one line, never a traceback
    "meta.json a list": lambda meta: [],
    "policy null": lambda meta: {**meta, "policy": None},
    "intersections a list": lambda meta: {**meta, "agent": "tabular", "intersections": [], "tables": {}},
    "training.episodes a word": lambda meta: {**meta, "training": {**meta["training"], "episodes": "x"}},
}


@pytest.mark.parametrize("case", list(DAMAGED))
@pytest.mark.slow
def test_a_damaged_model_is_refused_by_run_and_models_add_in_one_line(tmp_path, case):
    model = damaged_copy(tmp_path / "model", DAMAGED[case])
    refused(cli("models", "add", str(model), env=_registry_env(tmp_path)), str(model))
    if case != "training.episodes a word":  # the run reads no training record
        refused(in_a_process("run", "-s", "single", "-c", f"ql:{model}", "--duration", "10",
                             "--out", str(tmp_path / "runs")))


@pytest.mark.slow
def test_a_resumed_training_counts_its_earlier_session_and_one_with_nothing_left_keeps_its_evaluations(
        one_episode, resumed_to_two, tmp_path):
    """training.wall_s summed each episode's time inside its worker, so a resumed run reported less than its first
    session alone; and a resume with nothing left to train copied the checkpoint over the model, dropping the
    evaluations recorded in it since."""
    out, r = resumed_to_two
    assert r.returncode == 0, r.stderr

    def meta(d):
        return json.loads((d / "model" / "meta.json").read_text())

    first_s, both_s = meta(one_episode)["training"]["wall_s"], meta(out)["training"]["wall_s"]
    assert both_s > first_s > 0  # the second session adds to the first
    done = tmp_path / "t"
    shutil.copytree(out, done)
    ev = in_a_process("evaluate", "--model", str(done / "model"), "--seeds", "1", "--duration", "60",
                      "--workers", "1", "--out", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr
    assert len(meta(done)["evaluations"]) == 1
    again = in_a_process("train", *SHORT, "--episodes", "2", "--out", str(done), "--resume")  # nothing to train
    assert again.returncode == 0, again.stderr
    assert len(meta(done)["evaluations"]) == 1 and meta(done)["training"]["wall_s"] == both_s


@pytest.mark.parametrize("agent", [("--generations", "1", "--popsize", "2"), ("--agent", "tabular", "--episodes", "1")],
                         ids=["search", "tabular"])
@pytest.mark.slow
def test_training_on_a_window_in_which_no_vehicle_is_due_is_refused(tmp_path, agent):
    """Half a second lets no vehicle in: a search validated both sides at 0.0 s and the tie went to the searched
    weights; a run's delay over no vehicle is null (not 0), so the first episodes are refused, by either agent."""
    r = in_a_process("train", "-s", "single", "--duration", "0.5", *agent, "--validation-seeds", "1",
                     "--workers", "1", "--out", str(tmp_path / "t"))
    refused(r, "no vehicle was due to enter the network in an episode (--duration 0.5 s: give a longer one)")
    assert not (tmp_path / "t" / "model").exists()


@pytest.mark.slow
def test_resuming_an_auto_training_validates_on_its_own_seed_and_window(tmp_path):
    """--seed and --duration left out were taken per candidate, but the validation ran on seed 1's seeds over the
    scenario's whole window."""
    out = tmp_path / "t"
    start = ["-s", "single", "--agent", "tabular", "--batch", "1", "--workers", "1", "--validation-seeds", "1"]
    first = in_a_process("train", *start, "--episodes", "1", "--duration", "30", "--seed", "5", "--out", str(out))
    assert first.returncode == 0, first.stderr
    seeds = json.loads((out / "model" / "meta.json").read_text())["selection"]["seeds"]
    again = in_a_process("train", *start, "--episodes", "2", "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    meta = json.loads((out / "model" / "meta.json").read_text())
    assert meta["selection"]["seeds"] == seeds and meta["training"]["duration_s"] == 30.0
    assert meta["training"]["seed"] == 5 and meta["training"]["episodes"] == 2


def test_resume_alone_on_a_phase_score_searchs_out_goes_on_with_that_search(tmp_path):
    """--resume alone picks the tabular agent, which on a phase-score search's --out said "nothing to resume"; a
    search kept no state, so none was resumed."""
    from signalwise.training.policy_search import CONFIG_FILE, SearchConfig, search

    out = tmp_path / "searched"
    search(SearchConfig(scenario="single", generations=1, popsize=2, validation_seeds=1, seed=1, workers=1,
                        duration_s=60, out=out))
    # the search's own settings are compared (the command's defaults here): the phase-score agent read it
    refused(cli("train", "--resume", "--out", str(out)), "--resume with another popsize (8) than the search being "
            "resumed (2)")
    refused(cli("train", "--agent", "tabular", "--resume", "--out", str(out)), "holds a phase-score search")
    (out / CONFIG_FILE).unlink()  # a search that kept not the settings a resume needs
    refused(cli("train", "--resume", "--out", str(out)), "holds a search without the settings a resume needs",
            "--start OUT/model")
