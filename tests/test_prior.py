"""Tests of the autoregressive token prior (:mod:`discodock.model.prior`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from discodock.data.batch import ComplexBatch, collate
from discodock.data.cache import ComplexCache
from discodock.model.config import ModelConfig
from discodock.model.latents import LatentAssignment, TokenLogits, sample_tokens
from discodock.model.prior import AutoregressivePrior

REPO = Path(__file__).resolve().parents[1]


def prior_for(config: ModelConfig, seed: int = 0) -> AutoregressivePrior:
    torch.manual_seed(seed)
    return AutoregressivePrior(config.prior, config.score.latent_tokens).eval()


def random_tokens(batch: ComplexBatch, seed: int) -> LatentAssignment:
    generator = torch.Generator().manual_seed(seed)
    dtype = batch.ligand_pos.dtype
    logits = TokenLogits(
        torch.randn(len(batch.atom_graph), 2, generator=generator, dtype=dtype),
        torch.randn(len(batch.residue_graph), 2, generator=generator, dtype=dtype),
    )
    return sample_tokens(logits, batch, generator=generator)


def graph_sums(values: TokenLogits, batch: ComplexBatch) -> torch.Tensor:
    total = torch.zeros(batch.num_graphs, values.ligand.shape[1], dtype=values.ligand.dtype)
    return total.index_add(0, batch.atom_graph, values.ligand).index_add(
        0, batch.residue_graph, values.residue
    )


def test_log_probs_are_normalised_over_each_graph(cache: ComplexCache, config: ModelConfig) -> None:
    prior = prior_for(config)
    batch = collate(cache, [0, 1])
    with torch.no_grad():
        log_probs = prior.log_probs(batch, random_tokens(batch, seed=0), position=torch.tensor([0, 1]))
    assert log_probs.ligand.shape == (len(batch.atom_graph), 1)
    probabilities = TokenLogits(log_probs.ligand.exp(), log_probs.residue.exp())
    torch.testing.assert_close(graph_sums(probabilities, batch), torch.ones(2, 1))


def test_log_probs_are_invariant_to_moving_the_complex(cache: ComplexCache, config: ModelConfig) -> None:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        prior = prior_for(config)
        batch = collate(cache, [0, 1])
        floating = (
            "residue_pos",
            "residue_frame",
            "ligand_pos",
            "conformer_pos",
            "crystal_pos",
            "matched_pos",
        )
        batch = dataclasses.replace(batch, **{name: getattr(batch, name).double() for name in floating})
        q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(3)))
        rotation = q * torch.sign(torch.diagonal(r))
        rotation = rotation * torch.sign(torch.det(rotation))
        shift = torch.tensor([1.0, -4.0, 6.0])
        moved = dataclasses.replace(
            batch,
            residue_pos=batch.residue_pos @ rotation.T + shift,
            residue_frame=batch.residue_frame @ rotation.T,
            ligand_pos=batch.ligand_pos @ rotation.T + shift,
        )
        context = random_tokens(batch, seed=1)
        with torch.no_grad():
            log_probs, moved_log_probs = (
                prior.log_probs(batch, context, 1),
                prior.log_probs(moved, context, 1),
            )
        torch.testing.assert_close(moved_log_probs.ligand, log_probs.ligand, atol=1e-9, rtol=1e-7)
        torch.testing.assert_close(moved_log_probs.residue, log_probs.residue, atol=1e-9, rtol=1e-7)
    finally:
        torch.set_default_dtype(previous)


def test_each_position_sees_only_the_tokens_before_it(cache: ComplexCache, config: ModelConfig) -> None:
    prior = prior_for(config)
    batch = collate(cache, [0, 1])
    first, second = random_tokens(batch, seed=4), random_tokens(batch, seed=5)
    first_token_swapped = LatentAssignment(
        torch.stack([second.ligand[:, 0], first.ligand[:, 1]], 1),
        torch.stack([second.residue[:, 0], first.residue[:, 1]], 1),
        first.unconditional,
    )
    second_token_swapped = LatentAssignment(
        torch.stack([first.ligand[:, 0], second.ligand[:, 1]], 1),
        torch.stack([first.residue[:, 0], second.residue[:, 1]], 1),
        first.unconditional,
    )
    with torch.no_grad():
        # position 0 ignores every token; position 1 reads token 0 only
        torch.testing.assert_close(
            prior.log_probs(batch, first, 0).ligand, prior.log_probs(batch, second, 0).ligand
        )
        torch.testing.assert_close(
            prior.log_probs(batch, second_token_swapped, 1).ligand, prior.log_probs(batch, first, 1).ligand
        )
        assert not torch.allclose(
            prior.log_probs(batch, first_token_swapped, 1).ligand, prior.log_probs(batch, first, 1).ligand
        )
        # the two positions have their own heads
        assert not torch.allclose(
            prior.log_probs(batch, first, 0).ligand, prior.log_probs(batch, first, 1).ligand
        )


def test_sampling_gives_one_token_per_graph_and_is_reproducible(
    cache: ComplexCache, config: ModelConfig
) -> None:
    prior = prior_for(config)
    batch = collate(cache, [0, 1], copies=3)
    tokens = prior.sample(batch, generator=torch.Generator().manual_seed(7))
    assert not tokens.unconditional.any()
    chosen = tokens.token_nodes(batch)
    assert chosen.shape == (6, 2) and (chosen >= 0).all()
    per_graph = graph_sums(TokenLogits(tokens.ligand, tokens.residue), batch)
    torch.testing.assert_close(per_graph, torch.ones(6, 2))
    again = prior.sample(batch, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(again.token_nodes(batch), chosen)


def test_greedy_sampling_follows_the_most_likely_path(cache: ComplexCache, config: ModelConfig) -> None:
    prior = prior_for(config)
    batch = collate(cache, [1])
    tokens = prior.sample(batch, logit_multiplier=100.0)
    with torch.no_grad():
        first = prior.log_probs(batch, tokens, 0)
        second = prior.log_probs(batch, tokens, 1)
    chosen = tokens.token_nodes(batch)[0]
    for position, log_probs in enumerate((first, second)):
        assert torch.cat([log_probs.ligand, log_probs.residue])[:, 0].argmax() == chosen[position]


def test_loss_trains_trunk_and_heads_but_not_the_targets(cache: ComplexCache, config: ModelConfig) -> None:
    prior = prior_for(config).train()
    batch = collate(cache, [0, 1])
    generator = torch.Generator().manual_seed(8)
    encoder_logits = TokenLogits(
        torch.randn(len(batch.atom_graph), 2, generator=generator, requires_grad=True),
        torch.randn(len(batch.residue_graph), 2, generator=generator),
    )
    loss = prior.loss(batch, encoder_logits, generator=generator)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert prior.trunk.atom_embedding.table.weight.grad.abs().sum() > 0
    assert prior.trunk.residue_embedding.frame_mixing.grad.abs().sum() > 0
    assert (
        prior.ligand_head[0].weight.grad.abs().sum() > 0 and prior.residue_head[0].weight.grad.abs().sum() > 0
    )
    assert encoder_logits.ligand.grad is None  # the encoder's targets are constants


def test_loss_is_the_cross_entropy_against_the_encoder_distribution(
    cache: ComplexCache, config: ModelConfig
) -> None:
    """With one token and sharp encoder logits the loss is −log p of the encoder's node, per graph."""
    config = dataclasses.replace(config, score=dataclasses.replace(config.score, latent_tokens=1))
    prior = prior_for(config)
    batch = collate(cache, [0, 1])
    encoder_logits = TokenLogits(
        torch.full((len(batch.atom_graph), 1), -1e4), torch.zeros(len(batch.residue_graph), 1)
    )
    target_atoms = torch.tensor([3, 40])  # an atom of each graph
    encoder_logits.ligand[target_atoms] = 1e4
    with torch.no_grad():
        loss = prior.loss(batch, encoder_logits)
        log_probs = prior.log_probs(batch, LatentAssignment.null(batch, 1), 0)
    torch.testing.assert_close(loss, -log_probs.ligand[target_atoms, 0].mean())


def test_prior_needs_tokens(config: ModelConfig) -> None:
    with pytest.raises(ValueError, match="latent_tokens"):
        AutoregressivePrior(config.prior, 0)
