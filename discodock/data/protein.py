"""Reading a receptor into C-alpha nodes with backbone-frame features (method.md §2.1, §6.16).

A residue becomes a node iff it has N, CA and C atoms (polymer residues, and HETATM residues such as
selenomethionine that carry a backbone); polymer residues missing one of them are dropped. Waters and every
other HETATM group are not nodes; they are kept in :attr:`Protein.hetero_groups` for a later cofactor option.
Only the first model of the file is read, and alternate locations are resolved as Biopython does (the
highest-occupancy altloc, the first one on ties).

Residue types are indices into :data:`STANDARD_RESIDUES` (the 20 amino acids in alphabetical order of their
three-letter codes); 20 (:data:`UNKNOWN_RESIDUE_TYPE`) is any other residue with a backbone. Selenomethionine
(MSE) and the force-field protonation names in :data:`RESIDUE_ALIASES` count as their standard residue.

Formats: PDB (``.pdb``), PDBQT (``.pdbqt``) and mmCIF (``.cif``, ``.mmcif``), each plain or gzipped (``.gz``).
PDBQT is read as PDB cut to its first 66 columns, so the partial charge and AutoDock atom type in columns
67-79 never reach the parser (``OA`` or ``NA`` are atom types, not elements). Every problem with the file is
raised as a one-line :class:`~discodock.errors.InputError` naming the file.
"""

from __future__ import annotations

import gzip
import io
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from Bio.PDB import MMCIFParser, PDBParser
from Bio.PDB.Model import Model
from Bio.PDB.PDBExceptions import PDBConstructionException, PDBConstructionWarning
from Bio.PDB.Residue import Residue
from Bio.PDB.Structure import Structure

from discodock.data.vocabulary import STANDARD_RESIDUES, UNKNOWN_RESIDUE_TYPE
from discodock.errors import InputError

RESIDUE_ALIASES: dict[str, str] = {
    "MSE": "MET",
    "HID": "HIS",
    "HIE": "HIS",
    "HIP": "HIS",
    "HSD": "HIS",
    "HSE": "HIS",
    "HSP": "HIS",
    "CYX": "CYS",
    "CYM": "CYS",
    "ASH": "ASP",
    "GLH": "GLU",
    "LYN": "LYS",
}
"""Non-standard residue names that count as a standard amino acid: selenomethionine and protonation states."""

WATER_NAMES = frozenset({"HOH", "WAT", "DOD", "H2O"})
"""Residue names of water molecules."""

MAX_RESIDUES = 20_000
"""Largest number of residue nodes accepted; bigger receptors are refused rather than exhausting memory."""

BACKBONE_ATOMS = ("N", "CA", "C")
"""Atoms a residue must have to become a node."""

_FORMAT_BY_SUFFIX = {".pdb": "PDB", ".pdbqt": "PDBQT", ".cif": "mmCIF", ".mmcif": "mmCIF"}

# Ideal-geometry coefficients of the virtual C-beta, in the basis (b × c, b, c) with b = CA − N, c = C − CA.
_CB_COEFFICIENTS = (-0.58273431, 0.56802827, -0.54067466)


@dataclass(frozen=True)
class HeteroGroup:
    """A HETATM group that is not a residue node: a water, ion, cofactor or ligand.

    Attributes
    ----------
    residue_name
        Residue name as written in the file, e.g. ``"HOH"`` or ``"HEM"``.
    chain_id
        Chain identifier (author chain for mmCIF).
    residue_number
        Residue sequence number (author numbering for mmCIF).
    insertion_code
        Insertion code, ``""`` when absent.
    elements
        ``str[A]`` element symbols of its atoms, upper case as Biopython writes them (``"C"``, ``"ZN"``).
    coordinates
        ``float32[A, 3]`` atom positions in Å, in the file's frame.
    """

    residue_name: str
    chain_id: str
    residue_number: int
    insertion_code: str
    elements: np.ndarray
    coordinates: np.ndarray

    @property
    def is_water(self) -> bool:
        """Whether this group is a water molecule."""
        return self.residue_name in WATER_NAMES


