"""Reading ligands and describing them as heavy-atom graphs.

A ligand is an RDKit molecule with **heavy atoms only** (method.md §1.1): hydrogens are removed on reading
and put back, with coordinates, only when a pose is written out (:func:`with_hydrogens`). Its graph is:

* :func:`atom_features` -- 16 categorical features per atom (method.md §2.2), embedded by the score model
  with one table per column of sizes :data:`ATOM_FEATURE_CARDINALITIES`;
* :func:`bond_graph` -- the chemical bonds as directed edges, each bond twice (u→v then v→u), with a
  bond-type index in ``0..3`` (single, double, triple, aromatic) for the 4-dim one-hot of method.md §2.3.

Accepted inputs (:func:`read_ligands`):

* ``.sdf`` (several records allowed), ``.mol``, ``.mol2`` (several ``@<TRIPOS>MOLECULE`` blocks allowed),
  each optionally gzip-compressed (``.sdf.gz`` …);
* ``.smi`` / ``.smiles`` files: one ``SMILES [name]`` per line; blank lines, ``#`` comments and a first
  line whose first word is ``smiles`` (a header) are skipped;
* a SMILES string, optionally followed by whitespace and a name.

Ligand ``.pdb`` / ``.pdbqt`` files are refused: they carry no bond orders, so aromaticity, charges and hence
the atom features could only be guessed.

Every molecule is parsed and sanitised by RDKit (which also perceives stereochemistry, from 3D coordinates
when there are some), all hydrogens are removed, and

* if it falls into several disconnected fragments (salts, counter-ions), **the largest fragment is kept**
  (ties: the one holding the lowest atom index) and a warning is logged. Keeping everything, as DiffDock
  does, breaks the rotatable-bond rule of method.md §1.2, which assumes one connected graph;
* the conformer is kept only when the file gave 3D coordinates (RDKit's ``Is3D`` flag); 2D depictions are
  dropped, and SMILES inputs have no conformer;
* the name (``_Name``: SDF/MOL header line, MOL2 molecule name, SMILES name column) is preserved.

Every problem with the input is raised as a one-line :class:`~discodock.errors.InputError`, and RDKit's own
log messages are silenced while parsing, so that this line is all a user sees.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem.rdchem import BondType

from discodock.data.vocabulary import (
    ATOM_FEATURE_CARDINALITIES,
    ATOMIC_NUMBERS,
    CHIRAL_TAGS,
    DEGREES,
    FORMAL_CHARGES,
    HYBRIDISATIONS,
    HYDROGEN_COUNTS,
    IMPLICIT_VALENCES,
    RADICAL_ELECTRON_COUNTS,
    RING_COUNTS,
    RING_SIZES,
)
from discodock.errors import InputError

logger = logging.getLogger(__name__)

# Ligand formats by file suffix (after stripping ".gz").
_FORMATS_BY_SUFFIX = {".sdf": "sdf", ".mol": "mol", ".mol2": "mol2", ".smi": "smiles", ".smiles": "smiles"}
# Structure formats without bond orders, refused with an explanation.
_FORMATS_WITHOUT_BOND_ORDERS = (".pdb", ".pdbqt", ".ent", ".xyz")
# Other suffixes that make a string a file name, not a SMILES, when no such file exists.
_OTHER_FILE_SUFFIXES = (".gz", ".txt", ".csv", ".cif", ".mmcif")
# Characters that occur in SMILES but hardly ever in file paths.
_SMILES_ONLY_CHARACTERS = re.compile(r"[()\[\]=#@+%]")
# A path separator, a leading "~" or a trailing ".extension".
_PATH_LIKE = re.compile(r"[/\\]|^~|\.[A-Za-z][A-Za-z0-9]{0,5}$")

_MOL2_MOLECULE_TAG = "@<TRIPOS>MOLECULE"
_SDF_RECORD_SEPARATOR = re.compile(r"^\$\$\$\$[^\n]*(?:\n|$)", flags=re.MULTILINE)

BOND_TYPES: tuple[BondType, ...] = (BondType.SINGLE, BondType.DOUBLE, BondType.TRIPLE, BondType.AROMATIC)
"""RDKit bond type of each bond-type index of :func:`bond_graph`; other types are refused on reading."""


def read_ligands(source: str | Path) -> list[Chem.Mol]:
    """Read every molecule of a ligand file, or the molecule of a SMILES string.

    Parameters
    ----------
    source
        A ``.sdf``, ``.mol``, ``.mol2`` (each optionally ``.gz``), ``.smi`` or ``.smiles`` file, or a SMILES
        string (``"SMILES [name]"``). A string names a file if that file exists; otherwise it is a SMILES,
        unless it looks like a file name (known suffix; or a path separator or ``.ext`` ending, no
        SMILES-only character and no valid SMILES), in which case the file is reported missing.

    Returns
    -------
    list of rdkit.Chem.Mol
        Sanitised heavy-atom molecules in file order, each one connected fragment, with a 3D conformer when
        the file had 3D coordinates and a ``_Name`` property when the input named the molecule.

    Raises
    ------
    InputError
        Missing, empty, unreadable or malformed file; unknown or bond-order-free format; invalid SMILES;
        failed sanitisation (with RDKit's reason); no heavy atoms; unsupported bond type. In files with
        several molecules the culprit is named ("molecule 2", "line 5", counted from 1).
    """
    text = str(source).strip()
    if not text:
        raise InputError(repr(str(source)), "no ligand given (empty string)")
    path = Path(text).expanduser()
    kind = _existing_path_kind(path)
    if kind == "directory":
        raise InputError(source, "is a directory, expected a ligand file or a SMILES string")
    if kind == "file":
        return _read_ligand_file(path)
    if _is_file_name(text):
        raise InputError(source, "file not found")
    with rdBase.BlockLogs():
        return [_molecule_from_smiles_line(text, source, label="")]


def read_ligand(source: str | Path) -> Chem.Mol:
    """Read exactly one ligand; see :func:`read_ligands` for the inputs and the returned molecule.

    Raises
    ------
    InputError
        As :func:`read_ligands`, and when the input holds several molecules (none is silently chosen).
    """
    molecules = read_ligands(source)
    if len(molecules) != 1:
        raise InputError(source, f"contains {len(molecules)} molecules, expected exactly one")
    return molecules[0]


def atom_features(mol: Chem.Mol) -> np.ndarray:
    """Categorical features of every atom of a sanitised heavy-atom molecule (method.md §2.2).

    Column j holds a category index in ``0..ATOM_FEATURE_CARDINALITIES[j]-1``; a value outside the column's
    vocabulary takes the last ("misc") index. Columns (:data:`ATOM_FEATURE_NAMES`): atomic number 1–118;
    chirality tag; total degree 0–10 (heavy neighbours + hydrogens); formal charge −5…5; implicit valence
    0–6; total hydrogens 0–8; radical electrons 0–4; hybridisation SP, SP2, SP3, SP3D, SP3D2; aromatic;
    number of SSSR rings through the atom 0–6; membership of a ring of size 3, 4, 5, 6, 7, 8.

    Hydrogens: on a heavy-atom graph every hydrogen is implicit, so the hydrogen count and the implicit
    valence (valence supplied by implicit hydrogens) both equal ``atom.GetTotalNumHs()``, which counts the
    hydrogens whether RDKit stores them as an explicit count or derives them from the default valence.
    RDKit's ``GetValence(IMPLICIT)``, used by DiffDock, leaves out explicit counts and therefore depends on
    the input format (0 for a chiral CH read from an SDF with hydrogens or from ``[C@H]``, 1 for the same
    atom read from an SDF without hydrogens); the definition here gives one answer for every format.

    Parameters
    ----------
    mol
        Sanitised molecule (aromaticity, hybridisation, rings perceived) with N atoms, none of them H.

    Returns
    -------
    numpy.ndarray
        ``(N, 16)`` int64 category indices.

    Raises
    ------
    ValueError
        If the molecule contains hydrogen atoms.
    """
    if any(atom.GetAtomicNum() == 1 for atom in mol.GetAtoms()):
        raise ValueError("atom_features expects a heavy-atom molecule; remove the hydrogens first")
    ring_info = mol.GetRingInfo()
    rows = []
    for atom in mol.GetAtoms():
        index = atom.GetIdx()
        hydrogens = atom.GetTotalNumHs()
        rows.append(
            [
                _category(atom.GetAtomicNum(), ATOMIC_NUMBERS),
                _category(str(atom.GetChiralTag()), CHIRAL_TAGS),
                _category(atom.GetTotalDegree(), DEGREES),
                _category(atom.GetFormalCharge(), FORMAL_CHARGES),
                _category(hydrogens, IMPLICIT_VALENCES),
                _category(hydrogens, HYDROGEN_COUNTS),
                _category(atom.GetNumRadicalElectrons(), RADICAL_ELECTRON_COUNTS),
                _category(str(atom.GetHybridization()), HYBRIDISATIONS),
                int(atom.GetIsAromatic()),
                _category(ring_info.NumAtomRings(index), RING_COUNTS),
                *(int(ring_info.IsAtomInRingOfSize(index, size)) for size in RING_SIZES),
            ]
        )
    return np.asarray(rows, dtype=np.int64).reshape(mol.GetNumAtoms(), len(ATOM_FEATURE_CARDINALITIES))


def bond_graph(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """Chemical bonds as directed edges, both ways, in RDKit bond order (method.md §2.3).

    Bond b from atom u = begin to atom v = end gives column 2b = (u, v) and column 2b+1 = (v, u).

    Parameters
    ----------
    mol
        Molecule with E bonds, each of a type in :data:`BOND_TYPES`.

    Returns
    -------
    edge_index : numpy.ndarray
        ``(2, 2E)`` int64 atom indices; row 0 the source, row 1 the target of each directed edge.
    bond_type : numpy.ndarray
        ``(2E,)`` int64 index into :data:`BOND_TYPES`: 0 single, 1 double, 2 triple, 3 aromatic.

    Raises
    ------
    ValueError
        If a bond has another type (molecules from :func:`read_ligands` never do).
    """
    edges = []
    types = []
    for bond in mol.GetBonds():
        if bond.GetBondType() not in BOND_TYPES:
            raise ValueError(f"bond {bond.GetIdx()} has unsupported type {bond.GetBondType()}")
        begin, end = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        edges += [(begin, end), (end, begin)]
        types += 2 * [BOND_TYPES.index(bond.GetBondType())]
    edge_index = np.asarray(edges, dtype=np.int64).reshape(-1, 2).T.copy()
    return edge_index, np.asarray(types, dtype=np.int64)


def with_hydrogens(mol_with_pose: Chem.Mol) -> Chem.Mol:
    """Copy of a heavy-atom molecule with hydrogen atoms added and placed in 3D, for writing out poses.

    Hydrogens are appended after the heavy atoms, so heavy-atom indices are unchanged, and RDKit positions
    them from the heavy-atom geometry of every conformer (``Chem.AddHs(addCoords=True)``).

    Parameters
    ----------
    mol_with_pose
        Heavy-atom molecule, normally with one or more 3D conformers.

    Returns
    -------
    rdkit.Chem.Mol
        The molecule with explicit hydrogen atoms.
    """
    return Chem.AddHs(mol_with_pose, addCoords=True)


def canonical_smiles(mol: Chem.Mol) -> str:
    """Canonical isomeric SMILES of the heavy-atom graph (the same for every input format)."""
    return Chem.MolToSmiles(Chem.RemoveAllHs(mol))


def inchikey(mol: Chem.Mol) -> str:
    """Standard InChIKey (27 characters), e.g. to find ligands shared between data splits.

    Raises
    ------
    InputError
        If the InChI library cannot handle the molecule (named by :func:`ligand_label`).
    """
    with rdBase.BlockLogs():
        key = Chem.MolToInchiKey(mol)
    if not key:
        raise InputError(ligand_label(mol), "InChI could not be generated")
    return key


def ligand_label(mol: Chem.Mol) -> str:
    """Short label for messages: the molecule's name, or its canonical SMILES when it has none."""
    name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
    return name or canonical_smiles(mol)


def _category(value: object, vocabulary: tuple[object, ...]) -> int:
    """Index of ``value`` in ``vocabulary``, or ``len(vocabulary)`` (the misc category) if absent."""
    return vocabulary.index(value) if value in vocabulary else len(vocabulary)


def _existing_path_kind(path: Path) -> str | None:
    """``"file"``, ``"directory"`` or None (nothing there, or no valid path, e.g. a very long SMILES)."""
    try:
        if path.is_dir():
            return "directory"
        return "file" if path.exists() else None
    except OSError:
        return None


def _is_file_name(text: str) -> bool:
    """Whether a string that names no existing file is meant as a file name rather than a SMILES.

    True for a known structure-file suffix, and for path-like strings (separator, ``~``, ``.ext`` ending)
    with no SMILES-only character that do not parse as SMILES (``C/C=C/C`` and ``CC.Cl`` are SMILES).
    """
    suffixes = (*_FORMATS_BY_SUFFIX, *_FORMATS_WITHOUT_BOND_ORDERS, *_OTHER_FILE_SUFFIXES)
    if text.lower().endswith(suffixes):
        return True
    if not _PATH_LIKE.search(text) or _SMILES_ONLY_CHARACTERS.search(text):
        return False
    with rdBase.BlockLogs():
        return Chem.MolFromSmiles(text.split()[0], sanitize=False) is None


def _read_ligand_file(path: Path) -> list[Chem.Mol]:
    """Molecules of an existing ligand file, parsed according to its suffix; see :func:`read_ligands`."""
    name = path.name.lower()
    compressed = name.endswith(".gz")
    suffix = Path(name.removesuffix(".gz")).suffix
    if suffix in _FORMATS_WITHOUT_BOND_ORDERS:
        raise InputError(
            path, f"{suffix} ligand files carry no bond orders; give SDF, MOL2 or SMILES instead"
        )
    if suffix not in _FORMATS_BY_SUFFIX:
        expected = ", ".join(_FORMATS_BY_SUFFIX)
        raise InputError(path, f"unknown ligand file type {suffix or '(none)'}; expected {expected} (or .gz)")
    text = _read_text(path, compressed)
    if not text.strip():
        raise InputError(path, "file is empty")
    file_format = _FORMATS_BY_SUFFIX[suffix]
    with rdBase.BlockLogs():
        if file_format == "smiles":
            return _molecules_from_smiles_file(text, path)
        records = _record_texts(text, file_format)
        if not records:
            raise InputError(path, "no molecule found")
        parse = Chem.MolFromMol2Block if file_format == "mol2" else Chem.MolFromMolBlock
        return [
            _molecule_from_record(
                partial(parse, record, removeHs=False),
                path,
                label=f"molecule {number}: " if len(records) > 1 else "",
                unparsable="malformed record, RDKit could not parse it",
            )
            for number, record in enumerate(records, start=1)
        ]


def _read_text(path: Path, compressed: bool) -> str:
    """The file's text, gunzipped if ``compressed``; unreadable or binary files raise :class:`InputError`."""
    try:
        if compressed:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8")
    except (gzip.BadGzipFile, EOFError):
        raise InputError(path, "not a valid gzip file") from None
    except UnicodeDecodeError:
        raise InputError(path, "not a text file (cannot be decoded as UTF-8)") from None
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror or error})") from None


