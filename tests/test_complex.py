from __future__ import annotations

import numpy as np
from rdkit import Chem

from discodock.data.complex import ComplexData, crop_receptor, featurize_receptor
from discodock.data.protein import read_protein

from .conftest import EXAMPLES


def _bond_lengths(pos: np.ndarray, bond_index: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pos[bond_index[0]] - pos[bond_index[1]], axis=1)


def test_frame_is_protein_centred_and_crystal_pose_is_the_file_pose(
    example_complexes: list[ComplexData],
) -> None:
    complex_data = next(c for c in example_complexes if c.name == "1a0q")
    protein = read_protein(EXAMPLES / "1a0q" / "1a0q_protein.pdb.gz")
    np.testing.assert_allclose(complex_data.center, protein.ca.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(complex_data.residue_pos.mean(axis=0), 0.0, atol=1e-3)
    ligand = Chem.MolFromMolFile(str(EXAMPLES / "1a0q" / "1a0q_ligand.sdf"))
    np.testing.assert_allclose(
        complex_data.crystal_pos + complex_data.center, ligand.GetConformer().GetPositions(), atol=1e-3
    )


def test_matched_pose_is_the_conformer_with_other_torsions(example_complexes: list[ComplexData]) -> None:
    for complex_data in example_complexes:
        np.testing.assert_allclose(complex_data.conformer_pos.mean(axis=0), 0.0, atol=1e-4)
        # torsion changes and rigid motions keep every bond length of the conformer
        np.testing.assert_allclose(
            _bond_lengths(complex_data.matched_pos, complex_data.bond_index),
            _bond_lengths(complex_data.conformer_pos, complex_data.bond_index),
            atol=1e-3,
        )
        rmsd = np.sqrt(((complex_data.matched_pos - complex_data.crystal_pos) ** 2).sum(axis=1).mean())
        assert abs(rmsd - complex_data.matching_rmsd) < 1e-3
        assert complex_data.matching_rmsd < 2.0, complex_data.name


def test_crop_keeps_the_residues_within_the_radius_in_the_same_frame_and_new_arrays() -> None:
    protein = read_protein(EXAMPLES / "1a0q" / "1a0q_protein.pdb.gz")
    receptor = featurize_receptor(protein)
    ligand = Chem.MolFromMolFile(str(EXAMPLES / "1a0q" / "1a0q_ligand.sdf"))
    pocket = ligand.GetConformer().GetPositions().mean(axis=0)  # input frame
    distances = np.linalg.norm(protein.ca.astype(np.float64) - pocket, axis=1)
    radius = 12.0
    assert np.abs(distances - radius).min() > 1e-2  # no residue on the boundary, whatever the precision
    expected = np.flatnonzero(distances <= radius)
    assert 0 < len(expected) < protein.num_residues

    cropped = crop_receptor(receptor, pocket - receptor.frame_origin, radius)
    np.testing.assert_array_equal(cropped.residue_index, expected)
    np.testing.assert_array_equal(cropped.frame_origin, receptor.frame_origin)
    np.testing.assert_allclose(cropped.residue_pos + cropped.frame_origin, protein.ca[expected], atol=1e-4)
    np.testing.assert_array_equal(cropped.residue_types, protein.residue_types[expected])
    np.testing.assert_array_equal(cropped.residue_frame, receptor.residue_frame[expected])
    for name in ("frame_origin", "residue_types", "residue_pos", "residue_frame", "residue_index"):
        assert not np.shares_memory(getattr(cropped, name), getattr(receptor, name)), name
    np.testing.assert_array_equal(receptor.residue_index, np.arange(protein.num_residues))
    assert crop_receptor(receptor, np.full(3, 1e3), radius).residue_index.size == 0
