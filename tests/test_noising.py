"""Forward noising of real training batches: the perturbed poses and the score targets."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from discodock.data.batch import ComplexBatch, collate
from discodock.data.cache import ComplexCache
from discodock.diffusion.noising import noise_batch, sample_training_pockets
from discodock.geometry.pose import apply_pose_updates, graph_mean, kabsch
from discodock.geometry.schedules import NoiseSchedule
from discodock.geometry.so3 import axis_angle_to_matrix

SCHEDULE = NoiseSchedule()


@pytest.fixture(scope="module")
def cache(example_cache: ComplexCache) -> ComplexCache:
    """Two small example complexes (108 and 109 residues, 3 rotatable bonds each)."""
    return example_cache.subset([example_cache.names.index(name) for name in ("6k05", "6moa")])


def batch_of(cache: ComplexCache, copies: int) -> ComplexBatch:
    return collate(cache, list(range(len(cache))), copies)


def wrap(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def dihedrals(pos: torch.Tensor, quads: torch.Tensor) -> torch.Tensor:
    """Signed IUPAC dihedral of (a, u, v, b) about u→v."""
    p0, p1, p2, p3 = (pos[quads[:, i]] for i in range(4))
    axis = torch.nn.functional.normalize(p2 - p1, dim=-1)
    first, last = p0 - p1, p3 - p2
    first = first - (first * axis).sum(-1, keepdim=True) * axis
    last = last - (last * axis).sum(-1, keepdim=True) * axis
    return torch.atan2((torch.linalg.cross(axis, first) * last).sum(-1), (first * last).sum(-1))


def torsion_quads(batch: ComplexBatch) -> torch.Tensor:
    """One dihedral (a, u, v, b) per rotatable bond: a another neighbour of u, b another neighbour of v."""
    bonds = batch.bond_index.T.tolist()
    neighbours: dict[int, list[int]] = {}
    for i, j in bonds:
        neighbours.setdefault(i, []).append(j)
    quads = []
    for u, v in batch.torsions.edges.tolist():
        a = next(n for n in neighbours[u] if n != v)
        b = next(n for n in neighbours[v] if n != u)
        quads.append((a, u, v, b))
    return torch.tensor(quads)


def test_translation_moves_the_centroid_by_delta_and_its_target_is_minus_delta_over_sigma_squared(
    cache: ComplexCache,
) -> None:
    batch = batch_of(cache, copies=16)
    noisy, noise = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(0))
    before = graph_mean(batch.matched_pos, batch.atom_graph, batch.num_graphs)
    after = graph_mean(noisy.ligand_pos, batch.atom_graph, batch.num_graphs)
    torch.testing.assert_close(after - before, noise.delta_tr, atol=2e-4, rtol=0)
    torch.testing.assert_close(noise.tr_score, -noise.delta_tr / SCHEDULE.tr.sigma(noise.t)[:, None] ** 2)
    # Δtr / σ_tr is standard normal.
    standardized = noise.delta_tr / noise.tr_sigma[:, None]
    assert abs(float(standardized.std()) - 1.0) < 0.25


def test_noisy_pose_is_the_clean_pose_moved_by_the_recorded_perturbation(cache: ComplexCache) -> None:
    batch = batch_of(cache, copies=4)
    noisy, noise = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(1))
    expected = apply_pose_updates(
        batch.matched_pos,
        batch.atom_graph,
        batch.num_graphs,
        noise.delta_tr,
        noise.delta_rot,
        noise.delta_tor,
        batch.torsions,
    )
    torch.testing.assert_close(noisy.ligand_pos, expected)
    assert noisy.matched_pos is batch.matched_pos
    assert not torch.allclose(noisy.ligand_pos, batch.matched_pos)


def test_every_rotatable_dihedral_changes_by_its_torsion_perturbation(cache: ComplexCache) -> None:
    batch = batch_of(cache, copies=8)
    noisy, noise = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(2))
    quads = torsion_quads(batch)
    change = wrap(dihedrals(noisy.ligand_pos, quads) - dihedrals(batch.matched_pos, quads))
    # The twist is right-handed about x_u − x_v (v → u), so the IUPAC dihedral about u → v decreases.
    torch.testing.assert_close(change, wrap(-noise.delta_tor), atol=2e-3, rtol=0)


def test_small_noise_rotation_is_the_recorded_rotation(cache: ComplexCache) -> None:
    """At tiny torsion noise the shape is almost unchanged, so Kabsch recovers R(Δr) about the centroid."""
    batch = batch_of(cache, copies=8)
    t = torch.full((batch.num_graphs,), 0.05)
    noisy, noise = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(3), t=t)
    rotation, _ = kabsch(batch.matched_pos, noisy.ligand_pos, batch.atom_graph, batch.num_graphs)
    torch.testing.assert_close(rotation, axis_angle_to_matrix(noise.delta_rot), atol=5e-3, rtol=0)


def log_igso3_series(omega: torch.Tensor, eps: float, terms: int = 400) -> torch.Tensor:
    """``ln f_ε(ω)`` of the code's IGSO(3) series (exponent ``l(l+1)ε²``), evaluated directly in float64."""
    degree = torch.arange(terms, dtype=torch.float64)[:, None]
    weights = (2 * degree + 1) * torch.exp(-degree * (degree + 1) * eps**2)
    series = (weights * torch.sin((degree + 0.5) * omega) / torch.sin(omega / 2)).sum(0)
    return torch.log(series)