def _record_texts(text: str, file_format: str) -> list[str]:
    """Text of each molecule: SDF split at ``$$$$`` lines, MOL whole, MOL2 split at MOLECULE tags."""
    if file_format == "sdf":
        return [record for record in _SDF_RECORD_SEPARATOR.split(text) if record.strip()]
    if file_format == "mol":
        return [text]
    return [_MOL2_MOLECULE_TAG + block for block in text.split(_MOL2_MOLECULE_TAG)[1:]]


def _molecules_from_smiles_file(text: str, path: Path) -> list[Chem.Mol]:
    """Molecules of a SMILES file: one ``SMILES [name]`` per line; blanks, comments and header skipped."""
    molecules = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line_number == 1 and stripped.split()[0].lower() == "smiles":
            continue
        molecules.append(_molecule_from_smiles_line(stripped, path, label=f"line {line_number}: "))
    if not molecules:
        raise InputError(path, "no SMILES found")
    return molecules


def _molecule_from_smiles_line(line: str, source: str | Path, label: str) -> Chem.Mol:
    """Molecule of one ``SMILES [name]`` line, named after the rest of the line if there is one."""
    smiles, *name = line.split(maxsplit=1)
    mol = _molecule_from_record(
        partial(Chem.MolFromSmiles, smiles), source, label, unparsable=f"invalid SMILES {smiles!r}"
    )
    if name:
        mol.SetProp("_Name", name[0].strip())
    return mol


