"""The σ-normalised denoising score-matching loss of DiffDock (method.md §1.5).

With predictions ``ŝ`` (already scaled by the normalisers, ``scale_by_sigma``) and targets ``s``:

.. math::

    L_{tr}  &= \\operatorname{mean}_{b, xyz}\\; σ_{tr,b}^2 (ŝ_{tr} − s_{tr})^2, \\\\
    L_{rot} &= \\operatorname{mean}_{b, xyz}\\; \\bigl((ŝ_{rot} − s_{rot}) / N_{rot}(σ_{rot,b})\\bigr)^2, \\\\
    L_{tor} &= \\operatorname{mean}_{k}\\; (ŝ_{tor} − s_{tor})^2 / E[s^2](σ_{tor}),

the torsion mean pooled over **all rotatable bonds of the batch** (0 if there are none), and
``L = w_tr L_tr + w_rot L_rot + w_tor L_tor`` with ``w = 0.33`` each. Each term is scaled so that a
zero prediction costs about 1 per component, whatever the noise level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from discodock.diffusion.noising import NoiseSample
from discodock.model.score_model import ScoreOutput


@dataclass(frozen=True)
class LossWeights:
    """Weights of the translation, rotation and torsion terms (0.33 each in the released configs)."""

    tr: float = 0.33
    rot: float = 0.33
    tor: float = 0.33


def score_matching_loss(
    prediction: ScoreOutput, noise: NoiseSample, weights: LossWeights | None = None
) -> dict[str, torch.Tensor]:
    """The weighted loss and its components for one batch.

    Parameters
    ----------
    prediction
        Network scores ``tr [B, 3]``, ``rot [B, 3]``, ``tor [T]``.
    noise
        Targets and normalisers of the same batch (:func:`~discodock.diffusion.noising.noise_batch`).
    weights
        Component weights (default :class:`LossWeights`).

    Returns
    -------
    dict[str, torch.Tensor]
        Scalars ``"loss"`` (the weighted sum), ``"tr"``, ``"rot"``, ``"tor"``.
    """
    weights = weights or LossWeights()
    tr = ((prediction.tr - noise.tr_score) * noise.tr_sigma[:, None]).square().mean()
    rot = ((prediction.rot - noise.rot_score) / noise.rot_score_norm[:, None]).square().mean()
    tor_terms = (prediction.tor - noise.tor_score).square() / noise.tor_score_second_moment
    tor = tor_terms.sum() / max(tor_terms.numel(), 1)
    loss = weights.tr * tr + weights.rot * rot + weights.tor * tor
    return {"loss": loss, "tr": tr, "rot": rot, "tor": tor}