def test_rotation_target_is_the_derivative_of_the_igso3_log_density(cache: ComplexCache) -> None:
    batch = batch_of(cache, copies=4)
    for time in (0.3, 0.6, 0.9):
        t = torch.full((batch.num_graphs,), time)
        _, noise = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(4), t=t)
        eps = float(SCHEDULE.rot.sigma(torch.tensor(time)))
        angle = noise.delta_rot.double().norm(dim=-1)
        step = 1e-4
        derivative = (log_igso3_series(angle + step, eps) - log_igso3_series(angle - step, eps)) / (2 * step)
        expected = derivative[:, None] * noise.delta_rot.double() / angle[:, None]
        # The target reads a table snapped to a log-ε grid of 0.5 % steps and interpolated in ω.
        torch.testing.assert_close(noise.rot_score.double(), expected, rtol=3e-2, atol=3e-2 / eps)


def test_torsion_target_is_the_derivative_of_the_wrapped_normal_log_density(cache: ComplexCache) -> None:
    batch = batch_of(cache, copies=8)
    _, noise = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(5))
    sigma = noise.tor_sigma[batch.torsions.graph].double()
    shifts = 2 * math.pi * torch.arange(-20, 21, dtype=torch.float64)

    def log_density(x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(-((x[:, None] + shifts) ** 2) / (2 * sigma[:, None] ** 2), dim=1)

    x, step = noise.delta_tor.double(), 1e-5
    expected = (log_density(x + step) - log_density(x - step)) / (2 * step)
    torch.testing.assert_close(noise.tor_score.double(), expected, rtol=1e-3, atol=1e-3)


def test_normalisers_belong_to_each_graph_noise_level(cache: ComplexCache) -> None:
    batch = batch_of(cache, copies=2)
    t = torch.linspace(0.1, 0.9, batch.num_graphs)
    _, noise = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(6), t=t)
    torch.testing.assert_close(noise.t, t)
    torch.testing.assert_close(noise.tr_sigma, SCHEDULE.tr.sigma(t))
    assert noise.tor_score_second_moment.shape == (batch.torsions.num_torsions,)
    # Larger noise, smaller scores: the normalisers decrease along the batch.
    assert (noise.rot_score_norm.diff() < 0).all()
    # Bonds are ordered by graph, and graphs by increasing t.
    assert (noise.tor_score_second_moment.diff() <= 0).all()
    assert noise.tor_score_second_moment[0] > noise.tor_score_second_moment[-1]


def test_same_generator_seed_gives_the_same_noise(cache: ComplexCache) -> None:
    batch = batch_of(cache, copies=2)
    first, _ = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(7))
    again, _ = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(7))
    other, _ = noise_batch(batch, SCHEDULE, torch.Generator().manual_seed(8))
    assert torch.equal(first.ligand_pos, again.ligand_pos)
    assert not torch.allclose(first.ligand_pos, other.ligand_pos)


def test_training_pockets_surround_the_ligand_with_the_inference_radius(cache: ComplexCache) -> None:
    index = torch.arange(len(cache)).repeat(200)
    batch = batch_of(cache, copies=200)  # same graphs in another order: compare per complex
    centroid = graph_mean(batch.crystal_pos, batch.atom_graph, batch.num_graphs)
    centroid = centroid.reshape(len(cache), 200, 3)[:, 0]
    exact = sample_training_pockets(cache, index, 1.0, 0.0, 20.0, torch.Generator().manual_seed(9))
    torch.testing.assert_close(exact[:, :3], centroid[index])
    single = batch_of(cache, copies=1)
    for complex_index in range(len(cache)):  # radius = margin + the conformer's largest atom distance
        conformer = single.conformer_pos[single.atom_graph == complex_index]
        radius = float((conformer - conformer.mean(dim=0)).norm(dim=1).max())
        assert float(exact[complex_index, 3]) == pytest.approx(20.0 + radius, abs=1e-4)
    jittered = sample_training_pockets(cache, index, 1.0, 3.0, 20.0, torch.Generator().manual_seed(9))
    assert abs(float((jittered[:, :3] - centroid[index]).std()) - 3.0) < 0.3


def test_training_pockets_crop_only_the_drawn_share(cache: ComplexCache) -> None:
    index = torch.arange(len(cache)).repeat(500)
    pockets = sample_training_pockets(cache, index, 0.3, 2.0, 20.0, torch.Generator().manual_seed(1))
    share = float(torch.isfinite(pockets[:, 3]).float().mean())
    assert abs(share - 0.3) < 0.05
    assert torch.all(sample_training_pockets(cache, index, 0.0, 2.0, 20.0)[:, 3] == torch.inf)


def test_noising_needs_the_clean_pose(cache: ComplexCache) -> None:
    batch = dataclasses.replace(batch_of(cache, copies=1), matched_pos=None)
    with pytest.raises(ValueError, match="clean"):
        noise_batch(batch, SCHEDULE)


@pytest.mark.parametrize("t", [0.05, 0.3, 0.6, 0.9])
def test_displacement_sigma_is_the_typical_rotation_and_torsion_displacement(
    cache: ComplexCache, t: float
) -> None:
    """``ρ²`` is within 35 % of the mean square centred displacement ``mean_i |d_i|²`` at every ``t``."""
    batch = batch_of(cache, 256)
    times = torch.full((batch.num_graphs,), t)
    _, noise = noise_batch(batch, NoiseSchedule(), torch.Generator().manual_seed(0), t=times)
    squared = noise.displacement.square().sum(-1, keepdim=True)
    mean_square = graph_mean(squared, batch.atom_graph, batch.num_graphs)[:, 0]
    ratio = float(mean_square.mean() / noise.displacement_sigma.square().mean())
    assert 0.65 < ratio < 1.35