def _molecule_from_record(
    parse: Callable[[bool], Chem.Mol | None], source: str | Path, label: str, unparsable: str
) -> Chem.Mol:
    """Parse one record with RDKit's sanitisation, strip hydrogens, check it, keep the largest fragment.

    Parsing with ``sanitize=True`` lets RDKit's readers perceive stereochemistry as they intend (from 3D
    coordinates, wedges or SMILES, without tags on atoms that are no stereocentres). Only if that fails is
    the record parsed again unsanitised, to report why: ``unparsable`` if it cannot be parsed at all,
    otherwise RDKit's sanitisation error.

    Parameters
    ----------
    parse
        ``parse(sanitize)`` returns the record's molecule (hydrogen atoms as given), or None on failure.
    source
        The file or string named in errors.
    label
        Prefix of every problem, e.g. ``"molecule 2: "``, naming the culprit in multi-molecule inputs.
    unparsable
        The problem reported when RDKit cannot parse the record even without sanitisation.
    """
    parsed = parse(True)
    if parsed is None:
        raise InputError(source, label + _parse_failure(parse(False), unparsable))
    mol = Chem.RemoveAllHs(parsed)
    if mol.GetNumAtoms() == 0:
        raise InputError(source, f"{label}no heavy atoms")
    for bond in mol.GetBonds():
        if bond.GetBondType() not in BOND_TYPES:
            raise InputError(
                source,
                f"{label}unsupported bond type {bond.GetBondType()} between atoms "
                f"{bond.GetBeginAtomIdx()} and {bond.GetEndAtomIdx()} (numbered from 0, as RDKit does)",
            )
        ends_aromatic = bond.GetBeginAtom().GetIsAromatic() and bond.GetEndAtom().GetIsAromatic()
        if bond.GetIsAromatic() and not ends_aromatic:
            # e.g. SDF bond type 4 on a ring RDKit does not perceive as aromatic: no valid Kekulé structure
            raise InputError(
                source,
                f"{label}aromatic bond between atoms {bond.GetBeginAtomIdx()} and {bond.GetEndAtomIdx()} "
                "outside an aromatic ring (cannot be kekulized)",
            )
    mol = _largest_fragment(mol, source, label)
    if mol.GetNumConformers() and not mol.GetConformer().Is3D():
        mol.RemoveAllConformers()
    return mol