@dataclass(frozen=True)
class Protein:
    """Receptor residues as C-alpha nodes, with backbone vectors, in the file's frame (Å).

    ``R`` is the number of residues with N, CA and C atoms, in file order (chain by chain).

    Attributes
    ----------
    path
        The file it was read from.
    residue_types
        ``int64[R]``: index into :data:`STANDARD_RESIDUES`, or :data:`UNKNOWN_RESIDUE_TYPE`.
    residue_names
        ``str[R]``: residue names as written in the file (``"MSE"`` stays ``"MSE"`` here).
    chain_ids
        ``str[R]``: chain identifiers (author chains for mmCIF).
    residue_numbers
        ``int64[R]``: residue sequence numbers (author numbering for mmCIF).
    insertion_codes
        ``str[R]``: insertion codes, ``""`` when absent.
    ca
        ``float32[R, 3]``: C-alpha positions.
    n_ca
        ``float32[R, 3]``: N − CA.
    c_ca
        ``float32[R, 3]``: C − CA.
    cb_ca
        ``float32[R, 3]``: virtual CB − CA from ideal geometry: with b = CA − N, c = C − CA and a = b × c,
        CB = −0.58273431 a + 0.56802827 b − 0.54067466 c + CA (|CB − CA| ≈ 1.52 Å).
    hetero_groups
        HETATM groups that are not residue nodes (waters included), in file order.
    """

    path: Path
    residue_types: np.ndarray
    residue_names: np.ndarray
    chain_ids: np.ndarray
    residue_numbers: np.ndarray
    insertion_codes: np.ndarray
    ca: np.ndarray
    n_ca: np.ndarray
    c_ca: np.ndarray
    cb_ca: np.ndarray
    hetero_groups: list[HeteroGroup]

    @property
    def num_residues(self) -> int:
        """Number of residue nodes ``R``."""
        return len(self.residue_types)

    def local_frame(self) -> np.ndarray:
        """Backbone vectors of each residue, the residues' l = 1 input features.

        Returns
        -------
        np.ndarray
            ``float32[R, 3, 3]`` where ``[:, 0]`` is N − CA, ``[:, 1]`` is C − CA and ``[:, 2]`` is the
            virtual CB − CA; each row is a Cartesian vector in Å.
        """
        return np.stack([self.n_ca, self.c_ca, self.cb_ca], axis=1)


def read_protein(path: str | Path) -> Protein:
    """Read a receptor from a PDB, PDBQT or mmCIF file, plain or gzipped.

    Parameters
    ----------
    path
        File whose name ends in ``.pdb``, ``.pdbqt``, ``.cif`` or ``.mmcif``, optionally followed by ``.gz``.

    Returns
    -------
    Protein
        The residues of the first model that have N, CA and C atoms, plus its hetero groups.

    Raises
    ------
    InputError
        If the file is missing, empty, of an unknown type, cannot be parsed, holds no atoms or no residue with
        N, CA and C atoms, or has more than :data:`MAX_RESIDUES` residues.
    """
    path = Path(path)
    model = read_first_model(path)
    residues: list[Residue] = []
    hetero_groups: list[HeteroGroup] = []
    for chain in model:
        for residue in chain:
            name = residue.get_resname().strip()
            if name not in WATER_NAMES and all(atom in residue for atom in BACKBONE_ATOMS):
                residues.append(residue)
            elif residue.id[0] != " ":
                hetero_groups.append(_hetero_group(residue, chain.id))
    if not residues:
        raise InputError(path, "has no amino-acid residue with N, CA and C atoms")
    if len(residues) > MAX_RESIDUES:
        raise InputError(
            path, f"has {len(residues)} residues, more than the {MAX_RESIDUES} this tool accepts"
        )
    return _protein_from_residues(path, residues, hetero_groups)


def read_first_model(path: str | Path) -> Model:
    """The first model of a PDB, PDBQT or mmCIF file (plain or gzipped) as a Biopython ``Model``.

    Raises
    ------
    InputError
        If the file is missing, empty, of an unknown type, cannot be parsed or holds no atoms.
    """
    path = Path(path)
    return _first_model(_parse_structure(path, _file_format(path), _read_text(path)), path)


