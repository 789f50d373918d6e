"""Training, evaluation and selection of learning agents, and the model registry's workflows.

Application code around the learning controllers of `signalwise.control.learning`:
it starts SUMO through the run loop (`signalwise.runtime`), so it lives
here and control stays free of the runtime. A training episode hands its
learning controllers to the loop as a controller factory
(`execute_run(..., controllers=...)`); nothing is registered globally.

- `train.py`: episodes in rounds, tables merged by visits, checkpoints
- `executors.py`: where a round's episodes run (local processes or Ray)
- `selection.py`: `--guide-visits auto`, candidates validated on their own seeds
- `evaluate.py`: held-out seeds against a baseline, recorded in the model
- `registry.py`: registering a loadable model, checking a version fits intersections (the
  registry itself is the database's: `signalwise.store.model_registry`)
- `jobs.py`: training jobs started through the API, run in a worker process
- `commands.py`: `signalwise train`, `evaluate`, `models`

`registry.py` and `jobs.py` are not imported here: they load the store
(SQLAlchemy), which the episode worker processes do not need.
The functions `train.train` and `evaluate.evaluate` are not re-exported
here: a package attribute named like its module would hide the module
(`import signalwise.training.train as t` would give the function).
"""

from signalwise._lazy import lazy_names

#: public name -> the module that defines it, imported on first use (PEP 562): `signalwise models list` or a
#: refused `train` loads none of evaluation's and training's modules (numpy, the learning controllers: 0.27 s
#: of each such command)
_HOMES = {
    **dict.fromkeys(("EvaluateResult", "check_fits"), ".evaluate"),
    **dict.fromkeys(("LOCAL_RAY", "EpisodeExecutor", "ExecutorError", "ProcessExecutor", "RayExecutor",
                     "make_executor", "require_ray"), ".executors"),
    **dict.fromkeys(("AUTO_CANDIDATES", "GUIDE_ONLY", "candidate_dir", "train_selected", "validate",
                     "validation_seeds"), ".selection"),
    **dict.fromkeys(("EpisodeRecord", "TrainConfig", "TrainingError", "check_heldout", "heldout_seeds",
                     "merge_tables", "run_episode", "training_seed", "used_seeds"), ".train"),
}

__getattr__, __dir__ = lazy_names(__name__, _HOMES)

__all__ = ["AUTO_CANDIDATES", "GUIDE_ONLY", "LOCAL_RAY", "EpisodeExecutor", "EpisodeRecord", "EvaluateResult",
           "ExecutorError", "ProcessExecutor", "RayExecutor", "TrainConfig", "TrainingError", "candidate_dir",
           "check_fits", "check_heldout", "heldout_seeds", "make_executor", "merge_tables", "require_ray",
           "run_episode", "train_selected", "training_seed", "used_seeds", "validate", "validation_seeds"]
