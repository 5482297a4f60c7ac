"""Featurization of one protein–ligand complex into the arrays the model consumes.

All coordinates of a :class:`ComplexData` live in the **protein-centred frame** of method.md §1.1: the
mean of the receptor C-alpha positions (``center``, in the input file's frame) is subtracted from every
coordinate. Poses written back to files add ``center`` again.

Shapes use ``R`` residues, ``N`` ligand heavy atoms, ``E`` chemical bonds (stored as ``2E`` directed
edges) and ``T`` rotatable bonds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem

from discodock.data.conformer_matching import match_torsions
from discodock.data.conformers import generate_conformer
from discodock.data.ligand import atom_features, bond_graph, canonical_smiles
from discodock.data.protein import Protein
from discodock.data.torsions import rotatable_bonds


@dataclass
class ComplexData:
    """One featurized complex (or one receptor with one unbound ligand, at inference).

    Attributes
    ----------
    name
        Identifier of the complex (e.g. the PDB ID).
    smiles
        Canonical SMILES of the ligand (heavy-atom graph), for bookkeeping and ligand-overlap filters.
    center
        ``float32[3]``: C-alpha centroid of the receptor in the input frame (``original_center``).
    residue_types
        ``int64[R]``: amino-acid class, 0–19 standard, 20 unknown.
    residue_pos
        ``float32[R, 3]``: C-alpha positions.
    residue_frame
        ``float32[R, 3, 3]``: per residue the vectors N−CA, C−CA and virtual CB−CA (l=1 features).
    atom_features
        ``int64[N, 16]``: categorical ligand atom features (see :func:`discodock.data.ligand.atom_features`).
    bond_index
        ``int64[2, 2E]``: directed chemical bonds, both directions.
    bond_types
        ``int64[2E]``: 0 single, 1 double, 2 triple, 3 aromatic.
    torsion_edges
        ``int64[T, 2]``: rotatable bonds ``(u, v)``, ``v`` on the moving (smaller) side.
    mask_rotate
        ``bool[T, N]``: atoms that move with each rotatable bond.
    conformer_pos
        ``float32[N, 3]``: an RDKit ETKDG conformer with its centroid at the origin (the protein centre);
        the starting geometry at inference and the input pose of the autoregressive prior.
    crystal_pos
        ``float32[N, 3]`` or ``None``: the true bound pose (training/evaluation only).
    matched_pos
        ``float32[N, 3]`` or ``None``: the conformer with its torsions fitted to the crystal pose and
        rigidly aligned onto it; the clean pose ``x0`` of the denoiser (method.md §6.1).
    matching_rmsd
        RMSD (Å) between ``matched_pos`` and ``crystal_pos``; the floor of achievable RMSD. ``nan`` if no
        crystal pose.
    """

    name: str
    smiles: str
    center: np.ndarray
    residue_types: np.ndarray
    residue_pos: np.ndarray
    residue_frame: np.ndarray
    atom_features: np.ndarray
    bond_index: np.ndarray
    bond_types: np.ndarray
    torsion_edges: np.ndarray
    mask_rotate: np.ndarray
    conformer_pos: np.ndarray
    crystal_pos: np.ndarray | None = None
    matched_pos: np.ndarray | None = None
    matching_rmsd: float = float("nan")

    @property
    def num_residues(self) -> int:
        return int(self.residue_types.shape[0])

    @property
    def num_atoms(self) -> int:
        return int(self.atom_features.shape[0])

    @property
    def num_torsions(self) -> int:
        return int(self.torsion_edges.shape[0])


@dataclass(frozen=True)
class ReceptorFeatures:
    """The receptor part of a :class:`ComplexData`, computed once per protein and shared by every ligand
    featurized against it (one receptor, many ligands).

    Attributes
    ----------
    frame_origin
        ``float[3]``: origin of the protein-centred frame in input coordinates (by default the C-alpha
        centroid), in the precision it was computed in.
    residue_types, residue_pos, residue_frame
        As in :class:`ComplexData`; ``residue_pos`` is relative to ``frame_origin``.
    residue_index
        ``int64[R]``: row of each residue in the :class:`~discodock.data.protein.Protein` it was featurized
        from (``0 … R−1`` for a whole receptor, a subset for a pocket of :func:`crop_receptor`).
    """

    frame_origin: np.ndarray
    residue_types: np.ndarray
    residue_pos: np.ndarray
    residue_frame: np.ndarray
    residue_index: np.ndarray


def featurize_receptor(protein: Protein, center: np.ndarray | None = None) -> ReceptorFeatures:
    """Receptor arrays in the frame whose origin is ``center`` (default: the C-alpha centroid)."""
    frame_origin = protein.ca.mean(axis=0) if center is None else np.asarray(center, dtype=np.float64)
    return ReceptorFeatures(
        frame_origin=frame_origin,
        residue_types=protein.residue_types.astype(np.int64),
        residue_pos=np.asarray(protein.ca - frame_origin, dtype=np.float32),
        residue_frame=np.asarray(protein.local_frame(), dtype=np.float32),
        residue_index=np.arange(protein.num_residues, dtype=np.int64),
    )


def crop_receptor(receptor: ReceptorFeatures, center: np.ndarray, radius: float) -> ReceptorFeatures:
    """The residues of ``receptor`` whose C-alpha lies within ``radius`` of ``center`` (a pocket).

    The frame is kept: ``frame_origin`` stays that of the whole receptor (not the pocket centre nor the
    pocket's C-alpha centroid), so coordinates in the frame, and poses mapped back to the input frame by
    adding ``frame_origin``, mean the same with and without cropping.

    Parameters
    ----------
    receptor
        Receptor arrays, e.g. from :func:`featurize_receptor`.
    center
        ``float[3]``: pocket centre in the receptor's frame (input coordinates minus ``frame_origin``).
    radius
        Å; a residue is kept when ``|residue_pos − center| ≤ radius``.

    Returns
    -------
    ReceptorFeatures
        The kept residues in their original order (possibly none), in new arrays that share no memory with
        ``receptor``; ``residue_index`` still points into the original protein.
    """
    keep = np.flatnonzero(np.linalg.norm(receptor.residue_pos - np.asarray(center), axis=1) <= radius)
    return ReceptorFeatures(
        frame_origin=receptor.frame_origin.copy(),
        residue_types=receptor.residue_types[keep],
        residue_pos=receptor.residue_pos[keep],
        residue_frame=receptor.residue_frame[keep],
        residue_index=receptor.residue_index[keep],
    )


def featurize_complex(
    name: str,
    protein: Protein,
    ligand: Chem.Mol,
    *,
    seed: int = 0,
    use_ligand_pose: bool = True,
    center: np.ndarray | None = None,
) -> ComplexData:
    """Featurize a receptor and a heavy-atom ligand.

    Parameters
    ----------
    name
        Identifier stored with the complex.
    protein
        The parsed receptor.
    ligand
        Heavy-atom RDKit molecule. When ``use_ligand_pose`` is true it must carry the crystal pose as its
        conformer; the torsion fit of method.md §6.1 is then run to produce ``matched_pos``.
    seed
        Seed of the ETKDG conformer generation (and of the torsion fit).
    use_ligand_pose
        Whether the ligand's conformer is a known bound pose (training, benchmark) or absent/irrelevant
        (docking a new ligand).
    center
        Frame origin in input coordinates. Defaults to the C-alpha centroid of ``protein``.

    Returns
    -------
    ComplexData
    """
    receptor = featurize_receptor(protein, center)
    return featurize_with_receptor(name, receptor, ligand, seed=seed, use_ligand_pose=use_ligand_pose)


def featurize_with_receptor(
    name: str,
    receptor: ReceptorFeatures,
    ligand: Chem.Mol,
    *,
    seed: int = 0,
    use_ligand_pose: bool = True,
) -> ComplexData:
    """Featurize a heavy-atom ligand against already featurized receptor arrays.

    Parameters
    ----------
    name
        Identifier stored with the complex.
    receptor
        From :func:`featurize_receptor`; its arrays are shared, not copied.
    ligand, seed, use_ligand_pose
        As in :func:`featurize_complex`.

    Returns
    -------
    ComplexData
    """
    frame_origin = receptor.frame_origin
    bond_index, bond_types = bond_graph(ligand)
    torsion_edges, mask_rotate = rotatable_bonds(bond_index, ligand.GetNumAtoms())
    conformer = generate_conformer(ligand, seed=seed)
    conformer_pos = conformer.GetConformer().GetPositions()
    conformer_pos = conformer_pos - conformer_pos.mean(axis=0)

    crystal_pos = matched_pos = None
    matching_rmsd = float("nan")
    if use_ligand_pose:
        crystal_pos = ligand.GetConformer().GetPositions() - frame_origin
        matched_pos, matching_rmsd = match_torsions(
            conformer_pos, crystal_pos, torsion_edges, mask_rotate, seed=seed
        )

    def as_f32(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else np.asarray(array, dtype=np.float32)

    return ComplexData(
        name=name,
        smiles=canonical_smiles(ligand),
        center=as_f32(frame_origin),
        residue_types=receptor.residue_types,
        residue_pos=receptor.residue_pos,
        residue_frame=receptor.residue_frame,
        atom_features=atom_features(ligand),
        bond_index=bond_index,
        bond_types=bond_types,
        torsion_edges=torsion_edges,
        mask_rotate=mask_rotate,
        conformer_pos=as_f32(conformer_pos),
        crystal_pos=as_f32(crystal_pos),
        matched_pos=as_f32(matched_pos),
        matching_rmsd=float(matching_rmsd),
    )