def _parse_failure(unsanitised: Chem.Mol | None, unparsable: str) -> str:
    """Why a sanitised parse failed, given the unsanitised parse of the same record (None if that failed)."""
    if unsanitised is None:
        return unparsable
    try:
        Chem.SanitizeMol(unsanitised)
    except Chem.MolSanitizeException as error:
        return f"sanitisation failed: {error}"
    return "RDKit could not read it"


def _largest_fragment(mol: Chem.Mol, source: str | Path, label: str) -> Chem.Mol:
    """The molecule cut down to its largest connected fragment (ties: lowest atom index).

    Atom order, conformers and properties of the kept atoms are unchanged; a warning is logged when atoms
    are dropped.
    """
    fragments = Chem.GetMolFrags(mol)
    if len(fragments) == 1:
        return mol
    kept = max(fragments, key=len)  # max() returns the first of equally large fragments
    logger.warning(
        "%s: %skept the largest of %d disconnected fragments (%d of %d heavy atoms)",
        source,
        label,
        len(fragments),
        len(kept),
        mol.GetNumAtoms(),
    )
    editable = Chem.RWMol(mol)
    kept_atoms = set(kept)
    for index in reversed(range(mol.GetNumAtoms())):
        if index not in kept_atoms:
            editable.RemoveAtom(index)
    fragment = editable.GetMol()
    Chem.SanitizeMol(fragment)
    return fragment


def as_ligand(mol: Chem.Mol, source: str = "ligand") -> Chem.Mol:
    """Check an RDKit molecule and bring it into the form of :func:`~discodock.data.ligand.read_ligands`.

    The molecule is sanitised, its hydrogens removed and its largest fragment kept, exactly as for a file.

    Raises
    ------
    InputError
        As for a file: failed sanitisation, no heavy atoms, unsupported bonds (``source`` names it).
    """
    return _molecule_from_record(
        partial(_copy_molecule, mol), source, label="", unparsable="not a valid RDKit molecule"
    )


def _copy_molecule(mol: Chem.Mol, sanitize: bool) -> Chem.Mol | None:
    """A copy of ``mol``, sanitised if asked; ``None`` when sanitisation fails."""
    copy = Chem.Mol(mol)
    if sanitize:
        try:
            Chem.SanitizeMol(copy)
        except (Chem.MolSanitizeException, RuntimeError):
            return None
    return copy
