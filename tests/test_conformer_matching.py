"""Torsion matching of ETKDG conformers to real crystal ligands from ``data/examples``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign

from discodock.data.conformer_matching import match_torsions
from discodock.data.ligand import bond_graph
from discodock.data.torsions import rotatable_bonds
from discodock.geometry.pose import TorsionIndex, apply_torsion_updates

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


def read_crystal(relative_path: str) -> tuple[Chem.Mol, np.ndarray, np.ndarray]:
    """Heavy-atom crystal ligand, its rotatable bonds ``[T, 2]`` and moving masks ``[T, N]``."""
    mol = Chem.MolFromMolFile(str(EXAMPLES / relative_path))
    edge_index, _ = bond_graph(mol)
    torsion_edges, mask_rotate = rotatable_bonds(edge_index, mol.GetNumAtoms())
    return mol, torsion_edges, mask_rotate


def etkdg_conformer(mol: Chem.Mol) -> np.ndarray:
    with_hydrogens = Chem.AddHs(mol)
    assert AllChem.EmbedMolecule(with_hydrogens, randomSeed=0) == 0
    return Chem.RemoveHs(with_hydrogens).GetConformer().GetPositions()


def rmsd(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).sum(-1).mean()))


@pytest.mark.parametrize("ligand_file", ["1a0q/1a0q_ligand.sdf", "6moa/6moa_ligand.sdf"])
def test_matched_conformer_is_closer_than_rigid_alignment(ligand_file: str) -> None:
    mol, torsion_edges, mask_rotate = read_crystal(ligand_file)
    crystal = mol.GetConformer().GetPositions()
    conformer = etkdg_conformer(mol)
    matched, matched_rmsd = match_torsions(conformer, crystal, torsion_edges, mask_rotate, seed=0)

    rigid, rigid_rmsd = match_torsions(conformer, crystal, torsion_edges[:0], mask_rotate[:0])
    # Independent check of the rigid superposition: RDKit's AlignMol with the identity atom map.
    probe = Chem.Mol(mol)
    probe.GetConformer().SetPositions(conformer)
    identity = [(i, i) for i in range(mol.GetNumAtoms())]
    assert rigid_rmsd == pytest.approx(rdMolAlign.AlignMol(probe, mol, atomMap=identity), abs=1e-6)
    assert rmsd(rigid, crystal) == pytest.approx(rigid_rmsd)

    assert matched_rmsd < 0.5 * rigid_rmsd
    assert rmsd(matched, crystal) == pytest.approx(matched_rmsd)
    # The result is the conformer with changed torsions only: bond lengths are the conformer's.
    bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()])
    lengths = np.linalg.norm(matched[bonds[:, 0]] - matched[bonds[:, 1]], axis=-1)
    np.testing.assert_allclose(
        lengths, np.linalg.norm(conformer[bonds[:, 0]] - conformer[bonds[:, 1]], axis=-1)
    )


def test_matching_recovers_a_perturbed_crystal_pose() -> None:
    mol, torsion_edges, mask_rotate = read_crystal("1a0q/1a0q_ligand.sdf")
    crystal = torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float64)
    torsions = TorsionIndex.from_ligands([torsion_edges], [mask_rotate], [0])
    generator = torch.Generator().manual_seed(0)
    delta = (torch.rand(torsions.num_torsions, generator=generator, dtype=torch.float64) * 2 - 1) * np.pi
    perturbed = apply_torsion_updates(crystal, torsions, delta).numpy()
    assert rmsd(perturbed, crystal.numpy()) > 2.0

    matched, matched_rmsd = match_torsions(perturbed, crystal.numpy(), torsion_edges, mask_rotate, seed=0)
    assert matched_rmsd < 0.3
    assert rmsd(matched, crystal.numpy()) == pytest.approx(matched_rmsd)
