"""Tests of the trunk of the encoder, prior and confidence model (:mod:`discodock.model.trunk`)."""

from __future__ import annotations

import torch

from discodock.data.batch import collate
from discodock.data.cache import ComplexCache
from discodock.model.trunk import InteractionTrunk, ResidueEmbedding

from .conftest import double
from .test_score_model import moved, random_rotation


def trunk(cross_max_neighbors: int) -> InteractionTrunk:
    torch.manual_seed(0)
    return (
        InteractionTrunk(
            ns=8,
            nv=2,
            num_layers=3,
            ligand_radius=5.0,
            receptor_distance_max=30.0,
            cross_distance_max=30.0,
            cross_max_neighbors=cross_max_neighbors,
            distance_embed_dim=8,
            time_embed_dim=0,
            latent_tokens=0,
            dropout=0.0,
            update_residues_in_last_layer=True,
        )
        .double()
        .eval()
    )


def run(network: InteractionTrunk, batch) -> tuple[torch.Tensor, torch.Tensor]:
    cutoff = torch.full((batch.num_graphs,), 30.0, dtype=torch.float64)
    with torch.no_grad():
        return network(batch, batch.ligand_pos, cutoff, None, None)


def test_scalars_are_invariant_and_vectors_rotate(cache: ComplexCache, float64: None) -> None:
    network = trunk(cross_max_neighbors=24)
    batch = double(collate(cache, [0, 1]))
    rotation, shift = random_rotation(7), torch.tensor([1.0, -4.0, 9.0], dtype=torch.float64)
    ligand, residue = run(network, batch)
    moved_ligand, moved_residue = run(network, moved(batch, rotation, shift))
    scalars = network.scalars
    torch.testing.assert_close(scalars(moved_ligand), scalars(ligand), atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(scalars(moved_residue), scalars(residue), atol=1e-9, rtol=1e-7)
    vectors = slice(8, 8 + 2 * 3)  # the 2x1o block after 8x0e
    expected = (ligand[:, vectors].reshape(-1, 2, 3) @ rotation.T).flatten(1)
    torch.testing.assert_close(moved_ligand[:, vectors], expected, atol=1e-9, rtol=1e-7)


def test_cross_neighbour_cap_changes_what_atoms_see(cache: ComplexCache, float64: None) -> None:
    """With one residue per atom the ligand sees less of the pocket than with 24: different features."""
    batch = double(collate(cache, [0]))
    few, _ = run(trunk(cross_max_neighbors=1), batch)
    many, _ = run(trunk(cross_max_neighbors=24), batch)
    assert not torch.allclose(few, many)


def test_residue_embedding_vectors_follow_the_backbone(cache: ComplexCache, float64: None) -> None:
    torch.manual_seed(1)
    embedding = ResidueEmbedding(ns=4, nv=3).double()
    batch = double(collate(cache, [0]))
    rotation = random_rotation(3)
    scalars, vectors = embedding(batch)
    moved_scalars, moved_vectors = embedding(moved(batch, rotation, torch.zeros(3, dtype=torch.float64)))
    torch.testing.assert_close(moved_scalars, scalars)
    torch.testing.assert_close(moved_vectors, (vectors.reshape(-1, 3, 3) @ rotation.T).flatten(1))
