"""Category vocabularies of residue and ligand-atom features (method.md §2.2), free of RDKit and Biopython.

The networks need only the sizes of these vocabularies, and they must be importable where RDKit and
Biopython are not installed (the GPU training machine). :mod:`discodock.data.ligand` and
:mod:`discodock.data.protein` map parsed molecules and residues onto them.

Every ligand-atom vocabulary gets one extra "misc" category at index ``len(vocabulary)`` for values outside
it; for chirality that category is every tag other than unspecified / clockwise / counter-clockwise.
RDKit enumerations are named by their ``str()`` (e.g. ``"SP3"``).
"""

from __future__ import annotations

STANDARD_RESIDUES: tuple[str, ...] = (
    "ALA",
    "ARG",
    "ASN",
    "ASP",
    "CYS",
    "GLN",
    "GLU",
    "GLY",
    "HIS",
    "ILE",
    "LEU",
    "LYS",
    "MET",
    "PHE",
    "PRO",
    "SER",
    "THR",
    "TRP",
    "TYR",
    "VAL",
)
"""Three-letter codes of the 20 standard amino acids; a residue's type is its index here."""

UNKNOWN_RESIDUE_TYPE = len(STANDARD_RESIDUES)
"""Type of a residue with N, CA and C atoms whose name is neither standard nor an alias (e.g. SEP, TPO)."""

NUM_RESIDUE_TYPES = UNKNOWN_RESIDUE_TYPE + 1
"""Number of residue-type classes: the 20 standard amino acids and unknown."""

ATOMIC_NUMBERS = tuple(range(1, 119))
CHIRAL_TAGS = ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW")
DEGREES = tuple(range(11))
FORMAL_CHARGES = tuple(range(-5, 6))
IMPLICIT_VALENCES = tuple(range(7))
HYDROGEN_COUNTS = tuple(range(9))
RADICAL_ELECTRON_COUNTS = tuple(range(5))
HYBRIDISATIONS = ("SP", "SP2", "SP3", "SP3D", "SP3D2")
RING_COUNTS = tuple(range(7))
RING_SIZES = (3, 4, 5, 6, 7, 8)

ATOM_FEATURE_NAMES: tuple[str, ...] = (
    "atomic_number",
    "chirality",
    "total_degree",
    "formal_charge",
    "implicit_valence",
    "total_hydrogens",
    "radical_electrons",
    "hybridisation",
    "aromatic",
    "ring_count",
    *(f"in_ring_of_size_{size}" for size in RING_SIZES),
)
"""Name of each column of :func:`discodock.data.ligand.atom_features`."""

ATOM_FEATURE_CARDINALITIES: tuple[int, ...] = (
    len(ATOMIC_NUMBERS) + 1,
    len(CHIRAL_TAGS) + 1,
    len(DEGREES) + 1,
    len(FORMAL_CHARGES) + 1,
    len(IMPLICIT_VALENCES) + 1,
    len(HYDROGEN_COUNTS) + 1,
    len(RADICAL_ELECTRON_COUNTS) + 1,
    len(HYBRIDISATIONS) + 1,
    2,
    len(RING_COUNTS) + 1,
    *(2 for _ in RING_SIZES),
)
"""Number of categories of each atom-feature column: 119, 4, 12, 12, 8, 10, 6, 6, 2, 8, 2×6."""
