"""Output files of a docking run, in DiffDock's layout (field.md §4).

For a complex ``<name>`` the folder ``OUT/<name>/`` receives

* ``rank{k}_confidence{c:.2f}.sdf`` for every pose, ``k = 1`` the most confident (``rank{k}.sdf`` when no
  confidence model ranked them), each holding one molecule with the SDF properties ``confidence``,
  ``rank``, ``sample_index`` and ``latent_tokens`` (see :class:`~discodock.inference.docking.DockedPose`);
* ``rank1.sdf``, a copy of the best pose, written **last**: its presence marks a finished complex;
* optionally ``complex.pdb``: the receptor as read (first model) followed by the rank-1 ligand as
  ``HETATM`` records of residue ``LIG`` with ``CONECT`` records.

Every file is written to a temporary name and renamed, so an interrupted run leaves no partial file.
``OUT/results.csv`` lists every input of the run with its outcome (:class:`ResultsTable`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path
from typing import TextIO

from Bio.PDB import PDBIO
from rdkit import Chem

from discodock.data.ligand import with_hydrogens
from discodock.data.protein import read_first_model
from discodock.inference.docking import DockingResult

BEST_POSE_FILE = "rank1.sdf"
COMPLEX_PDB_FILE = "complex.pdb"
RESULTS_FILE = "results.csv"
RESULTS_COLUMNS = ("complex_name", "status", "best_confidence", "seconds", "error")

_RANK_FILE = re.compile(r"^rank\d+(_confidence[-+.\w]+)?\.sdf$")
_LIGAND_RESIDUE = "LIG"


def pose_file_name(rank: int, confidence: float) -> str:
    """``rank{k}_confidence{c:.2f}.sdf``, or ``rank{k}.sdf`` for an unranked pose (``c`` is nan)."""
    return f"rank{rank}.sdf" if math.isnan(confidence) else f"rank{rank}_confidence{confidence:.2f}.sdf"


def write_poses(
    result: DockingResult, folder: str | Path, *, hydrogens: bool = False, complex_pdb: bool = False
) -> list[Path]:
    """Write the ranked poses of one complex (and its complex PDB) into ``folder``.

    Pose files of an earlier run in ``folder`` are removed first.

    Parameters
    ----------
    result
        The docked complex.
    folder
        ``OUT/<name>``; created if needed.
    hydrogens
        Add hydrogens with 3D coordinates (:func:`~discodock.data.ligand.with_hydrogens`) to every pose.
    complex_pdb
        Also write ``complex.pdb``: the receptor and the rank-1 pose.

    Returns
    -------
    list of Path
        The files written, ``rank1.sdf`` last.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if _RANK_FILE.match(stale.name) or stale.name == COMPLEX_PDB_FILE:
            stale.unlink()
    molecules = [with_hydrogens(pose.mol) if hydrogens else pose.mol for pose in result.poses]
    written = []
    if complex_pdb:
        written.append(_write_atomically(folder / COMPLEX_PDB_FILE, complex_pdb_block(result)))
    for rank, (pose, mol) in enumerate(zip(result.poses, molecules, strict=True), start=1):
        name = pose_file_name(rank, pose.confidence)
        if name != BEST_POSE_FILE:
            written.append(_write_atomically(folder / name, sdf_block(mol)))
    written.append(_write_atomically(folder / BEST_POSE_FILE, sdf_block(molecules[0])))
    return written


def sdf_block(mol: Chem.Mol) -> str:
    """One SDF record of ``mol`` (V2000, kekulised) with all its properties, ``$$$$``-terminated."""
    buffer = io.StringIO()
    with Chem.SDWriter(buffer) as writer:
        writer.SetProps(list(mol.GetPropNames()))
        writer.write(mol)
    return buffer.getvalue()


