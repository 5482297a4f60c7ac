"""Tests of the latent encoder (:mod:`discodock.model.latent_encoder`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from discodock.data.batch import collate
from discodock.data.cache import ComplexCache
from discodock.model.config import ModelConfig
from discodock.model.latent_encoder import LatentEncoder
from discodock.model.latents import TokenLogits, gumbel_softmax_tokens
from discodock.model.score_model import ScoreModel

from .conftest import double

REPO = Path(__file__).resolve().parents[1]


def encoder_for(config: ModelConfig, seed: int = 0) -> LatentEncoder:
    torch.manual_seed(seed)
    return LatentEncoder(config.encoder, config.score.latent_tokens).eval()


def test_logits_have_one_column_per_token(cache: ComplexCache, config: ModelConfig) -> None:
    batch = collate(cache, [0, 1])
    with torch.no_grad():
        logits = encoder_for(config)(batch)
    assert logits.ligand.shape == (len(batch.atom_graph), 2)
    assert logits.residue.shape == (len(batch.residue_graph), 2)


def test_logits_are_invariant_to_moving_the_complex(
    cache: ComplexCache, config: ModelConfig, float64: None
) -> None:
    encoder = encoder_for(config)
    batch = double(collate(cache, [0, 1]))
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))
    rotation = q * torch.sign(torch.diagonal(r))
    rotation = rotation * torch.sign(torch.det(rotation))
    shift = torch.tensor([-5.0, 2.0, 9.0])
    moved = dataclasses.replace(
        batch,
        residue_pos=batch.residue_pos @ rotation.T + shift,
        residue_frame=batch.residue_frame @ rotation.T,
        crystal_pos=batch.crystal_pos @ rotation.T + shift,
    )
    with torch.no_grad():
        logits, moved_logits = encoder(batch), encoder(moved)
    torch.testing.assert_close(moved_logits.ligand, logits.ligand, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(moved_logits.residue, logits.residue, atol=1e-9, rtol=1e-7)


def test_encoder_reads_the_crystal_pose_only(cache: ComplexCache, config: ModelConfig) -> None:
    encoder = encoder_for(config)
    batch = collate(cache, [0])
    with torch.no_grad():
        logits = encoder(batch)
        other_current_pose = encoder(batch.with_ligand_pos(batch.ligand_pos + 10.0))
        other_crystal_pose = encoder(dataclasses.replace(batch, crystal_pos=batch.conformer_pos))
    torch.testing.assert_close(other_current_pose.ligand, logits.ligand)
    assert not torch.allclose(other_crystal_pose.ligand, logits.ligand)
    with pytest.raises(ValueError, match="crystal poses"):
        encoder(dataclasses.replace(batch, crystal_pos=None))


def test_permuting_ligand_atoms_permutes_their_logits(
    cache: ComplexCache, config: ModelConfig, float64: None
) -> None:
    encoder = encoder_for(config)
    batch = double(collate(cache, [1]))
    permutation = torch.randperm(len(batch.atom_graph), generator=torch.Generator().manual_seed(2))
    new_index = torch.argsort(permutation)
    permuted = dataclasses.replace(
        batch,
        atom_features=batch.atom_features[permutation],
        crystal_pos=batch.crystal_pos[permutation],
        bond_index=new_index[batch.bond_index],
    )
    with torch.no_grad():
        logits, permuted_logits = encoder(batch), encoder(permuted)
    torch.testing.assert_close(permuted_logits.ligand, logits.ligand[permutation], atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(permuted_logits.residue, logits.residue, atol=1e-9, rtol=1e-7)


def test_batched_equals_one_at_a_time(cache: ComplexCache, config: ModelConfig, float64: None) -> None:
    encoder = encoder_for(config)
    with torch.no_grad():
        together = encoder(double(collate(cache, [0, 1])))
        apart = [encoder(double(collate(cache, [index]))) for index in (0, 1)]
    expected = TokenLogits(
        torch.cat([logits.ligand for logits in apart]), torch.cat([logits.residue for logits in apart])
    )
    torch.testing.assert_close(together.ligand, expected.ligand, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(together.residue, expected.residue, atol=1e-9, rtol=1e-7)


def test_denoising_loss_reaches_the_encoder_through_straight_through_tokens(
    cache: ComplexCache, config: ModelConfig
) -> None:
    torch.manual_seed(0)
    encoder = LatentEncoder(config.encoder, config.score.latent_tokens).train()
    score_model = ScoreModel(config.score).train()
    batch = collate(cache, [0, 1])
    tokens = gumbel_softmax_tokens(encoder(batch), batch, generator=torch.Generator().manual_seed(1))
    output = score_model(batch, torch.tensor([0.5, 0.2]), tokens)
    (output.tr.square().sum() + output.rot.square().sum() + output.tor.square().sum()).backward()
    head_gradient = encoder.ligand_head[0].weight.grad
    trunk_gradient = encoder.trunk.atom_embedding.table.weight.grad
    assert head_gradient is not None and head_gradient.abs().sum() > 0
    assert trunk_gradient is not None and trunk_gradient.abs().sum() > 0


def test_encoder_needs_tokens(config: ModelConfig) -> None:
    with pytest.raises(ValueError, match="latent_tokens"):
        LatentEncoder(config.encoder, latent_tokens=0)
