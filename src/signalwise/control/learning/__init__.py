"""Learning controllers: tabular Q-learning behind the safety shield.

Importing this package registers the `ql` controller (`ql:PATH` runs a
trained model, `ql:@active` / `ql:@v3` one from the model registry, which
the caller resolves: see `deployed.py`) and `ql-train`, the label of
`signalwise train`'s runs (their learning controllers come from a
`TrainingSession`, handed to the run loop by `signalwise.training`). Only
`core`, numpy and the standard library here: training and evaluation live in
`signalwise.training`, the registry in `signalwise.store.model_registry`.
"""

from .agent import Hyper, PrioritizedReplay, QLearner
from .controller import (
    ModelUnavailable,
    QLController,
    TrainingSession,
    controller_from_model,
    make_ql,
    make_ql_train,
)
from .deployed import registry_model_path
from .features import StateFeatures
from .qtable import Model, ModelError, QTable, StateEncoding, load_model, save_model

__all__ = ["Hyper", "Model", "ModelError", "ModelUnavailable", "PrioritizedReplay", "QLController", "QLearner",
           "QTable", "StateEncoding", "StateFeatures", "TrainingSession", "controller_from_model", "load_model",
           "make_ql", "make_ql_train", "registry_model_path", "save_model"]
