"""The σ-normalised denoising score-matching loss of DiffDock (method.md §1.5).

With predictions ``ŝ`` (already scaled by the normalisers, ``scale_by_sigma``) and targets ``s``:

.. math::

    L_{tr}  &= \\operatorname{mean}_{b, xyz}\\; σ_{tr,b}^2 (ŝ_{tr} − s_{tr})^2, \\\\
    L_{rot} &= \\operatorname{mean}_{b, xyz}\\; \\bigl((ŝ_{rot} − s_{rot}) / N_{rot}(σ_{rot,b})\\bigr)^2, \\\\
    L_{tor} &= \\operatorname{mean}_{k}\\; (ŝ_{tor} − s_{tor})^2 / E[s^2](σ_{tor}),

the torsion mean pooled over **all rotatable bonds of the batch** (0 if there are none). A fourth, dense
term supervises the network's centred per-atom displacements ``f̃`` (:attr:`ScoreOutput.displacement`) with the
centroid-relative displacement ``d`` of every atom back to its clean position
(:attr:`~discodock.diffusion.noising.NoiseSample.displacement`):

.. math::

    L_{disp} = \\operatorname{mean}_b\\; \\frac{1}{n_b ρ_b^2} Σ_{i∈b} |f̃_i − d_i|^2,

``ρ_b`` the typical displacement of graph ``b`` at its time
(:attr:`~discodock.diffusion.noising.NoiseSample.displacement_sigma`), not the drawn one, so that the
minimiser stays ``E[d | x_t]``. It gives every atom, not only every graph, a training signal for the
rotation and torsion parts of the pose, which the score heads read through their rigid and torsional
fits of ``f̃``. ``L = w_tr L_tr + w_rot L_rot + w_tor L_tor + w_disp L_disp``. Each term is scaled so
that a zero prediction costs about 1 per component, whatever the noise level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from discodock.diffusion.noising import NoiseSample
from discodock.geometry.pose import graph_mean
from discodock.model.score_model import ScoreOutput

LOSS_TERMS = ("loss", "tr", "rot", "tor", "disp")
"""Keys of :func:`score_matching_loss`'s result: the weighted sum, then each term."""


@dataclass(frozen=True)
class LossWeights:
    """Weights of the translation, rotation, torsion and displacement terms."""

    tr: float = 0.33
    rot: float = 0.33
    tor: float = 0.33
    disp: float = 0.33


def score_matching_loss(
    prediction: ScoreOutput, noise: NoiseSample, weights: LossWeights | None = None
) -> dict[str, torch.Tensor]:
    """The weighted loss and its components for one batch.

    Parameters
    ----------
    prediction
        Network scores ``tr [B, 3]``, ``rot [B, 3]``, ``tor [T]`` and displacements ``[A, 3]``.
    noise
        Targets and normalisers of the same batch (:func:`~discodock.diffusion.noising.noise_batch`).
    weights
        Component weights (default :class:`LossWeights`).

    Returns
    -------
    dict[str, torch.Tensor]
        Scalars ``"loss"`` (the weighted sum), ``"tr"``, ``"rot"``, ``"tor"``, ``"disp"``.
    """
    weights = weights or LossWeights()
    if prediction.displacement is None:
        raise ValueError("the displacement term needs the network's per-atom displacements")
    tr = ((prediction.tr - noise.tr_score) * noise.tr_sigma[:, None]).square().mean()
    rot = ((prediction.rot - noise.rot_score) / noise.rot_score_norm[:, None]).square().mean()
    tor_terms = (prediction.tor - noise.tor_score).square() / noise.tor_score_second_moment
    tor = tor_terms.sum() / max(tor_terms.numel(), 1)
    disp = _displacement_loss(prediction.displacement, noise)
    loss = weights.tr * tr + weights.rot * rot + weights.tor * tor + weights.disp * disp
    return {"loss": loss, "tr": tr, "rot": rot, "tor": tor, "disp": disp}


def _displacement_loss(predicted: torch.Tensor, noise: NoiseSample) -> torch.Tensor:
    """``L_disp`` of the module docstring for ``predicted [A, 3]``."""
    squared_error = (predicted - noise.displacement).square().sum(-1)
    per_graph = graph_mean(squared_error, noise.atom_graph, len(noise.t))
    return (per_graph / noise.displacement_sigma.square()).mean()
