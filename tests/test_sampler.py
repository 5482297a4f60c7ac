"""Reverse-diffusion sampling: time grid, temperatures, reproducibility and an analytic Gaussian target."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from discodock.data.batch import ComplexBatch, collate
from discodock.data.cache import ComplexCache
from discodock.diffusion.sampler import (
    DISCO_DIFFDOCK_S_TEMPERATURES,
    ComponentTemperature,
    oracle_latents,
    prior_input_batch,
    prior_latents,
    sample_poses,
    time_grid,
    translation_step_shares,
)
from discodock.geometry.pose import TorsionIndex, graph_mean, kabsch, randomize_poses
from discodock.geometry.schedules import NoiseSchedule
from discodock.geometry.so3 import igso3_score, matrix_to_axis_angle
from discodock.model.config import EncoderConfig, PriorConfig, ScoreModelConfig
from discodock.model.latent_encoder import LatentEncoder
from discodock.model.latents import LatentAssignment
from discodock.model.prior import AutoregressivePrior
from discodock.model.score_model import ScoreModel, ScoreOutput

SCHEDULE = NoiseSchedule()
TINY_SCORE = ScoreModelConfig(ns=8, nv=2, num_conv_layers=2, distance_embed_dim=8, time_embed_dim=8)
TINY_ENCODER = EncoderConfig(ns=8, nv=2, num_conv_layers=2, distance_embed_dim=8, head_hidden_dim=16)


@pytest.fixture(scope="module")
def cache(example_cache: ComplexCache) -> ComplexCache:
    """Two small example complexes (3 rotatable bonds each)."""
    return example_cache.subset([example_cache.names.index(name) for name in ("6k05", "6moa")])


def batch_of(cache: ComplexCache, copies: int) -> ComplexBatch:
    return collate(cache, list(range(len(cache))), copies)


class GaussianTranslationScore:
    """Exact score of ligand centroids ``~ N(μ, s² I)`` noised by ``N(0, σ_tr(t)² I)``; zero rotation and
    torsion scores. Called like the score model."""

    def __init__(self, mean: torch.Tensor, std: float) -> None:
        self.mean, self.std = mean, std
        self.calls: list[LatentAssignment | None] = []

    def __call__(self, batch: ComplexBatch, t: torch.Tensor, latents: LatentAssignment | None) -> ScoreOutput:
        self.calls.append(latents)
        centroid = graph_mean(batch.ligand_pos, batch.atom_graph, batch.num_graphs)
        variance = self.std**2 + SCHEDULE.tr.sigma(t)[:, None] ** 2
        return ScoreOutput(
            tr=-(centroid - self.mean) / variance,
            rot=torch.zeros(batch.num_graphs, 3),
            tor=torch.zeros(batch.torsions.num_torsions),
        )


class RigidOracleScore:
    """The exact score of the forward kernel ``p_t(x | x₀)`` around one rigid target pose per graph:
    ``−(c − c₀)/σ_tr²`` for the centroid and the IGSO(3) score of the rotation taking ``x₀`` to ``x``."""

    def __init__(self, target: torch.Tensor) -> None:
        self.target = target

    def __call__(self, batch: ComplexBatch, t: torch.Tensor, latents: LatentAssignment | None) -> ScoreOutput:
        pos, graph, num_graphs = batch.ligand_pos, batch.atom_graph, batch.num_graphs
        offset = graph_mean(pos, graph, num_graphs) - graph_mean(self.target, graph, num_graphs)
        rotation, _ = kabsch(self.target, pos, graph, num_graphs)
        return ScoreOutput(
            tr=-offset / SCHEDULE.tr.sigma(t)[:, None] ** 2,
            rot=igso3_score(matrix_to_axis_angle(rotation), SCHEDULE.rot.sigma(t)),
            tor=torch.zeros(batch.torsions.num_torsions),
        )


def prior_sample(batch: ComplexBatch, seed: int) -> torch.Tensor:
    """The ``t = 1`` prior poses that :func:`sample_poses` starts from with a generator of this seed."""
    return randomize_poses(
        batch.conformer_pos,
        batch.atom_graph,
        batch.num_graphs,
        batch.torsions,
        SCHEDULE.tr.sigma_max,
        generator=torch.Generator().manual_seed(seed),
    )


def zero_score(batch: ComplexBatch, t: torch.Tensor, latents: LatentAssignment | None) -> ScoreOutput:
    return ScoreOutput(
        tr=torch.zeros(batch.num_graphs, 3),
        rot=torch.zeros(batch.num_graphs, 3),
        tor=torch.zeros(batch.torsions.num_torsions),
    )


def test_time_grid_of_twenty_steps_and_of_actual_steps() -> None:
    grid = time_grid(20)
    times = [t for t, _ in grid]
    assert times[0] == 1.0 and abs(times[-1] - 0.05) < 1e-12 and len(grid) == 20
    assert all(abs(dt - 0.05) < 1e-12 for _, dt in grid)
    assert abs(sum(dt for _, dt in grid) - 1.0) < 1e-12
    shortened = time_grid(20, actual_steps=18)
    assert len(shortened) == 18
    last_t, last_dt = shortened[-1]
    assert abs(last_t - 0.15) < 1e-12 and abs(last_dt - 0.15) < 1e-12  # jumps straight to t = 0
    with pytest.raises(ValueError):
        time_grid(20, actual_steps=21)


def test_temperature_is_identity_at_one_and_matches_the_released_effective_multipliers() -> None:
    assert ComponentTemperature(1.0, 2.0, 0.3).step_scales(SCHEDULE.tr, 0.5) == (1.0, 1.0)
    disco = DISCO_DIFFDOCK_S_TEMPERATURES
    # Drift multipliers λ + Tψ/2 derived in method.md §1.6 from the README flags.
    expected = {
        "tr": (disco.tr, SCHEDULE.tr, 2.3, 2.0),
        "rot": (disco.rot, SCHEDULE.rot, 5.6, 3.7),
        "tor": (disco.tor, SCHEDULE.tor, 7.0, 4.9),
    }
    for temperature, schedule, at_one, at_last in expected.values():
        assert abs(temperature.step_scales(schedule, 1.0)[0] - at_one) < 0.06
        assert abs(temperature.step_scales(schedule, 0.05)[0] - at_last) < 0.06
    assert abs(disco.tr.step_scales(SCHEDULE.tr, 0.5)[1] - 2.269) < 1e-9
    # λ → T where σ ≫ σ_d and → 1 where σ ≪ σ_d (ψ = 0).
    sharp = ComponentTemperature(sampling=3.0, psi=0.0, sigma_data=0.0)
    assert abs(sharp.step_scales(SCHEDULE.tr, 1.0)[0] - 3.0) < 0.05
    flat = ComponentTemperature(sampling=3.0, psi=0.0, sigma_data=1.0)
    assert abs(flat.step_scales(SCHEDULE.tr, 0.0)[0] - 1.0) < 0.01


def test_same_seed_same_poses_and_different_seeds_differ(cache: ComplexCache) -> None:
    torch.manual_seed(0)
    model = ScoreModel(TINY_SCORE).eval()
    encoder = LatentEncoder(TINY_ENCODER, TINY_SCORE.latent_tokens).eval()
    batch = batch_of(cache, copies=2)

    def run(seed: int) -> torch.Tensor:
        return sample_poses(
            model,
            batch,
            SCHEDULE,
            num_steps=4,
            latent_source=oracle_latents(encoder),
            temperatures=DISCO_DIFFDOCK_S_TEMPERATURES,
            generator=torch.Generator().manual_seed(seed),
        )

    first, again, other = run(1), run(1), run(2)
    assert first.shape == batch.conformer_pos.shape
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert not first.requires_grad


def test_gaussian_score_drives_the_centroids_to_the_target_distribution(cache: ComplexCache) -> None:
    batch = batch_of(cache, copies=200)
    mean, std = torch.tensor([4.0, -3.0, 2.0]), 1.5
    score = GaussianTranslationScore(mean, std)
    pos = sample_poses(score, batch, SCHEDULE, num_steps=20, generator=torch.Generator().manual_seed(3))
    centroid = graph_mean(pos, batch.atom_graph, batch.num_graphs)
    # 400 samples: the mean's standard error is 1.5/20 = 0.075 Å per axis.
    torch.testing.assert_close(centroid.mean(0), mean, atol=0.3, rtol=0)
    assert abs(float(centroid.std(0).mean()) - std) < 0.15
    assert len(score.calls) == 20 and all(latents is None for latents in score.calls)


def test_the_exact_rigid_score_brings_every_sample_back_to_its_target_pose(cache: ComplexCache) -> None:
    """Translation and rotation conventions of noising, pose updates and sampler agree: reverse diffusion
    with the exact conditional score of a rigid target ends on that target from any prior sample."""
    batch = batch_of(cache, copies=8)
    no_torsions = torch.zeros(0, dtype=torch.long)
    rigid = dataclasses.replace(
        batch,
        conformer_pos=batch.matched_pos,
        torsions=TorsionIndex(
            edges=torch.zeros(0, 2, dtype=torch.long),
            graph=no_torsions,
            rank=no_torsions,
            moving_torsion=no_torsions,
            moving_atom=no_torsions,
        ),
    )
    pos = sample_poses(
        RigidOracleScore(rigid.matched_pos),
        rigid,
        SCHEDULE,
        num_steps=20,
        generator=torch.Generator().manual_seed(8),
    )
    squared = (pos - rigid.matched_pos).square().sum(-1, keepdim=True)
    rmsd = graph_mean(squared, rigid.atom_graph, rigid.num_graphs)[:, 0].sqrt()
    assert rmsd.max() < 1.0, rmsd  # 0.1–0.7 Å: the σ_min noise and 20 Euler steps; a wrong sign gives > 5 Å


def test_without_final_noise_a_one_step_zero_score_run_returns_the_prior_sample(cache: ComplexCache) -> None:
    batch = batch_of(cache, copies=3)
    pos = sample_poses(zero_score, batch, SCHEDULE, num_steps=1, generator=torch.Generator().manual_seed(4))
    prior = prior_sample(batch, seed=4)
    torch.testing.assert_close(pos, prior)
    noisy = sample_poses(
        zero_score,
        batch,
        SCHEDULE,
        num_steps=1,
        final_step_noise=True,
        generator=torch.Generator().manual_seed(4),
    )
    assert not torch.allclose(noisy, prior)


def test_a_diverging_score_moves_poses_a_few_sigma_at_most(cache: ComplexCache) -> None:
    """Scores of 1e12 and NaN (an extrapolating network) give finite poses near the prior, not a crash."""
    batch = batch_of(cache, copies=2)

    def wild_score(batch: ComplexBatch, t: torch.Tensor, latents: LatentAssignment | None) -> ScoreOutput:
        huge = torch.full((batch.num_graphs, 3), 1e12)
        huge[0] = torch.nan
        return ScoreOutput(tr=huge, rot=-huge, tor=torch.full((batch.torsions.num_torsions,), torch.nan))

    generator = torch.Generator().manual_seed(5)
    pos = sample_poses(wild_score, batch, SCHEDULE, num_steps=20, generator=generator)
    assert torch.isfinite(pos).all()
    prior = prior_sample(batch, seed=5)
    shift = (graph_mean(pos, batch.atom_graph, 4) - graph_mean(prior, batch.atom_graph, 4)).norm(dim=-1)
    # Each step moves a centroid by at most SCORE_TRUST_LIMIT σ_tr g² Δt (plus noise): a few hundred Å
    # over the whole run, never the 1e12 · g² Δt the raw score asks for.
    assert float(shift.max()) < 1000.0
    assert float(shift[0]) < float(shift[1:].max())  # the NaN graph only diffuses


def test_translation_step_shares_remove_exactly_the_variance_below_the_prior_spread() -> None:
    steps = time_grid(20)

    def sigma(t: float) -> float:
        return float(SCHEDULE.tr.sigma(torch.tensor(t, dtype=torch.float64)))

    drops = torch.tensor([sigma(t) ** 2 - sigma(t - dt) ** 2 for t, dt in steps], dtype=torch.float64)
    spreads = torch.tensor([19.0, 50.0, 5.0, 0.5], dtype=torch.float64)
    shares = translation_step_shares(SCHEDULE.tr, steps, spreads)
    assert shares.shape == (20, 4) and bool(((shares >= 0) & (shares <= 1 + 1e-12)).all())
    torch.testing.assert_close(shares[:, :2], torch.ones(20, 2, dtype=torch.float64))  # σ_p ≥ σ_max: plain
    above = torch.tensor([sigma(t - dt) >= 5.0 for t, dt in steps])
    assert bool(above.any()) and bool((shares[above, 2] == 0).all())  # no step while σ(t) ≥ σ_p
    # the steps together remove the prior's variance down to σ_min², no more
    torch.testing.assert_close(
        (shares * drops[:, None]).sum(0)[2:], spreads[2:] ** 2 - SCHEDULE.tr.sigma_min**2
    )


def test_a_pocket_prior_spread_narrows_the_start_and_holds_the_translation_while_sigma_is_above_it(
    cache: ComplexCache,
) -> None:
    batch = batch_of(cache, copies=3)
    center = torch.full((batch.num_graphs, 3), 3.0)
    spread = torch.tensor([2.0, 19.0] * 3)
    narrow = spread < 19

    def centroid_offsets(actual_steps: int, prior_sigma_tr: torch.Tensor | None) -> torch.Tensor:
        pos = sample_poses(
            zero_score,
            batch,
            SCHEDULE,
            num_steps=20,
            actual_steps=actual_steps,
            prior_center=center,
            prior_sigma_tr=prior_sigma_tr,
            generator=torch.Generator().manual_seed(6),
        )
        return graph_mean(pos, batch.atom_graph, batch.num_graphs) - center

    plain_start, start = centroid_offsets(1, None), centroid_offsets(1, spread)
    torch.testing.assert_close(start, plain_start * (spread / 19.0)[:, None])
    # 5 steps: t = 1 … 0.8, σ_tr ≥ 6.6 Å > 2 Å until the last, noise-free jump: narrow graphs have not moved
    moved = (centroid_offsets(5, spread) - start).norm(dim=-1)
    assert float(moved[narrow].max()) < 1e-4 and float(moved[~narrow].min()) > 1.0


def test_prior_centre_shifts_every_start_by_its_centre(cache: ComplexCache) -> None:
    batch = batch_of(cache, copies=3)
    center = torch.randn(batch.num_graphs, 3, generator=torch.Generator().manual_seed(5)) * 10
    plain = sample_poses(zero_score, batch, SCHEDULE, num_steps=1, generator=torch.Generator().manual_seed(6))
    shifted = sample_poses(
        zero_score,
        batch,
        SCHEDULE,
        num_steps=1,
        prior_center=center,
        generator=torch.Generator().manual_seed(6),
    )
    torch.testing.assert_close(shifted - plain, center[batch.atom_graph], atol=1e-4, rtol=0)


def test_latents_are_drawn_once_per_graph_and_reused_at_every_step(cache: ComplexCache) -> None:
    torch.manual_seed(7)
    encoder = LatentEncoder(TINY_ENCODER, 2).eval()
    batch = batch_of(cache, copies=4)
    score = GaussianTranslationScore(torch.zeros(3), 1.0)
    sample_poses(
        score,
        batch,
        SCHEDULE,
        num_steps=3,
        latent_source=oracle_latents(encoder),
        generator=torch.Generator().manual_seed(8),
    )
    first = score.calls[0]
    assert first is not None and all(latents is first for latents in score.calls)
    nodes = first.token_nodes(batch)
    assert nodes.shape == (batch.num_graphs, 2) and (nodes >= 0).all()
    assert not first.unconditional.any()


def test_prior_tokens_are_one_hot_per_graph(cache: ComplexCache) -> None:
    torch.manual_seed(9)
    prior = AutoregressivePrior(
        PriorConfig(ns=8, nv=2, num_conv_layers=2, head_hidden_dim=16), TINY_SCORE.latent_tokens
    ).eval()
    batch = batch_of(cache, copies=3)
    tokens = prior_latents(prior)(batch, torch.Generator().manual_seed(10))
    graph = torch.cat([batch.atom_graph, batch.residue_graph])
    per_graph = torch.zeros(batch.num_graphs, 2).index_add_(
        0, graph, torch.cat([tokens.ligand, tokens.residue])
    )
    torch.testing.assert_close(per_graph, torch.ones_like(per_graph))


def test_prior_input_is_the_conformer_at_the_origin_in_a_random_orientation(cache: ComplexCache) -> None:
    batch = batch_of(cache, copies=2)
    moved = prior_input_batch(batch, torch.Generator().manual_seed(11)).ligand_pos
    centroid = graph_mean(moved, batch.atom_graph, batch.num_graphs)
    torch.testing.assert_close(centroid, torch.zeros_like(centroid), atol=1e-4, rtol=0)
    # Only a rigid motion: every internal distance of every graph is kept.
    same_graph = batch.atom_graph[:, None] == batch.atom_graph[None, :]
    torch.testing.assert_close(
        pairwise_distances(moved)[same_graph],
        pairwise_distances(batch.conformer_pos)[same_graph],
        atol=1e-4,
        rtol=0,
    )


def pairwise_distances(pos: torch.Tensor) -> torch.Tensor:
    return (pos[:, None] - pos[None, :]).norm(dim=-1)
