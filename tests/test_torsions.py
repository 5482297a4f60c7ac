"""Tests of the rotatable-bond rule and the torsion masks (method.md §1.2) on real ligands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdMolDescriptors
from rdkit.Chem.rdMolTransforms import GetDihedralRad
from scipy.spatial.distance import pdist
from scipy.spatial.transform import Rotation

from discodock.data.ligand import bond_graph, read_ligand
from discodock.data.torsions import rotatable_bonds

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
CRYSTAL_LIGANDS = {
    "1a0q": EXAMPLES / "1a0q" / "1a0q_ligand.sdf",
    "6moa": EXAMPLES / "6moa" / "6moa_ligand.sdf",
    "6k05": EXAMPLES / "6k05" / "6k05_ligand_from_ccd.sdf",
}
# All-trans retinoic acid, the ligand of 1cbr, whose example SDF RDKit cannot sanitise (a C(=O)=O group):
# its polyene chain has four non-ring double bonds between non-terminal atoms.
RETINOIC_ACID = "CC1=C(C(CCC1)(C)C)/C=C/C(=C/C=C/C(=C/C(=O)O)/C)/C"

# Non-ring bonds between two non-terminal heavy atoms: the graph rule restated as SMARTS.
GRAPH_RULE_SMARTS = Chem.MolFromSmarts("[!D1]!@[!D1]")
NON_RING_MULTIPLE_BOND_SMARTS = Chem.MolFromSmarts("[!D1]=,#;!@[!D1]")


def _torsions(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    edge_index, _ = bond_graph(mol)
    return rotatable_bonds(edge_index, mol.GetNumAtoms())


@pytest.mark.parametrize("source", [*map(str, CRYSTAL_LIGANDS.values()), RETINOIC_ACID])
def test_count_matches_the_graph_rule_and_differs_from_rdkit_only_by_multiple_bonds(source: str) -> None:
    """RDKit's non-strict count takes non-ring single bonds between non-terminal atoms; the graph rule also
    takes non-ring double and triple bonds (4 in retinoic acid's chain, none in the crystal ligands)."""
    mol = read_ligand(source)

    torsion_edges, _ = _torsions(mol)

    rdkit_count = rdMolDescriptors.CalcNumRotatableBonds(
        mol, rdMolDescriptors.NumRotatableBondsOptions.NonStrict
    )
    multiple_bonds = len(mol.GetSubstructMatches(NON_RING_MULTIPLE_BOND_SMARTS))
    assert len(torsion_edges) == len(mol.GetSubstructMatches(GRAPH_RULE_SMARTS))
    assert len(torsion_edges) == rdkit_count + multiple_bonds
    if source == RETINOIC_ACID:
        assert (len(torsion_edges), rdkit_count) == (9, 5)


@pytest.mark.parametrize("pdb_id", sorted(CRYSTAL_LIGANDS))
def test_masks_mark_the_smaller_side_holding_v_and_not_u(pdb_id: str) -> None:
    mol = read_ligand(CRYSTAL_LIGANDS[pdb_id])
    num_atoms = mol.GetNumAtoms()

    torsion_edges, mask_rotate = _torsions(mol)

    assert torsion_edges.dtype == np.int64 and mask_rotate.dtype == bool
    assert mask_rotate.shape == (len(torsion_edges), num_atoms)
    bond_indices = []
    for (u, v), moving in zip(torsion_edges, mask_rotate, strict=True):
        bond = mol.GetBondBetweenAtoms(int(u), int(v))
        assert bond is not None and not bond.IsInRing()
        assert moving[v] and not moving[u]
        assert 2 <= moving.sum() <= num_atoms - moving.sum()
        bond_indices.append(bond.GetIdx())
    assert bond_indices == sorted(bond_indices)


def _bond_lengths(mol: Chem.Mol, positions: np.ndarray) -> np.ndarray:
    bonds = np.asarray([(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()) for bond in mol.GetBonds()])
    return np.linalg.norm(positions[bonds[:, 0]] - positions[bonds[:, 1]], axis=1)


def _dihedral_about(mol: Chem.Mol, positions: np.ndarray, u: int, v: int) -> float:
    """Dihedral (a, u, v, d) in radians, with a and d the first other neighbours of u and v."""
    a = next(atom.GetIdx() for atom in mol.GetAtomWithIdx(u).GetNeighbors() if atom.GetIdx() != v)
    d = next(atom.GetIdx() for atom in mol.GetAtomWithIdx(v).GetNeighbors() if atom.GetIdx() != u)
    conformer = Chem.Conformer(mol.GetConformer())
    conformer.SetPositions(positions)
    return GetDihedralRad(conformer, a, u, v, d)


@pytest.mark.parametrize("pdb_id", sorted(CRYSTAL_LIGANDS))
def test_turning_the_moving_side_keeps_the_molecule_rigid_and_changes_only_that_dihedral(pdb_id: str) -> None:
    """Rotating mask_rotate[k] by θ about the axis x_u − x_v through x_v (right-hand rule) must leave every
    bond length and every distance within each side unchanged, and change the dihedral (a, u, v, d) by −θ:
    the axis points from v to u, against the u→v direction of RDKit's dihedral convention."""
    mol = read_ligand(CRYSTAL_LIGANDS[pdb_id])
    positions = mol.GetConformer().GetPositions()
    angle = 1.0

    torsion_edges, mask_rotate = _torsions(mol)

    assert len(torsion_edges) > 0
    for (u, v), moving in zip(torsion_edges.tolist(), mask_rotate, strict=True):
        axis = positions[u] - positions[v]
        rotation = Rotation.from_rotvec(angle * axis / np.linalg.norm(axis))
        turned = positions.copy()
        turned[moving] = rotation.apply(positions[moving] - positions[v]) + positions[v]

        np.testing.assert_allclose(_bond_lengths(mol, turned), _bond_lengths(mol, positions), atol=1e-9)
        for side in (moving, ~moving):
            np.testing.assert_allclose(pdist(turned[side]), pdist(positions[side]), atol=1e-9)
        change = _dihedral_about(mol, turned, u, v) - _dihedral_about(mol, positions, u, v)
        assert np.isclose(np.angle(np.exp(1j * change)), -angle)


def test_equal_sides_move_the_side_holding_the_lowest_atom_index() -> None:
    """Butane's central bond splits 2 | 2 atoms: atoms {0, 1} move, so the flagged edge is (2, 1)."""
    torsion_edges, mask_rotate = _torsions(read_ligand("CCCC"))

    assert torsion_edges.tolist() == [[2, 1]]
    assert mask_rotate.tolist() == [[True, True, False, False]]


def test_ring_only_and_single_atom_ligands_have_no_torsions() -> None:
    for smiles, num_atoms in (("c1ccccc1", 6), ("[Na+]", 1)):
        torsion_edges, mask_rotate = _torsions(read_ligand(smiles))
        assert torsion_edges.shape == (0, 2)
        assert mask_rotate.shape == (0, num_atoms)


@pytest.mark.parametrize(
    ("edge_index", "problem"),
    [
        (np.array([[0, 1, 1]]), "shape"),
        (np.array([[0, 1], [1, 0], [0, 0]]), "shape"),
        (np.array([[0, 1], [1, 5]]), "outside"),
        (np.array([[0, 1], [1, 2]]), "reversed"),
        (np.array([[1, 1], [1, 1]]), "self-loop"),
    ],
)
def test_malformed_edge_lists_are_rejected(edge_index: np.ndarray, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        rotatable_bonds(edge_index, num_atoms=3)
