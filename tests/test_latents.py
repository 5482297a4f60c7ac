"""Tests of pointer-token assignments and samplers in :mod:`discodock.model.latents`."""

from __future__ import annotations

import pytest
import torch

from discodock.data.batch import ComplexBatch
from discodock.geometry.pose import TorsionIndex
from discodock.model.latents import (
    LatentAssignment,
    TokenLogits,
    copy_latents,
    drop_latents,
    gumbel_softmax_tokens,
    mask_tokens,
    sample_tokens,
    segment_log_softmax,
    segment_softmax,
)


def node_batch(atoms_per_graph: list[int], residues_per_graph: list[int]) -> ComplexBatch:
    """A batch with only its node structure filled in (zeros elsewhere): all the token functions need."""
    atom_graph = torch.repeat_interleave(torch.arange(len(atoms_per_graph)), torch.tensor(atoms_per_graph))
    residue_graph = torch.repeat_interleave(
        torch.arange(len(residues_per_graph)), torch.tensor(residues_per_graph)
    )
    num_atoms, num_residues, no_index = len(atom_graph), len(residue_graph), torch.zeros(0, dtype=torch.long)
    return ComplexBatch(
        complex_index=torch.arange(len(atoms_per_graph)),
        center=torch.zeros(len(atoms_per_graph), 3),
        residue_types=torch.zeros(num_residues, dtype=torch.long),
        residue_pos=torch.zeros(num_residues, 3),
        residue_frame=torch.zeros(num_residues, 3, 3),
        residue_graph=residue_graph,
        receptor_edges=torch.zeros(2, 0, dtype=torch.long),
        atom_features=torch.zeros(num_atoms, 16, dtype=torch.long),
        atom_graph=atom_graph,
        ligand_pos=torch.zeros(num_atoms, 3),
        conformer_pos=torch.zeros(num_atoms, 3),
        crystal_pos=None,
        matched_pos=None,
        bond_index=torch.zeros(2, 0, dtype=torch.long),
        bond_types=no_index,
        torsions=TorsionIndex(torch.zeros(0, 2, dtype=torch.long), no_index, no_index, no_index, no_index),
    )


def random_logits(batch: ComplexBatch, num_tokens: int, seed: int = 0) -> TokenLogits:
    generator = torch.Generator().manual_seed(seed)
    return TokenLogits(
        torch.randn(len(batch.atom_graph), num_tokens, generator=generator),
        torch.randn(len(batch.residue_graph), num_tokens, generator=generator),
    )


def per_graph(scores: TokenLogits, batch: ComplexBatch, graph: int) -> torch.Tensor:
    """The ``[nodes, K]`` rows of one graph, ligand atoms first."""
    return torch.cat([scores.ligand[batch.atom_graph == graph], scores.residue[batch.residue_graph == graph]])


@pytest.fixture
def batch() -> ComplexBatch:
    return node_batch([3, 1, 4], [2, 5, 1])


def test_segment_log_softmax_normalises_each_graph_per_token(batch: ComplexBatch) -> None:
    logits = random_logits(batch, num_tokens=2)
    log_probs = segment_log_softmax(logits, batch)
    for graph in range(batch.num_graphs):
        expected = torch.log_softmax(per_graph(logits, batch, graph), dim=0)
        torch.testing.assert_close(per_graph(log_probs, batch, graph), expected)
    probs = segment_softmax(logits, batch)
    sums = (
        torch.zeros(3, 2)
        .index_add_(0, batch.atom_graph, probs.ligand)
        .index_add_(0, batch.residue_graph, probs.residue)
    )
    torch.testing.assert_close(sums, torch.ones(3, 2))


def test_segment_log_softmax_is_stable_for_huge_logits(batch: ComplexBatch) -> None:
    logits = random_logits(batch, num_tokens=1)
    logits = TokenLogits(logits.ligand.double(), logits.residue.double())
    shifted = TokenLogits(logits.ligand + 1e4, logits.residue + 1e4)  # exp(1e4) overflows
    torch.testing.assert_close(
        segment_log_softmax(shifted, batch).ligand, segment_log_softmax(logits, batch).ligand
    )


