"""Finding the protein and ligand files of complexes in a data folder.

Two layouts are understood, one sub-folder per complex:

* DiffDock / PDBBind: ``<id>/<id>_protein_processed.pdb`` and ``<id>_ligand.sdf`` or ``<id>_ligand.mol2``;
* this project's shared data: ``<key>/<key>_protein.(pdb|pdbqt|cif)[.gz]`` and the ligand as
  ``<key>_ligand.sdf`` / ``.mol2``, or, where the source file has no bond orders (PDBQT/PDB), a derived
  ``<key>_ligand_from_<method>.sdf``.

Ligand files without bond orders (PDBQT, PDB) are never used directly: a complex that has only those is
reported as unusable with that reason. When several ligand files exist they are all kept, in order of
preference (SDF, MOL2, derived SDFs), so that a reader can fall back to the next one when RDKit refuses a
file (e.g. the CASF-2016 SDFs that write carboxylates as ``C(=O)=O``, whose MOL2 files read fine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from discodock.errors import InputError

PROTEIN_SUFFIXES = ("_protein_processed.pdb", "_protein.pdb", "_protein.pdbqt", "_protein.cif")
LIGAND_SUFFIXES = ("_ligand.sdf", "_ligand.mol2")
# derived SDFs, most reliable first (see the shared data's SOURCES.md)
DERIVED_LIGAND_METHODS = ("ccd", "residues", "obabel")
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(name: str) -> str:
    """``name`` usable as a file or folder name: runs of characters outside ``A-Za-z0-9._+-`` become ``_``."""
    return _UNSAFE_NAME_CHARACTERS.sub("_", name.strip()).strip(".") or "complex"


@dataclass(frozen=True)
class ComplexFiles:
    """Input files of one complex; ``ligand_paths`` in order of preference (never empty)."""

    name: str
    protein_path: Path
    ligand_paths: tuple[Path, ...]

    @property
    def ligand_path(self) -> Path:
        return self.ligand_paths[0]


def _existing(folder: Path, stems: list[str]) -> list[Path]:
    """Files ``folder/<stem>`` or ``folder/<stem>.gz`` that exist, in the order of ``stems``."""
    return [
        candidate
        for stem in stems
        for candidate in (folder / stem, folder / f"{stem}.gz")
        if candidate.is_file()
    ]


def complex_files(folder: Path) -> ComplexFiles:
    """The protein and ligand files of the complex in ``folder``.

    Raises
    ------
    InputError
        If the folder lacks a protein file or a ligand file with bond orders.
    """
    key = folder.name
    proteins = _existing(folder, [key + suffix for suffix in PROTEIN_SUFFIXES])
    if not proteins:
        raise InputError(folder, f"no protein file ({key}_protein.pdb|.pdbqt|.cif[.gz])")
    ligands = _existing(
        folder,
        [key + suffix for suffix in LIGAND_SUFFIXES]
        + [f"{key}_ligand_from_{method}.sdf" for method in DERIVED_LIGAND_METHODS],
    )
    if not ligands:
        other = sorted(p.name for p in folder.glob(f"{key}_ligand*"))
        if other:
            raise InputError(
                folder, f"ligand file has no bond orders and no derived SDF ({', '.join(other)})"
            )
        raise InputError(folder, f"no ligand file ({key}_ligand.sdf|.mol2)")
    return ComplexFiles(name=key, protein_path=proteins[0], ligand_paths=tuple(ligands))


def read_split(path: str | Path) -> list[str]:
    """IDs listed in a split file, one per line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "split file not found")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    ids = [line.split()[0] for line in lines if line]
    if not ids:
        raise InputError(path, "split file lists no IDs")
    return ids


def find_complexes(
    data_dir: str | Path, split: list[str] | None = None
) -> tuple[list[ComplexFiles], list[tuple[str, str]]]:
    """Complexes of ``data_dir``, optionally restricted to the IDs of ``split``.

    A plain split ID names a sub-folder of ``data_dir`` (case-insensitive). An ID with a slash,
    ``<source>/<key>``, names the folder ``data_dir/<source>/<key>`` and becomes the complex's name; this
    lets one split file draw on several source folders (e.g. ``data/splits/train.txt``).

    Returns
    -------
    usable
        Complexes with a protein and a ligand file, in split order (sorted by name without a split).
    unusable
        ``(name, reason)`` for every complex folder (or split ID) that cannot be used.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(data_dir, "data folder not found")
    folders = {p.name.lower(): p for p in sorted(data_dir.iterdir()) if p.is_dir()}
    wanted = list(folders) if split is None else split
    usable: list[ComplexFiles] = []
    unusable: list[tuple[str, str]] = []
    for name in wanted:
        folder = data_dir / name if "/" in name else folders.get(name.lower())
        if folder is None or not folder.is_dir():
            unusable.append((name, f"{data_dir}: no folder {name}"))
            continue
        try:
            files = complex_files(folder)
        except InputError as error:
            unusable.append((name if "/" in name else folder.name, str(error)))
            continue
        usable.append(
            ComplexFiles(name if "/" in name else folder.name, files.protein_path, files.ligand_paths)
        )
    return usable, unusable
