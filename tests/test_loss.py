"""The σ-normalised score-matching loss on real noised batches."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from discodock.data.batch import ComplexBatch, collate
from discodock.data.cache import ComplexCache
from discodock.diffusion.loss import LOSS_TERMS, LossWeights, score_matching_loss
from discodock.diffusion.noising import NoiseSample, noise_batch
from discodock.geometry.schedules import NoiseSchedule
from discodock.model.score_model import ScoreOutput

SCHEDULE = NoiseSchedule()


@pytest.fixture(scope="module")
def cache(example_cache: ComplexCache) -> ComplexCache:
    """A small complex (3 rotatable bonds) and a large one (11)."""
    return example_cache.subset([example_cache.names.index(name) for name in ("6moa", "1a0q")])


def noised(cache: ComplexCache, copies: int, seed: int) -> tuple[ComplexBatch, NoiseSample]:
    batch = collate(cache, list(range(len(cache))), copies)
    _, noise = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(seed))
    return batch, noise


def exact(noise: NoiseSample) -> ScoreOutput:
    return ScoreOutput(
        tr=noise.tr_score.clone(),
        rot=noise.rot_score.clone(),
        tor=noise.tor_score.clone(),
        displacement=noise.displacement.clone(),
    )


def test_loss_is_zero_for_exact_scores_and_positive_otherwise(cache: ComplexCache) -> None:
    _, noise = noised(cache, copies=2, seed=0)
    losses = score_matching_loss(exact(noise), noise)
    assert set(losses) == set(LOSS_TERMS)
    for value in losses.values():
        assert float(value) == 0.0
    terms = {"tr": "tr", "rot": "rot", "tor": "tor", "disp": "displacement"}
    for component, field in terms.items():
        prediction = exact(noise)
        getattr(prediction, field)[0] += 0.1
        perturbed = score_matching_loss(prediction, noise)
        assert float(perturbed[component]) > 0 and float(perturbed["loss"]) > 0
        others = set(terms) - {component}
        assert all(float(perturbed[name]) == 0.0 for name in others)


def test_each_term_is_normalised_by_its_noise_scale(cache: ComplexCache) -> None:
    """A zero prediction costs ``E[σ² s_tr²] = 1``, ``E[(s_rot/N_rot)²] = π/3`` (the /π inside N_rot) and
    ``E[s_tor²/E[s²]] = 1`` per component, at every noise level."""
    _, noise = noised(cache, copies=300, seed=1)
    zero = ScoreOutput(
        tr=torch.zeros_like(noise.tr_score),
        rot=torch.zeros_like(noise.rot_score),
        tor=torch.zeros_like(noise.tor_score),
        displacement=torch.zeros_like(noise.displacement),
    )
    losses = score_matching_loss(zero, noise)
    assert abs(float(losses["tr"]) - 1.0) < 0.1
    assert abs(float(losses["rot"]) - math.pi / 3) < 0.15
    assert abs(float(losses["tor"]) - 1.0) < 0.1
    # ρ is the typical, not the drawn, displacement: a zero prediction costs E|d|²/ρ² of order one.
    squared = noise.displacement.square().sum(-1)
    per_graph = torch.zeros(len(noise.t)).index_add_(0, noise.atom_graph, squared)
    counts = torch.bincount(noise.atom_graph)
    expected = (per_graph / counts / noise.displacement_sigma.square()).mean()
    torch.testing.assert_close(losses["disp"], expected)
    assert 0.2 < float(losses["disp"]) < 2.0


def test_displacement_target_is_the_centred_way_back_to_the_clean_pose(cache: ComplexCache) -> None:
    """Adding the target to the centred noisy pose gives the centred clean pose, atom by atom."""
    batch, _ = noised(cache, copies=2, seed=5)
    noisy, noise = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(5))

    def centred(pos: torch.Tensor) -> torch.Tensor:
        centroids = torch.stack([pos[batch.atom_graph == b].mean(0) for b in range(batch.num_graphs)])
        return pos - centroids[batch.atom_graph]

    torch.testing.assert_close(centred(noisy.ligand_pos) + noise.displacement, centred(batch.matched_pos))
    assert float(noise.displacement.norm(dim=-1).max()) > 0.5


def test_loss_needs_the_displacements(cache: ComplexCache) -> None:
    _, noise = noised(cache, copies=1, seed=6)
    with pytest.raises(ValueError, match="displacement"):
        score_matching_loss(dataclasses.replace(exact(noise), displacement=None), noise)


def test_torsion_term_is_pooled_over_all_bonds_of_the_batch(cache: ComplexCache) -> None:
    batch, noise = noised(cache, copies=1, seed=2)
    # Error 1 (in normalised units) on the small ligand's 3 bonds, 0 on the large one's 11:
    # the pooled mean is 3/14, not the mean of per-complex means (1 + 0)/2.
    error = (batch.torsions.graph == 0).float() * noise.tor_score_second_moment.sqrt()
    prediction = dataclasses.replace(exact(noise), tor=noise.tor_score + error)
    losses = score_matching_loss(prediction, noise)
    counts = torch.bincount(batch.torsions.graph)
    torch.testing.assert_close(losses["tor"], counts[0] / counts.sum())


def test_total_is_the_weighted_sum_of_the_components(cache: ComplexCache) -> None:
    _, noise = noised(cache, copies=2, seed=3)
    prediction = ScoreOutput(
        tr=noise.tr_score * 0.5,
        rot=noise.rot_score * 2.0,
        tor=noise.tor_score - 1.0,
        displacement=noise.displacement * 0.5,
    )
    losses = score_matching_loss(prediction, noise)
    terms = losses["tr"] + losses["rot"] + losses["tor"] + losses["disp"]
    torch.testing.assert_close(losses["loss"], 0.33 * terms)
    weighted = score_matching_loss(prediction, noise, LossWeights(tr=1.0, rot=0.0, tor=2.0, disp=3.0))
    torch.testing.assert_close(weighted["loss"], losses["tr"] + 2.0 * losses["tor"] + 3.0 * losses["disp"])


def test_batch_without_rotatable_bonds_has_zero_torsion_term(cache: ComplexCache) -> None:
    _, noise = noised(cache, copies=1, seed=4)
    no_bonds = dataclasses.replace(
        noise,
        delta_tor=noise.delta_tor[:0],
        tor_score=noise.tor_score[:0],
        tor_score_second_moment=noise.tor_score_second_moment[:0],
    )
    prediction = dataclasses.replace(exact(noise), tor=noise.tor_score[:0], tr=noise.tr_score + 1.0)
    losses = score_matching_loss(prediction, no_bonds)
    assert float(losses["tor"]) == 0.0
    assert math.isfinite(float(losses["loss"])) and float(losses["loss"]) > 0
