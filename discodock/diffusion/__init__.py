"""The diffusion over ligand poses: forward noising with score targets, the loss, and the reverse sampler."""

from discodock.diffusion.loss import LOSS_TERMS, LossWeights, score_matching_loss
from discodock.diffusion.noising import NoiseSample, noise_batch, sample_training_pockets
from discodock.diffusion.sampler import (
    DIFFDOCK_S_TEMPERATURES,
    DISCO_DIFFDOCK_S_TEMPERATURES,
    ComponentTemperature,
    LatentSource,
    SamplingTemperatures,
    ScoreFunction,
    oracle_latents,
    prior_input_batch,
    prior_latents,
    sample_poses,
    time_grid,
)

__all__ = [
    "DIFFDOCK_S_TEMPERATURES",
    "DISCO_DIFFDOCK_S_TEMPERATURES",
    "LOSS_TERMS",
    "ComponentTemperature",
    "LatentSource",
    "LossWeights",
    "NoiseSample",
    "SamplingTemperatures",
    "ScoreFunction",
    "noise_batch",
    "oracle_latents",
    "prior_input_batch",
    "prior_latents",
    "sample_poses",
    "sample_training_pockets",
    "score_matching_loss",
    "time_grid",
]
