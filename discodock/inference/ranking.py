"""Ranking the sampled poses of one complex: the confidence model plus the consensus of the samples.

The confidence model alone ranks poorly (``benchmarks/results/pdbbind_timesplit/README.md``): one of 40
samples is often near the crystal pose, but the confidence model rarely puts it first. Poses the sampler
finds again and again are more often right, as in the clustering used to rank classical docking runs.
The rank score of sample ``s`` is

.. math::

    r_s = z(c)_s + w \\, z(n)_s, \\qquad
    n_s = \\#\\{s' \\ne s : \\mathrm{RMSD}(x_s, x_{s'}) < 2\\,Å\\},

with ``c`` the confidence logits, ``n`` the neighbour counts (plain RMSD between two poses of the same
ligand, no alignment), ``z(v) = (v − mean v) / std v`` over the samples of the complex (0 where all are
equal) and ``w`` the consensus weight (:data:`DEFAULT_CONSENSUS_WEIGHT`, chosen on the validation set;
0 ranks by confidence alone). Without a confidence model the neighbour counts rank alone.
"""

from __future__ import annotations

import math

import torch

DEFAULT_CONSENSUS_WEIGHT = 1.0
"""``w``: weight of the neighbour counts against the confidence logits (z-scored both). On 59 validation
complexes × 2 modes × 40 samples it kept the top-1 below 2 Å (5.1 %) and raised the top-1 below 5 Å from
40.7 to 49.2 % (``benchmarks/results/training_log.md``, session 8)."""
CONSENSUS_RMSD = 2.0
"""Å; two poses closer than this (plain RMSD) are neighbours."""


def neighbour_counts(poses: torch.Tensor, cutoff: float = CONSENSUS_RMSD) -> torch.Tensor:
    """``float[S]``: how many other poses lie within ``cutoff`` (plain RMSD) of each pose ``[S, A, 3]``."""
    squared = ((poses[:, None] - poses[None]) ** 2).sum(-1).mean(-1)  # [S, S] mean squared deviations
    return (squared < cutoff**2).sum(1).to(poses.dtype) - 1.0


def standardized(values: torch.Tensor) -> torch.Tensor:
    """``(v − mean v) / std v`` over the last axis; 0 where all values are equal."""
    centred = values - values.mean(-1, keepdim=True)
    spread = values.std(-1, keepdim=True, unbiased=False)
    return torch.where(spread > 0, centred / spread.clamp(min=torch.finfo(values.dtype).tiny), 0.0)


def rank_scores(confidences: torch.Tensor, neighbours: torch.Tensor, consensus_weight: float) -> torch.Tensor:
    """``float[..., S]``: the rank score ``r`` of each sample (higher first; module docstring).

    Parameters
    ----------
    confidences
        ``float[..., S]`` confidence logits of the ``S`` samples of each complex, ``nan`` throughout
        without a confidence model.
    neighbours
        ``float[..., S]``: their :func:`neighbour_counts`.
    consensus_weight
        ``w`` ≥ 0. With ``w = 0`` and no confidence model every score is ``nan`` (sampling order).
    """
    if consensus_weight < 0:
        raise ValueError(f"consensus_weight must be ≥ 0, got {consensus_weight}")
    confidences = confidences.to(neighbours.dtype)
    ranked = bool(confidences.isfinite().all())
    score = standardized(confidences) if ranked else torch.zeros_like(confidences)
    if consensus_weight > 0:
        return score + consensus_weight * standardized(neighbours)
    return score if ranked else torch.full_like(confidences, math.nan)
