"""The latent encoder: per-node token logits from the crystal pose (method.md §3.2).

The encoder is an :class:`~discodock.model.trunk.InteractionTrunk` without time input and without
latent channels, run on the **crystal** ligand pose (``batch.crystal_pos``) with a fixed 30 Å
ligand–residue cutoff (and a 0–30 Å cross distance smearing); every layer updates atoms and residues.
Two MLP heads (ligand, receptor) map each node's scalar features ``[0e ‖ 0o]`` to ``K`` logits, one per
token. The softmax over the nodes of each graph, per token, is taken in
:mod:`discodock.model.latents` (:func:`~discodock.model.latents.gumbel_softmax_tokens`).

Residues are featurised as in the score model (type embedding and backbone vectors, no ESM).
"""

from __future__ import annotations

import torch
from torch import nn

from discodock.data.batch import ComplexBatch
from discodock.model.config import EncoderConfig
from discodock.model.latents import TokenLogits
from discodock.model.layers import logit_head
from discodock.model.trunk import InteractionTrunk


class LatentEncoder(nn.Module):
    """``q_φ(z | x₀)``: logits of the ``K`` pointer tokens over the nodes of each complex.

    Parameters
    ----------
    config
        Encoder hyperparameters.
    latent_tokens
        ``K`` (the score model's ``latent_tokens``), at least 1.
    """

    def __init__(self, config: EncoderConfig, latent_tokens: int) -> None:
        super().__init__()
        if latent_tokens < 1:
            raise ValueError(f"the latent encoder needs latent_tokens ≥ 1, got {latent_tokens}")
        self.config = config
        self.trunk = InteractionTrunk.with_fixed_cutoff(config, 0, update_residues_in_last_layer=True)
        width = self.trunk.num_scalars
        self.ligand_head = logit_head(width, config.head_hidden_dim, latent_tokens, config.head_dropout)
        self.residue_head = logit_head(width, config.head_hidden_dim, latent_tokens, config.head_dropout)

    def forward(self, batch: ComplexBatch) -> TokenLogits:
        """Token logits of every node of ``batch``, seen in its crystal pose.

        Returns
        -------
        TokenLogits
            ``ligand [A, K]``, ``residue [R, K]`` (unnormalised).

        Raises
        ------
        ValueError
            If the batch has no crystal poses.
        """
        if batch.crystal_pos is None:
            raise ValueError("the latent encoder needs crystal poses (batch.crystal_pos is None)")
        cutoff = torch.full(
            (batch.num_graphs,), self.config.cross_cutoff, dtype=batch.crystal_pos.dtype, device=batch.device
        )
        ligand_features, residue_features = self.trunk(batch, batch.crystal_pos, cutoff, None, None)
        return TokenLogits(
            ligand=self.ligand_head(self.trunk.scalars(ligand_features)),
            residue=self.residue_head(self.trunk.scalars(residue_features)),
        )