def _file_format(path: Path) -> str:
    """Name the format given by the file's suffixes (``.gz`` aside), or raise InputError."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    file_format = _FORMAT_BY_SUFFIX.get(suffixes[-1]) if suffixes else None
    if file_format is None:
        known = ", ".join(sorted(_FORMAT_BY_SUFFIX))
        raise InputError(path, f"unknown protein file type; expected one of {known}, optionally gzipped")
    return file_format


def _read_text(path: Path) -> str:
    """Return the (gunzipped if ``.gz``) text of the file; raise InputError if it is unreadable or empty.

    Bytes that are not UTF-8 are replaced rather than refused, so a stray accent in a REMARK does not stop the
    read; a binary file then fails later for holding no atoms.
    """
    if not path.exists():
        raise InputError(path, "no such file")
    if not path.is_file():
        raise InputError(path, "is not a regular file")
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        else:
            text = path.read_text(encoding="utf-8", errors="replace")
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(path, f"cannot be read ({error})") from error
    if not text.strip():
        raise InputError(path, "is empty")
    return text


def _parse_structure(path: Path, file_format: str, text: str) -> Structure:
    """Parse the text with Biopython, silencing its construction warnings; raise InputError on errors."""
    if file_format == "PDBQT":
        text = "\n".join(
            line[:66] if line.startswith(("ATOM", "HETATM")) else line for line in text.splitlines()
        )
    parser = MMCIFParser(QUIET=True) if file_format == "mmCIF" else PDBParser(QUIET=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PDBConstructionWarning)
            return parser.get_structure(path.name, io.StringIO(text))
    except (PDBConstructionException, ValueError, KeyError, IndexError) as error:
        reason = f"missing {error.args[0]}" if isinstance(error, KeyError) else str(error)
        raise InputError(path, f"is not a valid {file_format} file ({reason})") from error


def _first_model(structure: Structure, path: Path) -> Model:
    """Return the structure's first model, or raise InputError if the file held no atoms."""
    models = structure.child_list
    if not models or next(models[0].get_atoms(), None) is None:
        raise InputError(path, "contains no atoms (not a protein structure file?)")
    return models[0]


def _hetero_group(residue: Residue, chain_id: str) -> HeteroGroup:
    """Collect one HETATM residue's atoms (the selected altloc of each)."""
    atoms = list(residue.get_atoms())
    return HeteroGroup(
        residue_name=residue.get_resname().strip(),
        chain_id=chain_id,
        residue_number=int(residue.id[1]),
        insertion_code=residue.id[2].strip(),
        elements=np.array([atom.element for atom in atoms], dtype=str),
        coordinates=np.array([atom.coord for atom in atoms], dtype=np.float32).reshape(-1, 3),
    )


def _residue_type(name: str) -> int:
    """Index of a residue name in :data:`STANDARD_RESIDUES` after aliasing, else the unknown type."""
    standard_name = RESIDUE_ALIASES.get(name, name)
    if standard_name in STANDARD_RESIDUES:
        return STANDARD_RESIDUES.index(standard_name)
    return UNKNOWN_RESIDUE_TYPE


def _virtual_cb_minus_ca(n_pos: np.ndarray, ca_pos: np.ndarray, c_pos: np.ndarray) -> np.ndarray:
    """Virtual CB − CA from ideal geometry, ``float[R, 3]`` from three ``float[R, 3]`` backbone positions.

    With b = CA − N, c = C − CA and a = b × c: CB − CA = −0.58273431 a + 0.56802827 b − 0.54067466 c.
    """
    b = ca_pos - n_pos
    c = c_pos - ca_pos
    a = np.cross(b, c)
    coef_a, coef_b, coef_c = _CB_COEFFICIENTS
    return coef_a * a + coef_b * b + coef_c * c


def _protein_from_residues(path: Path, residues: list[Residue], hetero_groups: list[HeteroGroup]) -> Protein:
    """Assemble the :class:`Protein` arrays from the kept residues."""
    backbone = np.array(
        [[residue[atom].coord for atom in BACKBONE_ATOMS] for residue in residues], dtype=np.float64
    )
    n, ca, c = backbone[:, 0], backbone[:, 1], backbone[:, 2]
    names = [residue.get_resname().strip() for residue in residues]
    return Protein(
        path=path,
        residue_types=np.array([_residue_type(name) for name in names], dtype=np.int64),
        residue_names=np.array(names, dtype=str),
        chain_ids=np.array([residue.get_parent().id for residue in residues], dtype=str),
        residue_numbers=np.array([residue.id[1] for residue in residues], dtype=np.int64),
        insertion_codes=np.array([residue.id[2].strip() for residue in residues], dtype=str),
        ca=ca.astype(np.float32),
        n_ca=(n - ca).astype(np.float32),
        c_ca=(c - ca).astype(np.float32),
        cb_ca=_virtual_cb_minus_ca(n, ca, c).astype(np.float32),
        hetero_groups=hetero_groups,
    )