def test_gumbel_softmax_forward_is_one_hot_per_graph_and_token(batch: ComplexBatch) -> None:
    tokens = gumbel_softmax_tokens(random_logits(batch, 3), batch, generator=torch.Generator().manual_seed(1))
    for graph in range(batch.num_graphs):
        rows = per_graph(TokenLogits(tokens.ligand, tokens.residue), batch, graph)
        assert set(rows.unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(rows.sum(0), torch.ones(3))
    assert not tokens.unconditional.any()
    assert tokens.num_tokens == 3


def test_gumbel_softmax_gradient_is_that_of_the_soft_sample(batch: ComplexBatch) -> None:
    logits = random_logits(batch, 2)
    ligand, residue = logits.ligand.requires_grad_(), logits.residue.requires_grad_()
    tokens = gumbel_softmax_tokens(logits, batch, temperature=0.7, generator=torch.Generator().manual_seed(3))
    weights = torch.randn(len(ligand) + len(residue), 2, generator=torch.Generator().manual_seed(4))
    (torch.cat([tokens.ligand, tokens.residue]) * weights).sum().backward()
    straight_through = torch.cat([ligand.grad, residue.grad])

    ligand.grad, residue.grad = None, None
    noise_generator = torch.Generator().manual_seed(3)  # the same Gumbel noise as above
    noise = -torch.log(-torch.log(torch.rand(len(ligand) + len(residue), 2, generator=noise_generator)))
    perturbed = (torch.cat([ligand, residue]) + noise) / 0.7
    soft = segment_softmax(TokenLogits(perturbed[: len(ligand)], perturbed[len(ligand) :]), batch)
    (torch.cat([soft.ligand, soft.residue]) * weights).sum().backward()
    torch.testing.assert_close(straight_through, torch.cat([ligand.grad, residue.grad]))
    assert straight_through.abs().sum() > 0


def test_sample_tokens_draws_from_the_scaled_softmax() -> None:
    """Frequencies over 4000 identical graphs match softmax(multiplier · logits) within 4 σ."""
    graphs = 4000
    batch = node_batch([2] * graphs, [3] * graphs)
    logits = torch.tensor([1.0, -0.5, 2.0, 0.0, 0.3])  # 2 atoms then 3 residues of every graph
    multiplier = 0.6
    scores = TokenLogits(logits[:2].repeat(graphs)[:, None], logits[2:].repeat(graphs)[:, None])
    tokens = sample_tokens(scores, batch, multiplier, generator=torch.Generator().manual_seed(0))
    counts = torch.cat([tokens.ligand.reshape(graphs, 2), tokens.residue.reshape(graphs, 3)], dim=1).sum(0)
    expected = torch.softmax(multiplier * logits, 0)
    frequency = counts / graphs
    tolerance = 4 * (expected * (1 - expected) / graphs).sqrt()
    assert torch.all((frequency - expected).abs() < tolerance), (frequency, expected)
    torch.testing.assert_close(counts.sum(), torch.tensor(float(graphs)))


def test_large_multiplier_takes_the_argmax(batch: ComplexBatch) -> None:
    logits = random_logits(batch, 2)
    tokens = sample_tokens(logits, batch, logit_multiplier=100.0)
    for graph in range(batch.num_graphs):
        rows = per_graph(TokenLogits(tokens.ligand, tokens.residue), batch, graph)
        torch.testing.assert_close(rows.argmax(0), per_graph(logits, batch, graph).argmax(0))


def test_token_nodes_number_nodes_within_graphs_ligand_first(batch: ComplexBatch) -> None:
    # graph 0: atoms 0-2, residues 3-4; graph 1: atom 0, residues 1-5; graph 2: atoms 0-3, residue 4
    ligand = torch.zeros(8, 2)
    residue = torch.zeros(8, 2)
    ligand[2, 0] = 1  # graph 0, atom 2
    residue[1, 1] = 1  # graph 0, residue 1 → node 4
    residue[4, 0] = 1  # graph 1, residue 2 → node 3
    ligand[4, 0] = ligand[7, 1] = 1  # graph 2: atoms 0 and 3
    tokens = LatentAssignment(ligand, residue, torch.zeros(3, dtype=torch.bool))
    expected = torch.tensor([[2, 4], [3, -1], [0, 3]])
    torch.testing.assert_close(tokens.token_nodes(batch), expected)


def test_null_assignment_and_dropout(batch: ComplexBatch) -> None:
    null = LatentAssignment.null(batch, 2)
    assert null.unconditional.all() and not null.ligand.any() and not null.residue.any()

    tokens = sample_tokens(random_logits(batch, 2), batch)
    kept = drop_latents(tokens, batch, droprate=0.0)
    torch.testing.assert_close(kept.ligand, tokens.ligand)
    assert not kept.unconditional.any()
    dropped = drop_latents(tokens, batch, droprate=1.0)
    assert dropped.unconditional.all() and not dropped.ligand.any() and not dropped.residue.any()


def test_dropout_rate_and_per_graph_consistency() -> None:
    graphs = 2000
    batch = node_batch([2] * graphs, [1] * graphs)
    tokens = sample_tokens(random_logits(batch, 2), batch)
    dropped = drop_latents(tokens, batch, droprate=0.1, generator=torch.Generator().manual_seed(5))
    rate = dropped.unconditional.double().mean().item()
    assert abs(rate - 0.1) < 4 * (0.1 * 0.9 / graphs) ** 0.5
    has_tokens = torch.zeros(graphs).index_add_(0, batch.atom_graph, dropped.ligand.sum(1))
    has_tokens.index_add_(0, batch.residue_graph, dropped.residue.sum(1))
    torch.testing.assert_close(has_tokens == 0, dropped.unconditional)


def test_mask_tokens_zeroes_only_unkept_columns(batch: ComplexBatch) -> None:
    tokens = sample_tokens(random_logits(batch, 2), batch)
    keep = torch.tensor([[True, False], [False, False], [True, True]])
    masked = mask_tokens(tokens, batch, keep)
    torch.testing.assert_close(masked.ligand, tokens.ligand * keep[batch.atom_graph])
    torch.testing.assert_close(masked.residue, tokens.residue * keep[batch.residue_graph])
    assert masked.token_nodes(batch)[1].tolist() == [-1, -1]


def test_copied_tokens_point_at_the_same_nodes_in_every_copy(batch: ComplexBatch) -> None:
    tokens = sample_tokens(random_logits(batch, 2), batch)
    tokens = LatentAssignment(tokens.ligand, tokens.residue, torch.tensor([False, True, False]))
    copy_of = torch.tensor([0, 0, 1, 2, 2, 2])
    copies = node_batch([3, 3, 1, 4, 4, 4], [2, 2, 5, 1, 1, 1])
    copied = copy_latents(tokens, batch, copy_of)
    assert torch.equal(copied.token_nodes(copies), tokens.token_nodes(batch)[copy_of])
    assert torch.equal(copied.unconditional, tokens.unconditional[copy_of])
    assert copied.ligand.shape == (len(copies.atom_graph), 2)
    assert copied.residue.shape == (len(copies.residue_graph), 2)