def complex_pdb_block(result: DockingResult) -> str:
    """PDB text of the receptor file's first model followed by the rank-1 pose as ``HETATM LIG``.

    The ligand's serial numbers continue after the receptor's, and its bonds are written as ``CONECT``
    records with those numbers.
    """
    path = result.protein.path
    model = read_first_model(path)
    receptor = io.StringIO()
    writer = PDBIO()
    writer.set_structure(model)
    writer.save(receptor, write_end=False)
    receptor_lines = receptor.getvalue().splitlines()
    last_serial = max(
        int(line[6:11]) for line in receptor_lines if line.startswith(("ATOM", "HETATM", "TER"))
    )
    used_chains = {chain.id for chain in model}
    chain = next(c for c in "LXYZ" + "ABCDEFGHIJKMNOPQRSTUVW" if c not in used_chains)
    ligand_lines = _renumbered(_ligand_pdb_lines(result.best.mol, chain), last_serial)
    return "\n".join([*receptor_lines, *ligand_lines, "END"]) + "\n"


class ResultsTable:
    """``OUT/results.csv``: one row per input (columns :data:`RESULTS_COLUMNS`), flushed as rows arrive.

    ``status`` is ``ok``, ``failed`` or ``skipped``; ``best_confidence`` is the rank-1 confidence (empty
    when failed, ``nan`` when unranked); ``error`` the one-line reason of a failure. Opening it replaces
    the table of an earlier run. Use as a context manager.

    Parameters
    ----------
    out_dir
        The run's output folder (created if needed).
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / RESULTS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle: TextIO = self.path.open("w", newline="", encoding="utf-8")
        csv.writer(self.handle).writerow(RESULTS_COLUMNS)

    def __enter__(self) -> ResultsTable:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.handle.close()

    def add(self, name: str, status: str, confidence: float | None, seconds: float, error: str = "") -> None:
        """Append one row."""
        confidence_text = "" if confidence is None else f"{confidence:.4f}"
        csv.writer(self.handle).writerow([name, status, confidence_text, f"{seconds:.2f}", error])
        self.handle.flush()


def finished_confidence(folder: str | Path) -> float | None:
    """Confidence of the rank-1 pose of a finished complex folder; ``None`` if not finished."""
    path = Path(folder) / BEST_POSE_FILE
    if not path.is_file():
        return None
    supplier = Chem.SDMolSupplier(str(path), sanitize=False)
    mol = next(iter(supplier), None)
    if mol is None or not mol.HasProp("confidence"):
        return math.nan
    return float(mol.GetProp("confidence"))


def _write_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def _ligand_pdb_lines(mol: Chem.Mol, chain: str) -> list[str]:
    """``HETATM`` and ``CONECT`` lines of ``mol`` as residue ``LIG 1`` of ``chain``, numbered from 1."""
    named = Chem.Mol(mol)
    for atom in named.GetAtoms():
        info = Chem.AtomPDBResidueInfo()
        name = f"{atom.GetSymbol()}{atom.GetIdx() + 1}"
        info.SetName((f" {name}" if len(atom.GetSymbol()) == 1 and len(name) < 4 else name)[:4].ljust(4))
        info.SetResidueName(_LIGAND_RESIDUE)
        info.SetResidueNumber(1)
        info.SetChainId(chain)
        info.SetIsHeteroAtom(True)
        atom.SetMonomerInfo(info)
    block = Chem.MolToPDBBlock(named)
    return [line for line in block.splitlines() if line.startswith(("HETATM", "CONECT"))]


def _renumbered(lines: list[str], offset: int) -> list[str]:
    """PDB ``HETATM``/``CONECT`` lines with every serial number (5-character fields) raised by ``offset``."""
    renumbered = []
    for line in lines:
        if line.startswith("HETATM"):
            renumbered.append(f"{line[:6]}{int(line[6:11]) + offset:5d}{line[11:]}")
        else:
            fields = [line[i : i + 5] for i in range(6, len(line), 5)]
            renumbered.append("CONECT" + "".join(f"{int(f) + offset:5d}" for f in fields if f.strip()))
    return renumbered
