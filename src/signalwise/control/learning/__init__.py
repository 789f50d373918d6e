"""Learning controllers: tabular Q-learning behind the safety shield.

Importing this package registers the `ql` controller (`ql:PATH` runs a
trained model) and `ql-train` (used by `signalwise train`).
"""

from .agent import Hyper, PrioritizedReplay, QLearner
from .controller import QLController, TrainingSession, make_ql, make_ql_train
from .features import StateFeatures
from .qtable import Model, ModelError, QTable, StateEncoding, load_model, save_model

__all__ = ["Hyper", "Model", "ModelError", "PrioritizedReplay", "QLController", "QLearner", "QTable",
           "StateEncoding", "StateFeatures", "TrainingSession", "load_model", "make_ql", "make_ql_train",
           "save_model"]
