"""Ranking the samples of a complex (:mod:`discodock.inference.ranking`)."""

from __future__ import annotations

import math

import pytest
import torch

from discodock.inference.ranking import neighbour_counts, rank_scores, standardized

from .conftest import EXAMPLES


def crystal_ligand() -> torch.Tensor:
    """The heavy atoms of a real ligand (6moa), ``float64[A, 3]``."""
    from rdkit import Chem

    mol = Chem.MolFromMolFile(str(EXAMPLES / "6moa" / "6moa_ligand.sdf"))
    return torch.as_tensor(mol.GetConformer().GetPositions())


def shifted(pose: torch.Tensor, *shifts: float) -> torch.Tensor:
    """Copies of ``pose`` moved along x by ``shifts`` Å: their plain RMSD to it is the shift."""
    return torch.stack([pose + torch.tensor([shift, 0.0, 0.0], dtype=pose.dtype) for shift in shifts])


def test_neighbour_counts_count_the_other_poses_within_the_cutoff() -> None:
    poses = shifted(crystal_ligand(), 0.0, 1.0, 1.9, 10.0, 11.5)
    # RMSDs between x-shifts a, b are |a − b|: 0–1–1.9 are mutual neighbours, so are 10 and 11.5
    assert neighbour_counts(poses).tolist() == [2.0, 2.0, 2.0, 1.0, 1.0]
    assert neighbour_counts(poses, cutoff=1.0).tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]  # 1.9 − 1.0 < 1


def test_standardized_has_zero_mean_and_unit_spread_and_is_zero_for_constants() -> None:
    values = torch.tensor([1.0, 2.0, 6.0], dtype=torch.float64)
    z = standardized(values)
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-12)
    assert float(z.std(unbiased=False)) == pytest.approx(1.0)
    assert torch.equal(standardized(torch.full((4,), 3.0)), torch.zeros(4))


def test_weight_zero_ranks_by_confidence_and_the_consensus_lifts_a_recurring_pose() -> None:
    poses = shifted(crystal_ligand(), 8.0, 0.0, 0.5, 1.0, 20.0)
    confidences = torch.tensor([2.0, 1.0, 0.5, 0.9, 1.5])  # the lone pose at 8 Å is the most confident
    alone = rank_scores(confidences, neighbour_counts(poses), 0.0)
    assert int(alone.argmax()) == 0 and torch.equal(
        alone.argsort(), standardized(confidences.double()).argsort()
    )
    mixed = rank_scores(confidences, neighbour_counts(poses), 1.0)
    assert int(mixed.argmax()) == 1  # the cluster of three at 0–1 Å, its most confident member
    # permuting the samples permutes the scores
    permutation = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(
        rank_scores(confidences[permutation], neighbour_counts(poses[permutation]), 1.0), mixed[permutation]
    )
    # the score is invariant to an affine change of the logits (z-scores)
    torch.testing.assert_close(rank_scores(3.0 * confidences - 7.0, neighbour_counts(poses), 1.0), mixed)


def test_without_a_confidence_model_the_consensus_ranks_alone_or_nothing_does() -> None:
    poses = shifted(crystal_ligand(), 5.0, 0.0, 0.5)
    unranked = torch.full((3,), math.nan)
    consensus = rank_scores(unranked, neighbour_counts(poses), 1.0)
    assert consensus.isfinite().all() and consensus[0] < consensus[1] == consensus[2]
    assert rank_scores(unranked, neighbour_counts(poses), 0.0).isnan().all()
    with pytest.raises(ValueError, match="consensus_weight"):
        rank_scores(unranked, neighbour_counts(poses), -1.0)
