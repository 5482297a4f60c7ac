"""The confidence model: one logit per docked pose, used to rank the samples of a complex (method.md §2.7).

An :class:`~discodock.model.trunk.InteractionTrunk` without time input and without latent channels
runs on the pose in ``batch.ligand_pos`` with a fixed ligand–residue cutoff (20.3 Å, the score model's
cutoff at ``t = 0``, where DiffDock evaluates its confidence model). The ligand atoms' scalar features
``[0e ‖ 0o]`` are mean-pooled per graph and an MLP with batch norm maps them to one logit ``ℓ``, trained
as ``P(RMSD < 2 Å) = sigmoid(ℓ)``. The logit is invariant to rigid motions of the whole complex (the trunk
is E(3)-equivariant, the pooled scalars are invariant) and to permutations of the ligand atoms (mean
pooling).

Differences from DiffDock's confidence model, all deliberate:

* **Coarse-grained receptor.** DiffDock's is the all-atom model (receptor heavy atoms as extra nodes);
  here the residues are C-alpha nodes with backbone vectors, as in our score model, so the trunk is
  shared code.
* **One logit, binary cross-entropy**, where DiffDock emits two logits (RMSD < 2 Å, ≥ 2 Å) trained with
  cross-entropy and ranks by the first; a single logit of the same classifier carries the same ranking.
* **No time embedding.** DiffDock embeds ``t = 0`` (a constant); leaving it out changes nothing.

:func:`binary_auroc` measures how well the logits separate good poses from bad ones.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from discodock.data.batch import ComplexBatch
from discodock.model.config import ConfidenceConfig
from discodock.model.layers import logit_head, scatter_mean
from discodock.model.trunk import InteractionTrunk


class ConfidenceModel(nn.Module):
    """``ℓ(x)``: confidence logit of each graph's current ligand pose; higher means more likely < 2 Å.

    Parameters
    ----------
    config
        Confidence-model hyperparameters.
    """

    def __init__(self, config: ConfidenceConfig) -> None:
        super().__init__()
        self.config = config
        self.trunk = InteractionTrunk.with_fixed_cutoff(config, 0, update_residues_in_last_layer=False)
        self.head = logit_head(self.trunk.num_scalars, config.head_hidden_dim, 1, config.head_dropout)

    def forward(self, batch: ComplexBatch) -> Tensor:
        """Confidence logits of the poses in ``batch.ligand_pos``.

        ``ℓ_b = MLP(mean_{i ∈ b} s_i)`` with ``s_i`` the ``0e`` and ``0o`` features of ligand atom ``i``
        after the last layer.

        Returns
        -------
        Tensor
            ``float[B]``.
        """
        pos = batch.ligand_pos
        cutoff = torch.full((batch.num_graphs,), self.config.cross_cutoff, dtype=pos.dtype, device=pos.device)
        ligand_features, _ = self.trunk(batch, pos, cutoff, None, None)
        pooled = scatter_mean(self.trunk.scalars(ligand_features), batch.atom_graph, batch.num_graphs)
        return self.head(pooled)[:, 0]


def binary_auroc(scores: Tensor, labels: Tensor) -> Tensor:
    """Area under the ROC curve: the probability that a random positive outscores a random negative.

    Computed as the Mann–Whitney statistic with mid-ranks, so that tied scores count one half:
    ``AUROC = (Σ_{i positive} rank_i − P(P + 1)/2) / (P N)`` with ``rank`` the 1-based ascending rank of
    each score (tied scores share the mean of their ranks), ``P`` positives and ``N`` negatives.

    Parameters
    ----------
    scores
        ``float[M]``: higher means more likely positive.
    labels
        ``bool[M]``.

    Returns
    -------
    Tensor
        ``float64[]`` in ``[0, 1]``; NaN when there are no positives or no negatives.
    """
    _, group, group_size = torch.unique(scores, return_inverse=True, return_counts=True)
    group_end = torch.cumsum(group_size, 0).double()
    mid_rank = (group_end - (group_size.double() - 1) / 2)[group]
    positives = labels.sum().double()
    negatives = len(labels) - positives
    rank_sum = mid_rank[labels].sum()
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
