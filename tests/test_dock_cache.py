"""Docking a cache for the confidence model (:mod:`discodock.inference.dock_cache`, ``dock-cache``)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from discodock.cli import main
from discodock.data.cache import ComplexCache
from discodock.data.docked_poses import DockedPoses
from discodock.inference.dock_cache import dock_cache
from discodock.inference.networks import DockingNetworks, SamplingOptions
from discodock.training.config import TrainConfig
from discodock.training.trainer import batch_of, pose_rmsd

from .test_docking import make_test_checkpoint, one_thread  # noqa: F401

SAMPLES = 2
OPTIONS = SamplingOptions(steps=2, seed=3, graphs_per_batch=8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="module")
def networks(checkpoint: Path) -> DockingNetworks:
    return DockingNetworks.load(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def docked(networks: DockingNetworks, cache: ComplexCache) -> DockedPoses:
    return dock_cache(networks, cache, SAMPLES, OPTIONS, complexes_per_call=1, progress=False)


def test_blind_poses_are_those_of_sampling_each_chunk(
    networks: DockingNetworks, cache: ComplexCache, docked: DockedPoses
) -> None:
    """Each chunk's blind samples are exactly those of sampling that chunk (batches are seeded by content)."""
    options = dataclasses.replace(OPTIONS, samples=SAMPLES)
    sample = torch.arange(SAMPLES)
    for c in range(len(cache)):
        blind = networks.sample(cache.subset([c]), torch.zeros(1, 3), options)
        assert torch.equal(docked.poses[docked.pose_rows(torch.full_like(sample, c), sample)], blind.poses)
        assert torch.equal(docked.confidences[c, :SAMPLES], blind.confidences)


def test_pocket_poses_start_near_their_pocket_and_are_ranked_on_the_cropped_receptor(
    networks: DockingNetworks, cache: ComplexCache, docked: DockedPoses
) -> None:
    """The stored confidences are the networks' logits on the receptor crop of :meth:`DockedPoses.crops`."""
    assert docked.names == cache.names and docked.samples == SAMPLES and docked.steps == OPTIONS.steps
    crystal_centroid = torch.stack(
        [pos.mean(0) for pos in cache.fields["crystal_pos"].split(docked.atoms.tolist())]
    )
    assert (docked.pockets[:, :3] - crystal_centroid).norm(dim=1).max() < 10.0  # 2 Å jitter, 3 dimensions
    assert torch.isfinite(docked.pockets[:, 3]).all()
    graphs = torch.arange(len(cache)).repeat_interleave(2 * SAMPLES)
    sample = torch.arange(2 * SAMPLES).repeat(len(cache))
    crops = docked.crops(graphs, sample)
    assert torch.isinf(crops[sample < SAMPLES, 3]).all() and torch.isfinite(crops[sample >= SAMPLES, 3]).all()
    batch = batch_of(cache, graphs, 1, networks.score_model.config, crops)
    poses = batch.with_ligand_pos(docked.poses[docked.pose_rows(graphs, sample)])
    assert networks.confidence is not None
    with torch.no_grad():
        logits = networks.confidence(poses)
    torch.testing.assert_close(logits.view(len(cache), -1), docked.confidences, atol=1e-4, rtol=1e-4)
    rmsd = pose_rmsd(poses.ligand_pos, poses.crystal_pos, poses.atom_graph, poses.num_graphs)
    assert torch.isfinite(rmsd).all()


def test_dock_cache_command_writes_shards_that_join_into_the_whole_cache(
    checkpoint: Path, cache: ComplexCache, tmp_path: Path
) -> None:
    cache_path = tmp_path / "two.cache.pt"
    cache.save(cache_path)
    runner = CliRunner()
    common = ["dock-cache", "--cache", str(cache_path), "--checkpoint", str(checkpoint), "--samples", "1"]
    common += ["--steps", "2", "--device", "cpu", "--quiet"]
    for shard in ("0/2", "1/2"):
        result = runner.invoke(main, [*common, "--shard", shard, "-o", str(tmp_path / f"part-{shard[0]}.pt")])
        assert result.exit_code == 0, result.output
        assert "docked 1 complexes × 2 poses" in result.output
    joined = DockedPoses.for_cache(sorted(tmp_path.glob("part-*.pt")), cache)
    assert joined.names == cache.names and joined.poses.shape == (2 * int(joined.atoms.sum()), 3)
    assert DockedPoses.read(tmp_path / "part-0.pt").names != DockedPoses.read(tmp_path / "part-1.pt").names

    bad = runner.invoke(main, [*common, "--shard", "2/2", "-o", str(tmp_path / "x.pt")])
    assert bad.exit_code != 0 and "--shard" in bad.output
    missing = runner.invoke(
        main, ["dock-cache", "--cache", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "x.pt")]
    )
    assert missing.exit_code == 1 and "nope.pt: cache file not found" in missing.output


def test_dock_cache_command_defaults_are_the_training_pockets_and_the_api_defaults() -> None:
    """The CLI states its defaults as literals (importing them loads torch at start-up): keep them equal to
    ``dock_cache``'s and to the training pockets (``train.pocket_jitter``, ``train.pocket_margin``)."""
    options = {param.name: param.default for param in main.commands["dock-cache"].params}
    signature = inspect.signature(dock_cache).parameters
    train = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    assert options["pocket_jitter"] == signature["pocket_jitter"].default == train["pocket_jitter"]
    assert options["pocket_margin"] == signature["pocket_margin"].default == train["pocket_margin"]
    assert options["pocket_sigma"] == SamplingOptions().pocket_sigma
    assert (options["steps"], options["seed"]) == (SamplingOptions().steps, SamplingOptions().seed)
