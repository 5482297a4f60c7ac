"""Tests of seeded conformer generation on the real example ligands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from discodock.data.conformers import generate_conformer, generate_conformers
from discodock.data.ligand import canonical_smiles, read_ligand
from discodock.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
CRYSTAL_LIGANDS = {
    "1a0q": EXAMPLES / "1a0q" / "1a0q_ligand.sdf",
    "6moa": EXAMPLES / "6moa" / "6moa_ligand.sdf",
    "6k05": EXAMPLES / "6k05" / "6k05_ligand_from_ccd.sdf",
}


def _assert_sane_bond_lengths(mol: Chem.Mol, conformer_id: int = -1) -> None:
    """Heavy-atom bonds within 1.1–2.0 Å, aromatic ones within 1.25–1.50 Å."""
    positions = mol.GetConformer(conformer_id).GetPositions()
    bonds = np.asarray([(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()) for bond in mol.GetBonds()])
    lengths = np.linalg.norm(positions[bonds[:, 0]] - positions[bonds[:, 1]], axis=1)
    aromatic = np.asarray([bond.GetIsAromatic() for bond in mol.GetBonds()])
    assert ((lengths > 1.1) & (lengths < 2.0)).all()
    assert ((lengths[aromatic] > 1.25) & (lengths[aromatic] < 1.50)).all()


def _smiles_perceived_from_3d(mol: Chem.Mol) -> str:
    """Canonical SMILES with the stereochemistry read off the coordinates instead of the stored tags."""
    copy = Chem.Mol(mol)
    Chem.AssignStereochemistryFrom3D(copy)
    return canonical_smiles(copy)


@pytest.mark.parametrize("pdb_id", sorted(CRYSTAL_LIGANDS))
def test_conformer_is_chemically_sane_and_keeps_the_molecule(pdb_id: str) -> None:
    ligand = read_ligand(CRYSTAL_LIGANDS[pdb_id])
    crystal_positions = ligand.GetConformer().GetPositions()

    generated = generate_conformer(ligand, seed=0)

    assert generated.GetNumConformers() == 1 and generated.GetConformer().Is3D()
    assert [a.GetSymbol() for a in generated.GetAtoms()] == [a.GetSymbol() for a in ligand.GetAtoms()]
    assert canonical_smiles(generated) == canonical_smiles(ligand)
    assert _smiles_perceived_from_3d(generated) == _smiles_perceived_from_3d(ligand)  # same stereo centres
    assert generated.GetProp("_Name") == ligand.GetProp("_Name")
    _assert_sane_bond_lengths(generated)
    np.testing.assert_array_equal(ligand.GetConformer().GetPositions(), crystal_positions)  # input untouched
    assert not np.allclose(generated.GetConformer().GetPositions(), crystal_positions)


def test_same_seed_gives_identical_coordinates_and_other_seeds_differ() -> None:
    ligand = read_ligand(CRYSTAL_LIGANDS["1a0q"])

    coordinates = {seed: generate_conformer(ligand, seed).GetConformer().GetPositions() for seed in (0, 1, 2)}

    np.testing.assert_array_equal(generate_conformer(ligand, 0).GetConformer().GetPositions(), coordinates[0])
    assert not np.allclose(coordinates[0], coordinates[1])  # RDKit alone would treat seeds 0 and 1 alike
    assert not np.allclose(coordinates[1], coordinates[2])


def test_several_conformers_are_distinct_and_reproducible() -> None:
    ligand = read_ligand(CRYSTAL_LIGANDS["6k05"])

    first = generate_conformers(ligand, 3, seed=5)
    again = generate_conformers(ligand, 3, seed=5)

    assert [conformer.GetId() for conformer in first.GetConformers()] == [0, 1, 2]
    positions = [conformer.GetPositions() for conformer in first.GetConformers()]
    assert not np.allclose(positions[0], positions[1]) and not np.allclose(positions[1], positions[2])
    for conformer_id, expected in enumerate(positions):
        np.testing.assert_array_equal(again.GetConformer(conformer_id).GetPositions(), expected)
        _assert_sane_bond_lengths(first, conformer_id)


def test_smiles_ligand_gets_a_conformer() -> None:
    ligand = read_ligand("CC1=C(C(CCC1)(C)C)/C=C/C(=C/C=C/C(=C/C(=O)O)/C)/C retinoic_acid")

    generated = generate_conformer(ligand)

    assert ligand.GetNumConformers() == 0
    _assert_sane_bond_lengths(generated)
    assert _smiles_perceived_from_3d(generated) == canonical_smiles(ligand)  # E double bonds kept


def test_falls_back_to_random_coordinates_and_force_field(monkeypatch: pytest.MonkeyPatch) -> None:
    embed = rdDistGeom.EmbedMultipleConfs
    calls: list[bool] = []

    def embed_failing_without_random_coordinates(
        mol: Chem.Mol, num_conformers: int, parameters: rdDistGeom.EmbedParameters
    ) -> list[int]:
        calls.append(parameters.useRandomCoords)
        return embed(mol, num_conformers, parameters) if parameters.useRandomCoords else []

    monkeypatch.setattr(rdDistGeom, "EmbedMultipleConfs", embed_failing_without_random_coordinates)
    ligand = read_ligand(CRYSTAL_LIGANDS["6moa"])

    generated = generate_conformer(ligand, seed=3)

    assert calls == [False, True]
    _assert_sane_bond_lengths(generated)


def test_embedding_failure_is_an_input_error_naming_the_ligand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rdDistGeom, "EmbedMultipleConfs", lambda *arguments: [])
    ligand = read_ligand(CRYSTAL_LIGANDS["6k05"])

    with pytest.raises(InputError, match=r"^6k05_CQF: could not generate a 3D conformer$"):
        generate_conformer(ligand)


@pytest.mark.parametrize(("num_conformers", "seed"), [(0, 0), (1, -1)])
def test_invalid_arguments_are_rejected(num_conformers: int, seed: int) -> None:
    with pytest.raises(ValueError):
        generate_conformers(read_ligand("CCO"), num_conformers, seed)
