"""Training of the score stage and the prior stage: configs, EMA, checkpoints and the loop."""

from discodock.training.config import ExperimentConfig, TrainConfig, ValidationConfig, load_experiment
from discodock.training.trainer import TrainingSummary, train

__all__ = [
    "ExperimentConfig",
    "TrainConfig",
    "TrainingSummary",
    "ValidationConfig",
    "load_experiment",
    "train",
]
