"""Tests of discodock.metrics on the real 1a0q ligand (its carboxylic acid and phenyl ester are symmetric)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from discodock import metrics
from discodock.metrics import centroid_distance, molecular_graph, rmsd, success_rate, symmetry_rmsd

LIGAND = Path(__file__).resolve().parents[1] / "data" / "examples" / "1a0q" / "1a0q_ligand.sdf"


@pytest.fixture(scope="module")
def ligand() -> Chem.Mol:
    return Chem.RemoveHs(Chem.MolFromMolFile(str(LIGAND), removeHs=False))


def swapped(pos: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Positions with the coordinates of each pair of atoms exchanged."""
    result = pos.copy()
    for a, b in pairs:
        result[[a, b]] = pos[[b, a]]
    return result


def carboxyl_oxygen_swap(mol: Chem.Mol) -> list[tuple[int, int]]:
    ((_, carbonyl_o, hydroxyl_o),) = mol.GetSubstructMatches(Chem.MolFromSmarts("C(=O)[OX2H1]"))
    return [(carbonyl_o, hydroxyl_o)]


def phenyl_ring_flip(mol: Chem.Mol) -> list[tuple[int, int]]:
    ((_, _, ortho_a, meta_a, _, meta_b, ortho_b),) = mol.GetSubstructMatches(Chem.MolFromSmarts("O-c1ccccc1"))
    return [(ortho_a, ortho_b), (meta_a, meta_b)]


@pytest.mark.parametrize("symmetry", [carboxyl_oxygen_swap, phenyl_ring_flip])
def test_symmetric_relabelling_costs_nothing(ligand: Chem.Mol, symmetry) -> None:
    pos = ligand.GetConformer().GetPositions()
    relabelled = swapped(pos, symmetry(ligand))
    atomic_numbers, adjacency = molecular_graph(ligand)
    assert rmsd(pos, relabelled)[0] > 0.3
    np.testing.assert_allclose(symmetry_rmsd(pos, relabelled, atomic_numbers, adjacency), [0.0], atol=1e-6)


def test_translation_by_d_gives_rmsd_and_centroid_distance_d(ligand: Chem.Mol) -> None:
    pos = ligand.GetConformer().GetPositions()
    shift = np.array([1.2, -2.0, 0.5])
    d = np.linalg.norm(shift)
    atomic_numbers, adjacency = molecular_graph(ligand)
    flipped = swapped(pos, phenyl_ring_flip(ligand) + carboxyl_oxygen_swap(ligand))
    poses = np.stack([pos, pos + shift, flipped + shift])
    np.testing.assert_allclose(symmetry_rmsd(pos, poses, atomic_numbers, adjacency), [0.0, d, d], atol=1e-6)
    np.testing.assert_allclose(rmsd(pos, pos + shift), [d])
    np.testing.assert_allclose(centroid_distance(pos, poses), [0.0, d, d], atol=1e-12)
    assert rmsd(pos, poses)[2] > d


def test_fallback_to_plain_rmsd_when_spyrmsd_fails(ligand, monkeypatch, caplog) -> None:
    pos = ligand.GetConformer().GetPositions()
    relabelled = swapped(pos, carboxyl_oxygen_swap(ligand))

    def broken(*args, **kwargs):
        raise ValueError("no isomorphism")

    monkeypatch.setattr(metrics, "symmrmsd", broken)
    with caplog.at_level(logging.WARNING, logger="discodock.metrics"):
        result = symmetry_rmsd(pos, relabelled, *molecular_graph(ligand))
    np.testing.assert_allclose(result, rmsd(pos, relabelled))
    assert "failed (ValueError: no isomorphism); using plain RMSD" in caplog.text


def test_timeout_interrupts_spyrmsd_and_falls_back(ligand, monkeypatch, caplog) -> None:
    pos = ligand.GetConformer().GetPositions()
    relabelled = swapped(pos, carboxyl_oxygen_swap(ligand))

    def endless(*args, **kwargs):
        while True:
            pass

    def previous_handler(signum, frame) -> None:
        raise AssertionError("the caller's SIGALRM handler ran")

    monkeypatch.setattr(metrics, "symmrmsd", endless)
    original_handler = signal.signal(signal.SIGALRM, previous_handler)
    try:
        start = time.perf_counter()
        with caplog.at_level(logging.WARNING, logger="discodock.metrics"):
            result = symmetry_rmsd(pos, relabelled, *molecular_graph(ligand), timeout_s=0.2)
        elapsed = time.perf_counter() - start
        assert signal.getsignal(signal.SIGALRM) is previous_handler
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, original_handler)
    assert elapsed < 2.0
    np.testing.assert_allclose(result, rmsd(pos, relabelled))
    assert "timed out after 0.2 s" in caplog.text


def test_off_the_main_thread_runs_untimed_and_warns(ligand: Chem.Mol) -> None:
    pos = ligand.GetConformer().GetPositions()
    relabelled = swapped(pos, phenyl_ring_flip(ligand))
    outcome = {}

    def worker() -> None:
        with pytest.warns(RuntimeWarning, match="without its time limit"):
            outcome["rmsd"] = symmetry_rmsd(pos, relabelled, *molecular_graph(ligand))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    np.testing.assert_allclose(outcome["rmsd"], [0.0], atol=1e-6)


def test_molecular_graph_refuses_hydrogens_and_matches_bonds(ligand: Chem.Mol) -> None:
    atomic_numbers, adjacency = molecular_graph(ligand)
    assert adjacency.sum() == 2 * ligand.GetNumBonds()
    assert (adjacency == adjacency.T).all()
    assert sorted(set(atomic_numbers.tolist())) == [6, 7, 8, 15]
    with pytest.raises(ValueError, match="explicit hydrogens"):
        molecular_graph(Chem.AddHs(ligand))


def test_shape_mismatches_are_refused(ligand: Chem.Mol) -> None:
    pos = ligand.GetConformer().GetPositions()
    atomic_numbers, adjacency = molecular_graph(ligand)
    with pytest.raises(ValueError, match="poses"):
        rmsd(pos, pos[:-1])
    with pytest.raises(ValueError, match="atomic_numbers"):
        symmetry_rmsd(pos, pos, atomic_numbers[:-1], adjacency)
    with pytest.raises(ValueError, match="timeout_s"):
        symmetry_rmsd(pos, pos, atomic_numbers, adjacency, timeout_s=0)


def test_success_rate_counts_rmsds_strictly_below_the_threshold() -> None:
    rmsds = np.array([0.5, 1.99, 2.0, 3.0, 7.5, np.nan, 1.0, 12.0])
    assert success_rate(rmsds, 2.0) == 37.5
    assert success_rate(rmsds, 5.0) == 62.5
    assert success_rate(rmsds, 0.1) == 0.0
    assert success_rate([1.0], 2.0) == 100.0
    with pytest.raises(ValueError):
        success_rate([], 2.0)
