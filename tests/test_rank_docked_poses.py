"""benchmarks/rank_docked_poses.py: ranking rules on docked poses of real complexes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from discodock.data.cache import ComplexCache
from discodock.inference.dock_cache import dock_cache
from discodock.inference.networks import DockingNetworks, SamplingOptions

from .test_docking import _script, make_test_checkpoint, one_thread  # noqa: F401

rank_docked = _script("rank_docked_poses")


def test_first_pose_rates_read_the_highest_scored_pose_of_each_row() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.2], [3.0, 1.0, 2.0]])
    rmsd = torch.tensor([[0.5, 1.5, 9.0], [6.0, 0.2, 4.0]])
    assert rank_docked.first_pose_rates(scores, rmsd) == (50.0, 50.0, 1.5)  # picks 1.5 Å and 6.0 Å


def test_the_table_has_the_confidence_row_and_one_row_per_radius_and_weight(
    cache: ComplexCache, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    networks = DockingNetworks.load(make_test_checkpoint(tmp_path / "checkpoint"), device="cpu")
    docked = dock_cache(networks, cache, 3, SamplingOptions(steps=2, seed=0), progress=False)
    docked.save(tmp_path / "docked.pt")
    cache.save(tmp_path / "two.cache.pt")
    arguments = ["--docked", str(tmp_path / "docked.pt"), "--cache", str(tmp_path / "two.cache.pt")]
    monkeypatch.setattr(
        sys, "argv", ["rank_docked_poses.py", *arguments, "--weights", "0", "1", "--radii", "1", "2"]
    )
    rank_docked.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 complexes × 2 modes, 3 poses each.")
    rows = [line for line in lines if line.startswith("| ") and "radius" not in line]
    assert [row.split(" | ")[:2] for row in rows] == [["| –", "0"], ["| 1 Å", "1"], ["| 2 Å", "1"]]
