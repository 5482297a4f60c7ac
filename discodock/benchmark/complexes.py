"""The benchmark set, and the ranked poses that one method produces on it.

A complex of a data folder and split is **usable** when its folder has a protein file and a ligand file with
bond orders (:func:`~discodock.data.layout.find_complexes`), RDKit reads the ligand (the first readable
file, as ``discodock prepare`` does) with 3D coordinates, and the protein file parses. Every other complex
of the split is listed with its reason and left out of every method's denominators.

Each usable complex gets a **cleaned receptor file** ``<receptor_dir>/<name>.pdb``: the heavy atoms of the
residues that :func:`~discodock.data.protein.read_protein` makes nodes (amino-acid residues with N, CA and C;
no waters, ions, cofactors or hydrogens), one altloc per atom. The Vina baseline prepares its receptor from
it and PoseBusters checks poses against it, so both see the same protein.

Poses are kept as coordinates in the crystal ligand's heavy-atom order, so that every method's poses are
compared with the crystal pose in the same way (:class:`MethodRun`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from Bio.PDB import PDBIO, Select
from Bio.PDB.Atom import Atom
from Bio.PDB.Residue import Residue
from rdkit import Chem

from discodock.data.layout import find_complexes, read_split
from discodock.data.protein import BACKBONE_ATOMS, WATER_NAMES, read_first_model
from discodock.errors import InputError
from discodock.inference.predict import safe_name
from discodock.prepare import read_first_readable_ligand


@dataclass(frozen=True)
class BenchmarkComplex:
    """One usable complex.

    Attributes
    ----------
    name
        Name of the complex (its folder name or split ID).
    protein_path
        The receptor file as given (what the docking networks read).
    receptor_pdb
        The cleaned receptor (see the module docstring).
    crystal_ligand
        Heavy-atom crystal ligand with its crystal pose as conformer 0.
    """

    name: str
    protein_path: Path
    receptor_pdb: Path
    crystal_ligand: Chem.Mol

    @property
    def crystal_positions(self) -> np.ndarray:
        """``float64[N, 3]``: heavy-atom positions of the crystal ligand (Å)."""
        return self.crystal_ligand.GetConformer().GetPositions()

    @property
    def pocket_center(self) -> np.ndarray:
        """``float64[3]``: heavy-atom centroid of the crystal ligand, c = (1/N) Σ_i x_i."""
        return self.crystal_positions.mean(axis=0)

    def pose(self, positions: np.ndarray) -> Chem.Mol:
        """Copy of the crystal ligand with ``positions`` (``float[N, 3]``, crystal atom order) as its pose."""
        mol = Chem.Mol(self.crystal_ligand)
        mol.RemoveAllConformers()
        conformer = Chem.Conformer(mol.GetNumAtoms())
        conformer.SetPositions(np.asarray(positions, dtype=np.float64))
        conformer.Set3D(True)
        mol.AddConformer(conformer, assignId=True)
        mol.SetProp("_Name", self.name)
        return mol


@dataclass(frozen=True)
class BenchmarkSet:
    """The usable complexes of a split, and the others with their reasons.

    Attributes
    ----------
    complexes
        Usable complexes, in split order.
    unusable
        ``(name, one-line reason)`` for every other ID of the split.
    """

    complexes: tuple[BenchmarkComplex, ...]
    unusable: tuple[tuple[str, str], ...]

    @property
    def names(self) -> list[str]:
        """Names of the usable complexes, in split order."""
        return [complex_.name for complex_ in self.complexes]


@dataclass
class MethodRun:
    """The ranked poses of one method on the complexes it was run on.

    ``P`` is the number of poses of a complex (samples for a network, Vina's output poses) and ``N`` the
    number of heavy atoms of its crystal ligand.

    Attributes
    ----------
    name
        Method name, unique within a benchmark (also its folder name).
    description
        One line: what ran (checkpoint or program, pocket or blind).
    attempted
        Names of the complexes the method was run on.
    positions
        Per docked complex: ``float64[P, N, 3]`` poses, best-ranked first, in the crystal ligand's atom
        order.
    scores
        Per docked complex: ``float64[P]`` ranking scores in the order of ``positions`` (``nan`` unranked).
    score_name
        What ``scores`` are, e.g. ``confidence`` (higher first) or ``vina_kcal_per_mol`` (lower first).
    ranked
        Whether the poses are ranked (top-1 is then the best-scored pose; otherwise the first sample).
    ranked_by
        How the poses are ranked, in words, where that is not just by ``score_name`` (e.g. the confidence
        with the samples' consensus, :mod:`discodock.inference.ranking`); empty: by ``score_name``.
    failures
        One-line reason per attempted complex that has no poses.
    preparation_seconds
        Wall time of the input preparation (featurization; receptor and ligand files for Vina), all complexes.
    docking_seconds
        Docking time over all complexes: the wall time of the batched run for a network (device
        synchronised), the sum of per-complex CPU times for Vina.
    hardware
        Where the docking ran, e.g. ``cuda (NVIDIA H200)`` or ``1 CPU core per complex``.
    peak_gpu_memory_bytes
        Peak allocated CUDA memory during docking; ``None`` off the GPU.
    complex_seconds
        Per-complex seconds where they are measured one by one (Vina: preparation + docking CPU time).
    complex_notes
        Per-complex remarks for the table of complexes (Vina: how the receptor PDBQT was made).
    details
        Other facts for the report (JSON-serialisable), e.g. Vina's receptor preparation routes.
    """

    name: str
    description: str
    attempted: tuple[str, ...]
    positions: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    score_name: str
    ranked: bool
    failures: dict[str, str]
    preparation_seconds: float
    docking_seconds: float
    hardware: str
    peak_gpu_memory_bytes: int | None = None
    complex_seconds: dict[str, float] = field(default_factory=dict)
    complex_notes: dict[str, str] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)
    ranked_by: str = ""


class _ReceptorAtoms(Select):
    """Heavy atoms of amino-acid residues (those with N, CA and C), one altloc per atom."""

    def accept_residue(self, residue: Residue) -> bool:
        name = residue.get_resname().strip()
        return name not in WATER_NAMES and all(atom in residue for atom in BACKBONE_ATOMS)

    def accept_atom(self, atom: Atom) -> bool:
        if atom.element == "H" or atom.element == "D":
            return False
        if not atom.is_disordered():
            return True
        return atom.get_parent()[atom.get_id()].selected_child is atom


def write_receptor_pdb(protein_path: str | Path, out: str | Path) -> Path:
    """Write the cleaned receptor of a protein file (see the module docstring) as PDB.

    Parameters
    ----------
    protein_path
        PDB, PDBQT or mmCIF file, optionally gzipped (first model).
    out
        The PDB file to write (its folder is created).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    InputError
        If the protein file cannot be read.
    """
    model = read_first_model(protein_path)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = PDBIO()
    writer.set_structure(model)
    writer.save(str(out), _ReceptorAtoms())
    return out


def load_benchmark_set(
    data_dir: str | Path, split_file: str | Path, receptor_dir: str | Path
) -> BenchmarkSet:
    """The usable complexes of ``data_dir`` listed in ``split_file``, with their cleaned receptors.

    Parameters
    ----------
    data_dir
        Folder in a layout of :mod:`discodock.data.layout`.
    split_file
        File of complex IDs, one per line.
    receptor_dir
        Where the cleaned receptor files ``<name>.pdb`` are written (names made file-safe).

    Returns
    -------
    BenchmarkSet

    Raises
    ------
    InputError
        If the folder or the split file is missing, or no complex is usable.
    """
    usable, unusable = find_complexes(data_dir, read_split(split_file))
    complexes = []
    reasons = list(unusable)
    for files in usable:
        try:
            ligand = read_first_readable_ligand(files.ligand_paths)
            if ligand.GetNumConformers() == 0 or not ligand.GetConformer().Is3D():
                raise InputError(files.ligand_path, "has no 3D coordinates, so there is no crystal pose")
            receptor = write_receptor_pdb(
                files.protein_path, Path(receptor_dir) / f"{safe_name(files.name)}.pdb"
            )
        except InputError as error:
            reasons.append((files.name, str(error)))
            continue
        complexes.append(BenchmarkComplex(files.name, files.protein_path, receptor, ligand))
    if not complexes:
        raise InputError(split_file, f"no usable complex in {data_dir}")
    return BenchmarkSet(tuple(complexes), tuple(reasons))


def seeded_subset(names: Sequence[str], size: int | None, seed: int) -> list[str]:
    """A fixed random subset: ``size`` of ``names`` drawn without replacement, kept in the order of ``names``.

    The draw is ``numpy.random.default_rng(seed).choice(len(names), size, replace=False)``, so the same
    names and seed always give the same subset. ``size`` of ``None`` (or at least ``len(names)``) keeps all.
    """
    if size is None or size >= len(names):
        return list(names)
    if size < 1:
        raise ValueError(f"a subset needs at least one complex, got size {size}")
    chosen = np.random.default_rng(seed).choice(len(names), size=size, replace=False)
    return [names[i] for i in sorted(chosen)]
