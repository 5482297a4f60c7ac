"""Seeded 3D conformer generation for ligands (method.md §6.1).

A docking pose keeps the bond lengths, angles and ring geometry of an RDKit conformer and changes only
translation, rotation and torsions (method.md §1.2), so every ligand needs a sensible starting conformer.
It is made by

1. adding hydrogens and embedding with ETKDGv3 (distance geometry plus experimental torsion preferences);
2. if that fails, embedding again from random starting coordinates and relaxing with the MMFF94 force
   field (UFF when MMFF lacks parameters for some atom; unrelaxed if UFF does too), DiffDock's fallback;
3. copying the heavy-atom coordinates onto a hydrogen-free copy of the input molecule, which so keeps its
   atoms, their order, its properties and its hydrogen bookkeeping.

The result depends only on the molecule and the seed. method.md §6.1 describes the original code's
ETKDGv2; ETKDGv3, as the project brief asks, adds macrocycle torsion preferences and is otherwise the same.
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

from discodock.data.ligand import ligand_label
from discodock.errors import InputError

_MAX_FORCE_FIELD_ITERATIONS = 2000
# RDKit's embedder uses a minimal-standard linear congruential generator of modulus 2**31 - 1, for which
# seeds 0, 1 and 2**31 - 1 give the same stream; seeds are therefore mapped onto 1 .. 2**31 - 2.
_GENERATOR_MODULUS = 2**31 - 1


def generate_conformer(mol: Chem.Mol, seed: int = 0) -> Chem.Mol:
    """Heavy-atom copy of ``mol`` with one seeded 3D conformer; see :func:`generate_conformers`."""
    return generate_conformers(mol, 1, seed)


def generate_conformers(mol: Chem.Mol, num_conformers: int, seed: int = 0) -> Chem.Mol:
    """Heavy-atom copy of ``mol`` with ``num_conformers`` seeded 3D conformers (ids ``0..n-1``).

    Conformers the input had are not kept.

    Parameters
    ----------
    mol
        Sanitised ligand; hydrogen atoms, if any, are left out of the result (heavy atoms keep their order).
    num_conformers
        Number of conformers n ≥ 1, embedded together by RDKit (``EmbedMultipleConfs``).
    seed
        Non-negative random seed. The same molecule and seed always give the same coordinates, and seeds
        below 2**31 - 2 give different ones (RDKit gets ``seed % (2**31 - 2) + 1``: it treats 0 like 1).

    Returns
    -------
    rdkit.Chem.Mol
        The heavy-atom molecule with n 3D conformers, coordinates in Å.

    Raises
    ------
    InputError
        If fewer than n conformers can be embedded, even from random coordinates (the ligand is named by
        its name or SMILES).
    ValueError
        If ``num_conformers`` < 1 or ``seed`` < 0.
    """
    if num_conformers < 1:
        raise ValueError(f"num_conformers must be at least 1, got {num_conformers}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    heavy = Chem.RemoveAllHs(mol)
    heavy.RemoveAllConformers()
    with_hydrogens = Chem.AddHs(heavy)  # hydrogens are appended: atom i < N is heavy atom i
    with rdBase.BlockLogs():
        embedded = _embed(with_hydrogens, num_conformers, seed, random_coordinates=False)
        if len(embedded) < num_conformers:
            embedded = _embed(with_hydrogens, num_conformers, seed, random_coordinates=True)
            if len(embedded) == num_conformers:
                _relax(with_hydrogens)
    if len(embedded) < num_conformers:
        wanted = "a 3D conformer" if num_conformers == 1 else f"{num_conformers} 3D conformers"
        got = f" (got {len(embedded)})" if embedded else ""
        raise InputError(ligand_label(heavy), f"could not generate {wanted}{got}")

    for conformer in with_hydrogens.GetConformers():
        positions = conformer.GetPositions()[: heavy.GetNumAtoms()]
        heavy.AddConformer(_conformer_from_positions(positions), assignId=True)
    return heavy


def _embed(
    mol_with_hydrogens: Chem.Mol, num_conformers: int, seed: int, random_coordinates: bool
) -> list[int]:
    """Replace the conformers of ``mol_with_hydrogens`` by ETKDGv3 embeddings; the ids of those made."""
    parameters = rdDistGeom.ETKDGv3()
    parameters.randomSeed = seed % (_GENERATOR_MODULUS - 1) + 1
    parameters.useRandomCoords = random_coordinates
    mol_with_hydrogens.RemoveAllConformers()
    return list(rdDistGeom.EmbedMultipleConfs(mol_with_hydrogens, num_conformers, parameters))


def _relax(mol_with_hydrogens: Chem.Mol) -> None:
    """Minimise every conformer in place with MMFF94, or UFF if MMFF lacks parameters (else leave them)."""
    iterations = _MAX_FORCE_FIELD_ITERATIONS
    if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol_with_hydrogens):
        rdForceFieldHelpers.MMFFOptimizeMoleculeConfs(mol_with_hydrogens, maxIters=iterations)
    elif rdForceFieldHelpers.UFFHasAllMoleculeParams(mol_with_hydrogens):
        rdForceFieldHelpers.UFFOptimizeMoleculeConfs(mol_with_hydrogens, maxIters=iterations)


def _conformer_from_positions(positions: np.ndarray) -> Chem.Conformer:
    """3D RDKit conformer of ``(N, 3)`` float64 coordinates in Å."""
    conformer = Chem.Conformer(len(positions))
    conformer.SetPositions(positions)
    conformer.Set3D(True)
    return conformer
