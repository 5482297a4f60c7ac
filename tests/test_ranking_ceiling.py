"""The consensus ranking of benchmarks/ranking_ceiling.py on poses of a real ligand."""

from __future__ import annotations

import numpy as np

from discodock.data.ligand import read_ligand

from .conftest import EXAMPLES
from .test_docking import _script

ceiling = _script("ranking_ceiling")


def crystal_positions() -> np.ndarray:
    return read_ligand(EXAMPLES / "1a46" / "1a46_ligand.sdf").GetConformer().GetPositions()


def test_consensus_picks_the_best_ranked_member_of_the_largest_cluster() -> None:
    crystal = crystal_positions()
    noise = np.random.default_rng(0).normal(scale=0.2, size=(3, *crystal.shape))
    far, aside = np.array([10.0, 0.0, 0.0]), np.array([0.0, 5.0, 0.0])
    # rank order: a far pose first, then a cluster of three near the crystal, then a lone pose
    poses = np.stack([crystal + far, *(crystal + noise), crystal + aside])
    assert ceiling.consensus_index(poses) == 1
    rmsds = np.sqrt(((poses - crystal) ** 2).sum(-1).mean(-1))
    chosen = ceiling.chosen_rmsds(rmsds, poses)
    assert chosen["ranked"] == rmsds[0] > 9.0
    assert chosen["consensus"] == rmsds[1] < 0.5
    assert chosen["best"] == rmsds.min() <= chosen["consensus"]


def test_without_any_cluster_the_consensus_keeps_the_ranking() -> None:
    crystal = crystal_positions()
    step = np.array([0.0, 0.0, 10.0])
    poses = np.stack([crystal + k * step for k in range(4)])  # every pose alone
    assert ceiling.consensus_index(poses) == 0
