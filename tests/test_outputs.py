"""Output files: ranked SDFs that round-trip, hydrogens, the complex PDB, results.csv and finished folders."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from discodock import DockingModel
from discodock.data.ligand import read_ligand
from discodock.inference.docking import DockingResult
from discodock.inference.outputs import (
    RESULTS_COLUMNS,
    ResultsTable,
    complex_pdb_block,
    finished_confidence,
    pose_file_name,
    write_poses,
)

from .test_docking import LIGAND, PROTEIN, centroid_confidence, make_test_checkpoint, one_thread  # noqa: F401


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> DockingModel:
    return DockingModel.load(make_test_checkpoint(tmp_path_factory.mktemp("checkpoint")), device="cpu")


@pytest.fixture(scope="module")
def ranked(model: DockingModel) -> DockingResult:
    ranking_model = DockingModel(model.score_model, model.prior, centroid_confidence, device="cpu")
    (result,) = ranking_model.dock(PROTEIN, LIGAND, samples=4, steps=2, seed=0)
    return result


@pytest.fixture(scope="module")
def unranked(model: DockingModel) -> DockingResult:
    without_confidence = DockingModel(model.score_model, model.prior, device="cpu")
    (result,) = without_confidence.dock(PROTEIN, LIGAND, samples=3, steps=1, seed=0)
    return result


def bonds(mol: Chem.Mol) -> set[tuple[int, int, str]]:
    return {(*sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx())), str(b.GetBondType())) for b in mol.GetBonds()}


def read_single(path: Path, remove_hydrogens: bool = True) -> Chem.Mol:
    molecules = list(Chem.SDMolSupplier(str(path), removeHs=remove_hydrogens))
    assert len(molecules) == 1 and molecules[0] is not None
    return molecules[0]


def test_ranked_sdfs_round_trip(ranked: DockingResult, tmp_path: Path) -> None:
    written = write_poses(ranked, tmp_path / "x")
    assert written[-1].name == "rank1.sdf"
    ligand = read_ligand(LIGAND)
    ranked_files = sorted(
        (tmp_path / "x").glob("rank*_confidence*.sdf"), key=lambda p: int(p.name[4:].split("_")[0])
    )
    assert len(ranked_files) == 4
    confidences = []
    for rank, (path, pose) in enumerate(zip(ranked_files, ranked.poses, strict=True), start=1):
        assert path.name == f"rank{rank}_confidence{pose.confidence:.2f}.sdf"
        mol = read_single(path)
        assert [a.GetAtomicNum() for a in mol.GetAtoms()] == [a.GetAtomicNum() for a in ligand.GetAtoms()]
        assert bonds(mol) == bonds(ligand)
        np.testing.assert_allclose(
            mol.GetConformer().GetPositions(), pose.mol.GetConformer().GetPositions(), atol=1e-4
        )
        assert mol.GetIntProp("rank") == rank
        assert mol.GetIntProp("sample_index") == pose.sample_index
        assert mol.GetProp("latent_tokens") == " ".join(str(t) for t in pose.tokens)
        assert float(mol.GetProp("confidence")) == pytest.approx(pose.confidence, abs=1e-6)
        confidences.append(float(mol.GetProp("confidence")))
    assert confidences == sorted(confidences, reverse=True)
    assert (tmp_path / "x" / "rank1.sdf").read_text() == ranked_files[0].read_text()
    assert finished_confidence(tmp_path / "x") == pytest.approx(confidences[0], abs=1e-6)


def test_unranked_poses_keep_sampling_order_and_replace_stale_files(
    ranked: DockingResult, unranked: DockingResult, tmp_path: Path
) -> None:
    write_poses(ranked, tmp_path)
    write_poses(unranked, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank1.sdf", "rank2.sdf", "rank3.sdf"]
    for rank in (1, 2, 3):
        mol = read_single(tmp_path / f"rank{rank}.sdf")
        assert mol.GetIntProp("sample_index") == rank - 1 and mol.GetProp("confidence") == "nan"
    assert math.isnan(finished_confidence(tmp_path))
    assert finished_confidence(tmp_path / "absent") is None
    assert (
        pose_file_name(2, math.nan) == "rank2.sdf"
        and pose_file_name(1, -0.456) == "rank1_confidence-0.46.sdf"
    )


def test_hydrogens_are_added_with_3d_coordinates(ranked: DockingResult, tmp_path: Path) -> None:
    write_poses(ranked, tmp_path, hydrogens=True)
    mol = read_single(tmp_path / "rank1.sdf", remove_hydrogens=False)
    heavy = ranked.best.mol
    expected_hydrogens = sum(atom.GetTotalNumHs() for atom in heavy.GetAtoms())
    hydrogens = [atom for atom in mol.GetAtoms() if atom.GetAtomicNum() == 1]
    assert expected_hydrogens > 0 and len(hydrogens) == expected_hydrogens
    positions = mol.GetConformer().GetPositions()
    np.testing.assert_allclose(
        positions[: heavy.GetNumAtoms()], heavy.GetConformer().GetPositions(), atol=1e-4
    )
    for atom in hydrogens:
        (neighbour,) = atom.GetNeighbors()
        length = np.linalg.norm(positions[atom.GetIdx()] - positions[neighbour.GetIdx()])
        assert 0.9 < length < 1.2  # placed on its heavy atom, not at the origin
    assert mol.GetProp("latent_tokens") == heavy.GetProp("latent_tokens")


def test_complex_pdb_holds_the_receptor_and_the_best_pose(ranked: DockingResult, tmp_path: Path) -> None:
    write_poses(ranked, tmp_path, complex_pdb=True)
    text = (tmp_path / "complex.pdb").read_text()
    assert text == complex_pdb_block(ranked)
    lines = text.splitlines()
    atoms = [line for line in lines if line.startswith(("ATOM", "HETATM"))]
    ligand = [line for line in atoms if line[17:20] == "LIG"]
    receptor = Chem.MolFromPDBBlock("\n".join(line for line in lines if line[17:20] != "LIG"), sanitize=False)
    assert receptor is not None and receptor.GetNumAtoms() == len(atoms) - len(ligand) > 0
    best = ranked.best.mol
    coordinates = np.array([[float(line[30:38]), float(line[38:46]), float(line[46:54])] for line in ligand])
    np.testing.assert_allclose(coordinates, best.GetConformer().GetPositions(), atol=1e-3)
    serials = [int(line[6:11]) for line in lines if line.startswith(("ATOM", "HETATM", "TER"))]
    assert len(serials) == len(set(serials))
    ligand_serials = {int(line[6:11]) for line in ligand}
    conect = [
        int(field) for line in lines if line.startswith("CONECT") for field in re.findall(r".{5}", line[6:])
    ]
    assert set(conect) == ligand_serials  # bonds refer to the ligand's own atoms
    assert lines[-1] == "END"


def test_results_table_writes_one_row_per_call(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text("old\n")
    with ResultsTable(tmp_path) as table:
        table.add("a", "ok", 0.5, 1.234)
        table.add("b", "failed", None, 0.1, "b.sdf: file is empty")
        table.add("c", "skipped", math.nan, 0.0)
    with (tmp_path / "results.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        list(RESULTS_COLUMNS),
        ["a", "ok", "0.5000", "1.23", ""],
        ["b", "failed", "", "0.10", "b.sdf: file is empty"],
        ["c", "skipped", "nan", "0.00", ""],
    ]
