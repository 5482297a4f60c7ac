"""The autoregressive prior over pointer tokens (method.md §3.7).

``p_ψ(z) = Π_k p_ψ(z_k | z_<k, complex)``: token ``k`` is a categorical over the nodes of the complex,
conditioned on the tokens already decoded. The network is an
:class:`~discodock.model.trunk.InteractionTrunk` without time input whose ``K`` latent indicator
channels hold the decoded tokens ``z_<k`` (tokens ``≥ k`` are zero), with the null flag set on every
graph; every layer updates atoms and residues. A ligand MLP and a receptor MLP map each node's scalars
to ``K`` logits; column ``k`` scores token ``k``.

Differences from disco-diffdock: there the prior is a fine-tuned copy of the denoiser's trunk. Our
denoiser never updates residues from the ligand (its receptor encoder is pose-independent,
:mod:`discodock.model.score_model`), so a copy of it could not make residue logits depend on the
ligand or on the decoded tokens; the prior therefore has a trunk of its own, shaped like the latent
encoder's. There the heads also emit ``K`` columns but the loss and the sampler always read column 0;
here column ``k`` is the head of token ``k`` (the output layer is per token, the hidden layers shared).

The prior sees whatever is in ``batch.ligand_pos``; callers put there the RDKit conformer at the protein
centre in a random orientation (method.md §3.7–3.8).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from discodock.data.batch import ComplexBatch
from discodock.model.config import PriorConfig
from discodock.model.latents import (
    LatentAssignment,
    TokenLogits,
    mask_tokens,
    sample_tokens,
    segment_log_softmax,
    segment_softmax,
)
from discodock.model.layers import logit_head
from discodock.model.trunk import InteractionTrunk


class AutoregressivePrior(nn.Module):
    """Autoregressive token prior: an interaction trunk with token channels, and logit heads.

    Parameters
    ----------
    config
        Prior hyperparameters.
    latent_tokens
        ``K`` (the score model's ``latent_tokens``), at least 1.
    """

    def __init__(self, config: PriorConfig, latent_tokens: int) -> None:
        super().__init__()
        if latent_tokens < 1:
            raise ValueError("the autoregressive prior needs a score model with latent_tokens ≥ 1")
        self.num_tokens = latent_tokens
        self.config = config
        self.trunk = InteractionTrunk.with_fixed_cutoff(
            config, latent_tokens, update_residues_in_last_layer=True
        )
        width = self.trunk.num_scalars
        self.ligand_head = logit_head(width, config.head_hidden_dim, latent_tokens, config.head_dropout)
        self.residue_head = logit_head(width, config.head_hidden_dim, latent_tokens, config.head_dropout)

    def log_probs(
        self, batch: ComplexBatch, context: LatentAssignment, position: int | Tensor
    ) -> TokenLogits:
        """``log p(z_j = node | z_<j)`` over the nodes of each graph, for ``j = position``.

        Parameters
        ----------
        batch
            The complexes, with the prior's input poses in ``ligand_pos``.
        context
            Tokens of each graph; only those before ``position`` are used (the rest are masked), and
            the null flags are ignored (the trunk always runs unconditional).
        position
            Token ``j`` to score: one for all graphs, or ``int64[B]``.

        Returns
        -------
        TokenLogits
            ``ligand [A, 1]``, ``residue [R, 1]`` log-probabilities; each graph's sum of
            probabilities is 1.
        """
        num_graphs = batch.num_graphs
        position = torch.as_tensor(position, device=batch.device).expand(num_graphs)
        tokens = torch.arange(self.num_tokens, device=batch.device)
        decoded = mask_tokens(context, batch, tokens[None, :] < position[:, None])
        unconditional = torch.ones(num_graphs, dtype=torch.bool, device=batch.device)
        trunk_input = LatentAssignment(decoded.ligand, decoded.residue, unconditional)
        pos = batch.ligand_pos
        cutoff = torch.full((num_graphs,), self.config.cross_cutoff, dtype=pos.dtype, device=pos.device)
        ligand_features, residue_features = self.trunk(batch, pos, cutoff, None, trunk_input)
        logits = TokenLogits(
            ligand=self.ligand_head(self.trunk.scalars(ligand_features)).gather(
                1, position[batch.atom_graph, None]
            ),
            residue=self.residue_head(self.trunk.scalars(residue_features)).gather(
                1, position[batch.residue_graph, None]
            ),
        )
        return segment_log_softmax(logits, batch)

    def loss(
        self, batch: ComplexBatch, encoder_logits: TokenLogits, generator: torch.Generator | None = None
    ) -> Tensor:
        """Teacher-forced cross-entropy against the encoder's token distributions (method.md §3.7).

        For each graph a position ``j`` is drawn uniformly from ``0..K−1``; the context tokens are
        hard draws from the encoder's categoricals, and the target is the encoder's soft distribution
        ``q_j = softmax(ℓ_j)`` over the graph's nodes:
        ``L = mean_graphs ( −Σ_nodes q_j · log p(z_j | z_<j) )``.

        Parameters
        ----------
        batch
            The complexes, with the prior's input poses in ``ligand_pos``.
        encoder_logits
            The (frozen) encoder's logits ``[A, K]``, ``[R, K]`` on the crystal poses; no gradient flows
            into them.
        generator
            Source of the positions and the context draws.

        Returns
        -------
        Tensor
            Scalar loss.
        """
        encoder_logits = TokenLogits(encoder_logits.ligand.detach(), encoder_logits.residue.detach())
        position = torch.randint(
            self.num_tokens, (batch.num_graphs,), generator=generator, device=batch.device
        )
        context = sample_tokens(encoder_logits, batch, generator=generator)
        target = segment_softmax(encoder_logits, batch)
        log_probs = self.log_probs(batch, context, position)
        node_loss = torch.cat(
            [
                -(target.ligand.gather(1, position[batch.atom_graph, None]) * log_probs.ligand)[:, 0],
                -(target.residue.gather(1, position[batch.residue_graph, None]) * log_probs.residue)[:, 0],
            ]
        )
        graph = torch.cat([batch.atom_graph, batch.residue_graph])
        return node_loss.new_zeros(batch.num_graphs).index_add_(0, graph, node_loss).mean()

    @torch.no_grad()
    def sample(
        self,
        batch: ComplexBatch,
        logit_multiplier: float | None = None,
        generator: torch.Generator | None = None,
    ) -> LatentAssignment:
        """Draw tokens ``0..K−1`` in order for every graph of ``batch`` (method.md §3.8 step 3).

        Token ``k`` is drawn from ``softmax(logit_multiplier · log p(· | z_<k))`` and written as a one-hot
        into channel ``k`` before the next token is scored.

        Parameters
        ----------
        batch
            The complexes (e.g. 40 copies of one), with the prior's input poses in ``ligand_pos``.
        logit_multiplier
            Factor on the logits; default ``config.logit_multiplier`` = exp(−1.5).
        generator
            Source of the draws.

        Returns
        -------
        LatentAssignment
            Hard tokens of every graph, with no graph unconditional (ready for the score model).
        """
        multiplier = self.config.logit_multiplier if logit_multiplier is None else logit_multiplier
        like = batch.ligand_pos
        tokens = LatentAssignment(
            ligand=like.new_zeros(len(batch.atom_graph), self.num_tokens),
            residue=like.new_zeros(len(batch.residue_graph), self.num_tokens),
            unconditional=torch.zeros(batch.num_graphs, dtype=torch.bool, device=batch.device),
        )
        for position in range(self.num_tokens):
            drawn = sample_tokens(self.log_probs(batch, tokens, position), batch, multiplier, generator)
            tokens.ligand[:, position] = drawn.ligand[:, 0]
            tokens.residue[:, position] = drawn.residue[:, 0]
        return tokens
