"""The autoregressive prior over pointer tokens (method.md §3.7).

``p_ψ(z) = Π_k p_ψ(z_k | z_<k, complex)``: token ``k`` is a categorical over the nodes of the complex,
conditioned on the tokens already decoded. The network reuses the trained denoiser's trunk
(:class:`~discodock.model.score_model.ScoreTrunk`, deep-copied, then fine-tuned): it runs at ``t = 1``
with the null flag set on every graph, and the decoded tokens ``z_<k`` fill their indicator channels
(tokens ``≥ k`` are zero). A ligand MLP and a receptor MLP map each node's scalars to ``K`` logits;
column ``k`` scores token ``k``.

Difference from disco-diffdock: there the heads also emit ``K`` columns but the loss and the sampler
always read column 0, so one head serves every position; here column ``k`` is the head of token ``k``
(the output layer is per token, the hidden layers shared), as the design issue asks. The reference's
head input slice (16 of 24 channels) is not reproduced: the heads see all trunk scalars.

The prior sees whatever is in ``batch.ligand_pos``; callers put there the RDKit conformer at the protein
centre in a random orientation (method.md §3.7–3.8).
"""

from __future__ import annotations

import copy

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
from discodock.model.score_model import ScoreModel


class AutoregressivePrior(nn.Module):
    """Autoregressive token prior on a copy of a score model's trunk.

    Parameters
    ----------
    score_model
        A trained score model with ``latent_tokens ≥ 1``; its trunk is deep-copied (the score model
        itself is left untouched).
    config
        Prior hyperparameters.
    """

    def __init__(self, score_model: ScoreModel, config: PriorConfig) -> None:
        super().__init__()
        self.num_tokens = score_model.config.latent_tokens
        if self.num_tokens < 1:
            raise ValueError("the autoregressive prior needs a score model with latent_tokens ≥ 1")
        self.config = config
        self.trunk = copy.deepcopy(score_model.trunk)
        width = self.trunk.network.num_scalars
        self.ligand_head = logit_head(width, config.head_hidden_dim, self.num_tokens, config.head_dropout)
        self.residue_head = logit_head(width, config.head_hidden_dim, self.num_tokens, config.head_dropout)

    def freeze_trunk(self, frozen: bool = True) -> None:
        """Stop (or restart) gradient updates of the copied trunk; the heads always train."""
        for parameter in self.trunk.parameters():
            parameter.requires_grad_(not frozen)

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
        t = torch.ones(num_graphs, dtype=batch.ligand_pos.dtype, device=batch.device)
        ligand_scalars, residue_scalars = self.trunk.embed(batch, t, trunk_input)
        logits = TokenLogits(
            ligand=self.ligand_head(ligand_scalars).gather(1, position[batch.atom_graph, None]),
            residue=self.residue_head(residue_scalars).gather(1, position[batch.residue_graph, None]),
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
