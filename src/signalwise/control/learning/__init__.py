"""Learning controllers: tabular Q-learning behind the safety shield.

Importing this package registers the `ql` controller (`ql:PATH` runs a
trained model, `ql:@active` / `ql:@v3` one from the model registry) and
`ql-train`, the label of `signalwise train`'s runs (their learning
controllers come from a `TrainingSession`, handed to the run loop by
`signalwise.training`). Only `core`, numpy and the standard library here:
training, evaluation and the registry's workflows live in `signalwise.training`.
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
from .deployed import (
    DEFAULT_REGISTRY_ROOT,
    active_versions,
    deployed_model_path,
    read_registry,
    version_entry,
)
from .features import StateFeatures
from .qtable import Model, ModelError, QTable, StateEncoding, load_model, save_model

__all__ = ["DEFAULT_REGISTRY_ROOT", "Hyper", "Model", "ModelError", "ModelUnavailable", "PrioritizedReplay",
           "QLController", "QLearner", "QTable", "StateEncoding", "StateFeatures", "TrainingSession",
           "active_versions", "controller_from_model", "deployed_model_path", "load_model", "make_ql",
           "make_ql_train", "read_registry", "save_model", "version_entry"]
