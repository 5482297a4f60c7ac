"""Pointer latent tokens: assignments, per-graph softmax over nodes, and their samplers (method.md §3).

A complex carries ``K`` discrete tokens. Token ``k`` is a categorical over the **nodes of its graph** —
the ligand atoms and the residues together — so it points at one atom or one residue; the codebook of
a graph is its own node set. An assignment is stored as indicator channels: column ``k`` of
``ligand [A, K]`` and ``residue [R, K]`` is 1 at the chosen node of each graph and 0 elsewhere. Node
logits are stored the same way (:class:`TokenLogits`), and every normalisation is over the ligand
atoms and residues of one graph, per column.

All functions are vectorised over the graphs of a :class:`~discodock.data.batch.ComplexBatch`
(``atom_graph``, ``residue_graph``); nothing loops over graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from discodock.data.batch import ComplexBatch, copied_rows


@dataclass(frozen=True)
class TokenLogits:
    """Per-node scores of the tokens (logits, log-probabilities or probabilities).

    Attributes
    ----------
    ligand
        ``float[A, K]``: score of each ligand atom for each of the ``K`` token columns.
    residue
        ``float[R, K]``: score of each residue.
    """

    ligand: Tensor
    residue: Tensor


@dataclass(frozen=True)
class LatentAssignment:
    """Tokens of every graph of a batch as indicator channels (method.md §3.1, §3.5).

    Attributes
    ----------
    ligand
        ``float[A, K]``: column ``k`` is the one-hot of token ``k`` over the graph's nodes, restricted to
        its ligand atoms. Straight-through samples carry the gradient of the soft sample.
    residue
        ``float[R, K]``: the same over residues.
    unconditional
        ``bool[B]``: null-token flag. The score model adds its learned null embeddings to the nodes and
        edges of flagged graphs; a dropped-out (or unconditional) graph also has all-zero channels,
        while the autoregressive prior sets the flag and fills the already decoded tokens.
    """

    ligand: Tensor
    residue: Tensor
    unconditional: Tensor

    @property
    def num_tokens(self) -> int:
        """``K``."""
        return int(self.ligand.shape[1])

    @classmethod
    def null(cls, batch: ComplexBatch, num_tokens: int, dtype: torch.dtype | None = None) -> LatentAssignment:
        """All graphs unconditional: zero channels and the null flag set."""
        dtype = dtype or batch.ligand_pos.dtype
        return cls(
            ligand=torch.zeros(len(batch.atom_graph), num_tokens, dtype=dtype, device=batch.device),
            residue=torch.zeros(len(batch.residue_graph), num_tokens, dtype=dtype, device=batch.device),
            unconditional=torch.ones(batch.num_graphs, dtype=torch.bool, device=batch.device),
        )

    def token_nodes(self, batch: ComplexBatch) -> Tensor:
        """``int64[B, K]``: chosen node of each token, numbered within its graph with ligand atoms first.

        Node ``i < A_g`` of graph ``g`` is its ``i``-th ligand atom and node ``A_g + j`` its ``j``-th
        residue; −1 where the channel of a graph is all zero (a null token).
        """
        values, graph = _joint(TokenLogits(self.ligand, self.residue), batch)
        node, token = torch.nonzero(values > 0.5, as_tuple=True)
        chosen = torch.full((batch.num_graphs, self.num_tokens), -1, dtype=torch.long, device=values.device)
        chosen[graph[node], token] = _local_node_index(batch)[node]
        return chosen


def segment_log_softmax(logits: TokenLogits, batch: ComplexBatch) -> TokenLogits:
    """Log-softmax of each token column over the nodes of each graph.

    ``log p_k(i) = ℓ_ik − log Σ_{j ∈ graph(i)} exp ℓ_jk`` with ``j`` running over the graph's ligand atoms
    and residues; computed with the per-graph maximum subtracted.
    """
    values, graph = _joint(logits, batch)
    return _split(_joint_log_softmax(values, graph, batch.num_graphs), batch)


def segment_softmax(logits: TokenLogits, batch: ComplexBatch) -> TokenLogits:
    """Softmax of each token column over the nodes of each graph: ``exp`` of :func:`segment_log_softmax`."""
    log_probs = segment_log_softmax(logits, batch)
    return TokenLogits(log_probs.ligand.exp(), log_probs.residue.exp())


def gumbel_softmax_tokens(
    logits: TokenLogits,
    batch: ComplexBatch,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> LatentAssignment:
    """Straight-through Gumbel-softmax draw of every token of every graph (method.md §3.3).

    With ``g`` i.i.d. Gumbel(0, 1) noise per node and token, the forward value is the hard one-hot of
    ``argmax_i (ℓ_ik + g_ik)`` over each graph's nodes — an exact draw from ``softmax(ℓ_k)`` whatever the
    temperature — and the gradient is that of the soft sample ``softmax((ℓ_k + g_k) / τ)``:
    ``y = hard + soft − soft.detach()``.

    Parameters
    ----------
    logits
        Node logits ``[A, K]``, ``[R, K]``.
    batch
        Supplies the graph of every node.
    temperature
        ``τ > 0`` of the soft sample.
    generator
        Source of the Gumbel noise (on the logits' device).

    Returns
    -------
    LatentAssignment
        Straight-through one-hot channels; no graph is unconditional.
    """
    values, graph = _joint(logits, batch)
    perturbed = values + _gumbel_noise(values, generator)
    hard = _segment_argmax_one_hot(perturbed.detach(), graph, batch.num_graphs)
    soft = _joint_log_softmax(perturbed / temperature, graph, batch.num_graphs).exp()
    return _assignment(hard + soft - soft.detach(), batch)


def sample_tokens(
    logits: TokenLogits,
    batch: ComplexBatch,
    logit_multiplier: float = 1.0,
    generator: torch.Generator | None = None,
) -> LatentAssignment:
    """Draw every token from ``softmax(logit_multiplier · ℓ_k)`` over each graph's nodes (method.md §3.8).

    The draw is the Gumbel-max of the scaled logits; a multiplier ≥ 100 takes the plain argmax, as the
    reference sampler does. No gradient flows.

    Parameters
    ----------
    logits
        Node logits ``[A, K]``, ``[R, K]``.
    batch
        Supplies the graph of every node.
    logit_multiplier
        Factor on the logits (the prior samples with ``exp(−1.5) ≈ 0.223``, i.e. hotter).
    generator
        Source of the Gumbel noise.

    Returns
    -------
    LatentAssignment
        Hard one-hot channels; no graph is unconditional.
    """
    values, graph = _joint(logits, batch)
    scaled = values.detach() * logit_multiplier
    if logit_multiplier < 100.0:
        scaled = scaled + _gumbel_noise(scaled, generator)
    return _assignment(_segment_argmax_one_hot(scaled, graph, batch.num_graphs), batch)


def copy_latents(assignment: LatentAssignment, source: ComplexBatch, copy_of: Tensor) -> LatentAssignment:
    """The tokens of ``source``'s graphs laid out for a batch whose graph ``j`` copies graph ``copy_of[j]``.

    The copies must have the same atoms and residues as their source graphs (e.g. several pose copies
    of each complex with the same receptor crop); they share its tokens, gradients included.
    """
    num_graphs = source.num_graphs
    return LatentAssignment(
        ligand=assignment.ligand[copied_rows(source.atom_graph, num_graphs, copy_of)],
        residue=assignment.residue[copied_rows(source.residue_graph, num_graphs, copy_of)],
        unconditional=assignment.unconditional[copy_of],
    )


def drop_latents(
    assignment: LatentAssignment,
    batch: ComplexBatch,
    droprate: float,
    generator: torch.Generator | None = None,
) -> LatentAssignment:
    """Latent dropout (method.md §3.5): each graph independently, with probability ``droprate``, loses
    all its tokens (channels zeroed) and becomes unconditional."""
    dropped = torch.rand(batch.num_graphs, generator=generator, device=batch.device) < droprate
    keep = (~dropped)[:, None].expand(-1, assignment.num_tokens)
    masked = mask_tokens(assignment, batch, keep)
    return LatentAssignment(masked.ligand, masked.residue, assignment.unconditional | dropped)


def mask_tokens(assignment: LatentAssignment, batch: ComplexBatch, keep: Tensor) -> LatentAssignment:
    """Zero the channels of the tokens not kept.

    Parameters
    ----------
    assignment
        Tokens to mask.
    batch
        Supplies the graph of every node.
    keep
        ``bool[B, K]``: whether token ``k`` of graph ``g`` stays.

    Returns
    -------
    LatentAssignment
        ``ligand · keep[atom_graph]``, ``residue · keep[residue_graph]``, same flags.
    """
    keep = keep.to(assignment.ligand.dtype)
    return LatentAssignment(
        ligand=assignment.ligand * keep[batch.atom_graph],
        residue=assignment.residue * keep[batch.residue_graph],
        unconditional=assignment.unconditional,
    )


def _joint(scores: TokenLogits, batch: ComplexBatch) -> tuple[Tensor, Tensor]:
    """Ligand rows then residue rows, ``[A + R, K]``, and the graph of each row."""
    return torch.cat([scores.ligand, scores.residue]), torch.cat([batch.atom_graph, batch.residue_graph])


def _split(values: Tensor, batch: ComplexBatch) -> TokenLogits:
    """Inverse of :func:`_joint`."""
    num_atoms = len(batch.atom_graph)
    return TokenLogits(values[:num_atoms], values[num_atoms:])


def _assignment(values: Tensor, batch: ComplexBatch) -> LatentAssignment:
    split = _split(values, batch)
    unconditional = torch.zeros(batch.num_graphs, dtype=torch.bool, device=values.device)
    return LatentAssignment(split.ligand, split.residue, unconditional)


def _local_node_index(batch: ComplexBatch) -> Tensor:
    """``int64[A + R]``: index of each joint row within its graph, ligand atoms first."""
    atoms_per_graph = torch.bincount(batch.atom_graph, minlength=batch.num_graphs)
    residues_per_graph = torch.bincount(batch.residue_graph, minlength=batch.num_graphs)
    first_atom = torch.cumsum(atoms_per_graph, 0) - atoms_per_graph
    first_residue = torch.cumsum(residues_per_graph, 0) - residues_per_graph
    atom_rank = torch.arange(len(batch.atom_graph), device=batch.device) - first_atom[batch.atom_graph]
    residue_rank = (
        torch.arange(len(batch.residue_graph), device=batch.device) - first_residue[batch.residue_graph]
    )
    return torch.cat([atom_rank, atoms_per_graph[batch.residue_graph] + residue_rank])


def _joint_log_softmax(values: Tensor, graph: Tensor, num_graphs: int) -> Tensor:
    """Log-softmax of ``values [N, K]`` over the rows of each graph, per column."""
    maximum = _segment_max(values, graph, num_graphs).detach()
    shifted = values - maximum[graph]
    normaliser = torch.zeros_like(maximum).index_add_(0, graph, shifted.exp()).log()
    return shifted - normaliser[graph]


def _segment_max(values: Tensor, graph: Tensor, num_graphs: int) -> Tensor:
    """``[B, K]`` maximum of ``values [N, K]`` over the rows of each graph."""
    maximum = torch.full((num_graphs, values.shape[1]), -torch.inf, dtype=values.dtype, device=values.device)
    return maximum.scatter_reduce_(0, graph[:, None].expand_as(values), values, reduce="amax")


def _segment_argmax_one_hot(values: Tensor, graph: Tensor, num_graphs: int) -> Tensor:
    """``[N, K]`` one-hot of the first maximal row of each graph, per column."""
    is_max = values == _segment_max(values, graph, num_graphs)[graph]
    row = torch.arange(len(values), device=values.device)[:, None].expand_as(values)
    candidate = torch.where(is_max, row, len(values))
    first = torch.full((num_graphs, values.shape[1]), len(values), dtype=torch.long, device=values.device)
    first.scatter_reduce_(0, graph[:, None].expand_as(values), candidate, reduce="amin")
    return (row == first[graph]).to(values.dtype)


def _gumbel_noise(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard Gumbel noise ``−log(−log u)``, ``u ~ U(0, 1)``, shaped like ``like``."""
    uniform = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    tiny = torch.finfo(like.dtype).tiny
    return -torch.log(-torch.log(uniform.clamp(min=tiny, max=1.0 - torch.finfo(like.dtype).eps)))
