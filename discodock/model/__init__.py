"""The networks of DisCo-DiffDock: score model, latent encoder and autoregressive token prior."""

from discodock.model.config import (
    EncoderConfig,
    ModelConfig,
    PriorConfig,
    ScoreModelConfig,
    dataclass_from_dict,
    load_config,
)
from discodock.model.latent_encoder import LatentEncoder
from discodock.model.latents import LatentAssignment, TokenLogits
from discodock.model.prior import AutoregressivePrior
from discodock.model.score_model import ScoreModel, ScoreOutput

__all__ = [
    "AutoregressivePrior",
    "EncoderConfig",
    "LatentAssignment",
    "LatentEncoder",
    "ModelConfig",
    "PriorConfig",
    "ScoreModel",
    "ScoreModelConfig",
    "ScoreOutput",
    "TokenLogits",
    "dataclass_from_dict",
    "load_config",
]
