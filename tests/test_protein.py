"""Tests of discodock.data.protein on the repository's real example receptors.

The reference values come from an independent reading of the same files: a hand-written fixed-column PDB
parser and a whitespace-split mmCIF ``atom_site`` reader, which know nothing of Biopython.
"""

from __future__ import annotations

import gzip
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from discodock.data import protein as protein_module
from discodock.data.protein import read_protein
from discodock.data.vocabulary import NUM_RESIDUE_TYPES, STANDARD_RESIDUES, UNKNOWN_RESIDUE_TYPE
from discodock.errors import InputError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "data" / "examples"
PDB_GZ = EXAMPLES / "1a0q" / "1a0q_protein.pdb.gz"
PDBQT_GZ = EXAMPLES / "6k05" / "6k05_protein.pdbqt.gz"
MMCIF_GZ = REPO / "data" / "mmcif" / "1FK1_complex.cif.gz"
PDB_FILES = [
    PDB_GZ,
    EXAMPLES / "1a46" / "1a46_protein.pdb.gz",
    EXAMPLES / "6moa" / "6moa_protein.pdb.gz",
    PDBQT_GZ,
]


def gz_text(path: Path) -> str:
    with gzip.open(path, "rt") as handle:
        return handle.read()


ResidueId = tuple[str, int, str]  # (chain, residue number, insertion code)


def hand_parsed_pdb(path: Path) -> dict[ResidueId, tuple[str, dict[str, np.ndarray]]]:
    """{residue id: (residue name, {atom name: xyz})} of ATOM residues of the first model, in file order."""
    residues: dict[ResidueId, tuple[str, dict[str, np.ndarray]]] = {}
    for line in gz_text(path).splitlines():
        if line.startswith("ENDMDL"):
            break
        if line.startswith("ATOM"):
            residue_id = (line[21], int(line[22:26]), line[26].strip())
            _, atoms = residues.setdefault(residue_id, (line[17:20].strip(), {}))
            atoms.setdefault(line[12:16].strip(), np.array([line[30:38], line[38:46], line[46:54]], float))
    return residues


def hand_parsed_mmcif(path: Path) -> tuple[dict, dict]:
    """ATOM residues as in :func:`hand_parsed_pdb`; {(name, chain, number): atom count} of HETATM groups."""
    columns, polymer, hetero = [], {}, defaultdict(int)
    for line in gz_text(path).splitlines():
        if line.startswith("_atom_site."):
            columns.append(line.strip().removeprefix("_atom_site."))
        elif line.startswith(("ATOM", "HETATM")):
            row = dict(zip(columns, line.split(), strict=True))
            if row["pdbx_PDB_model_num"] != "1":
                continue
            name, chain, number = row["auth_comp_id"], row["auth_asym_id"], int(row["auth_seq_id"])
            if row["group_PDB"] == "HETATM":
                hetero[name, chain, number] += 1
            else:
                residue_id = (chain, number, row["pdbx_PDB_ins_code"].strip("?"))
                xyz = np.array([row["Cartn_x"], row["Cartn_y"], row["Cartn_z"]], float)
                polymer.setdefault(residue_id, (name, {}))[1].setdefault(row["auth_atom_id"], xyz)
    return polymer, dict(hetero)


def assert_matches_hand_parse(protein, residues: dict) -> None:
    kept = {key: value for key, value in residues.items() if {"N", "CA", "C"} <= value[1].keys()}
    atoms = [residue_atoms for _, residue_atoms in kept.values()]
    assert protein.num_residues == len(kept) > 50
    residue_ids = zip(
        protein.chain_ids, protein.residue_numbers.tolist(), protein.insertion_codes, strict=True
    )
    assert list(residue_ids) == list(kept)
    np.testing.assert_allclose(protein.ca, [a["CA"] for a in atoms], atol=1e-3)
    np.testing.assert_allclose(protein.n_ca, [a["N"] - a["CA"] for a in atoms], atol=1e-3)
    np.testing.assert_allclose(protein.c_ca, [a["C"] - a["CA"] for a in atoms], atol=1e-3)
    names = [name for name, _ in kept.values()]
    assert list(protein.residue_names) == names
    assert protein.residue_types.tolist() == [STANDARD_RESIDUES.index(name) for name in names]


@pytest.mark.parametrize("path", PDB_FILES, ids=lambda p: p.name)
def test_pdb_and_pdbqt_residues_match_an_independent_parse(path: Path) -> None:
    assert_matches_hand_parse(read_protein(path), hand_parsed_pdb(path))


def test_mmcif_residues_and_hetero_groups_match_an_independent_parse() -> None:
    residues, hetero = hand_parsed_mmcif(MMCIF_GZ)
    protein = read_protein(MMCIF_GZ)
    assert_matches_hand_parse(protein, residues)
    groups = {(g.residue_name, g.chain_id, g.residue_number): len(g.elements) for g in protein.hetero_groups}
    assert groups == hetero
    assert {"DAO", "FMT", "HOH"} <= {name for name, _, _ in groups}
    assert all(g.is_water == (g.residue_name == "HOH") for g in protein.hetero_groups)
    lipid = next(g for g in protein.hetero_groups if g.residue_name == "DAO")
    assert sorted(set(lipid.elements)) == ["C", "O"]
    assert lipid.coordinates.shape == (14, 3)
    assert lipid.coordinates.dtype == np.float32


@pytest.mark.parametrize("path", [*PDB_FILES, MMCIF_GZ], ids=lambda p: p.name)
def test_backbone_vectors_have_bond_lengths(path: Path) -> None:
    protein = read_protein(path)
    # N-CA and C-CA are measured bonds; the ideal-geometry CB also inherits the spread of the N-CA-C angle
    for vectors, length, band, fraction in (
        (protein.n_ca, 1.46, 0.1, 1.0),
        (protein.c_ca, 1.52, 0.1, 1.0),
        (protein.cb_ca, 1.52, 0.2, 0.95),
    ):
        norms = np.linalg.norm(vectors, axis=1)
        assert abs(np.median(norms) - length) < 0.03
        assert np.mean(np.abs(norms - length) < band) >= fraction
    frame = protein.local_frame()
    assert frame.shape == (protein.num_residues, 3, 3) and frame.dtype == np.float32
    np.testing.assert_array_equal(frame[:, 2], protein.cb_ca)


def test_virtual_cb_lies_near_the_real_cb() -> None:
    protein = read_protein(PDB_GZ)
    kept = [atoms for _, atoms in hand_parsed_pdb(PDB_GZ).values() if {"N", "CA", "C"} <= atoms.keys()]
    has_cb = np.array(["CB" in atoms for atoms in kept])
    real_cb_ca = np.array([atoms["CB"] - atoms["CA"] for atoms in kept if "CB" in atoms])
    error = np.linalg.norm(protein.cb_ca[has_cb] - real_cb_ca, axis=1)
    assert has_cb.sum() > 300
    assert np.median(error) < 0.2
    assert np.mean(error < 0.5) > 0.95


def test_insertion_codes_are_kept() -> None:
    protein = read_protein(EXAMPLES / "1a46" / "1a46_protein.pdb.gz")
    assert {"", "A"} <= set(protein.insertion_codes)
    first = (protein.chain_ids[0], protein.residue_numbers[0], protein.insertion_codes[0])
    assert first == ("L", 1, "A")


def test_array_types_and_fields() -> None:
    protein = read_protein(PDB_GZ)
    num = protein.num_residues
    for array in (protein.ca, protein.n_ca, protein.c_ca, protein.cb_ca):
        assert array.shape == (num, 3) and array.dtype == np.float32
    assert protein.residue_types.dtype == np.int64
    assert protein.residue_types.max() < NUM_RESIDUE_TYPES
    assert protein.residue_numbers.dtype == np.int64
    assert set(protein.chain_ids) == {"H", "L"}
    assert len(protein.insertion_codes) == num
    assert protein.path == PDB_GZ


def test_plain_and_gzipped_files_give_identical_proteins(tmp_path: Path) -> None:
    plain = tmp_path / "1a0q_protein.pdb"
    plain.write_text(gz_text(PDB_GZ))
    from_gz, from_plain = read_protein(PDB_GZ), read_protein(plain)
    for name in ("residue_types", "residue_names", "chain_ids", "residue_numbers", "ca", "n_ca", "cb_ca"):
        np.testing.assert_array_equal(getattr(from_gz, name), getattr(from_plain, name))


def rewrite_residues(text: str, old_name: str, new_name: str, atom_renames: dict[str, str]) -> str:
    """Turn the ATOM records of residues named ``old_name`` into HETATM records of ``new_name``."""
    lines = []
    for line in text.splitlines():
        if line.startswith("ATOM") and line[17:20] == old_name:
            atom = line[12:16].strip()
            if atom in atom_renames:
                new_atom = atom_renames[atom]
                line = f"{line[:12]}{new_atom:>3} {line[16:76]}{new_atom:>2}{line[78:]}"
            line = f"HETATM{line[6:17]}{new_name}{line[20:]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_selenomethionine_hetatm_counts_as_methionine(tmp_path: Path) -> None:
    original = read_protein(PDB_GZ)
    path = tmp_path / "mse.pdb"
    path.write_text(rewrite_residues(gz_text(PDB_GZ), "MET", "MSE", {"SD": "SE"}))
    protein = read_protein(path)
    is_met = original.residue_names == "MET"
    assert is_met.sum() > 0
    np.testing.assert_array_equal(protein.residue_types, original.residue_types)
    np.testing.assert_array_equal(protein.ca, original.ca)
    assert set(protein.residue_names[is_met]) == {"MSE"}
    assert protein.hetero_groups == []


def test_modified_residue_with_backbone_is_kept_as_unknown(tmp_path: Path) -> None:
    original = read_protein(PDB_GZ)
    path = tmp_path / "sep.pdb"
    path.write_text(rewrite_residues(gz_text(PDB_GZ), "SER", "SEP", {}))
    protein = read_protein(path)
    is_ser = original.residue_names == "SER"
    assert protein.num_residues == original.num_residues
    assert set(protein.residue_types[is_ser]) == {UNKNOWN_RESIDUE_TYPE}
    np.testing.assert_array_equal(protein.residue_types[~is_ser], original.residue_types[~is_ser])


def test_highest_occupancy_altloc_is_used(tmp_path: Path) -> None:
    lines = gz_text(PDB_GZ).splitlines()
    index = next(i for i, line in enumerate(lines) if line[12:16] == " CA ")
    ca_line = lines[index]
    moved_x = f"{float(ca_line[30:38]) + 1.0:8.3f}"
    original = read_protein(PDB_GZ).ca
    for moved_occupancy, expected_shift in (("0.40", 0.0), ("0.60", 1.0)):
        kept_occupancy = "0.60" if moved_occupancy == "0.40" else "0.40"
        moved = f"{ca_line[:16]}A{ca_line[17:30]}{moved_x}{ca_line[38:54]}  {moved_occupancy}{ca_line[60:]}"
        kept = f"{ca_line[:16]}B{ca_line[17:54]}  {kept_occupancy}{ca_line[60:]}"
        path = tmp_path / f"altloc_{moved_occupancy}.pdb"
        path.write_text("\n".join([*lines[:index], moved, kept, *lines[index + 1 :]]) + "\n")
        ca = read_protein(path).ca
        np.testing.assert_allclose(ca[0] - original[0], [expected_shift, 0.0, 0.0], atol=1e-4)
        np.testing.assert_array_equal(ca[1:], original[1:])


def test_only_the_first_model_is_read(tmp_path: Path) -> None:
    atom_lines = [line for line in gz_text(PDB_GZ).splitlines() if line.startswith("ATOM")]
    moved = [f"{line[:30]}{float(line[30:38]) + 5.0:8.3f}{line[38:]}" for line in atom_lines]
    path = tmp_path / "models.pdb"
    path.write_text("\n".join(["MODEL        1", *atom_lines, "ENDMDL", "MODEL        2", *moved, "ENDMDL"]))
    np.testing.assert_array_equal(read_protein(path).ca, read_protein(PDB_GZ).ca)


def bad_files(tmp_path: Path) -> dict[str, Path]:
    """Broken or unusable inputs, most made by damaging the real example files."""
    pdb_text = gz_text(PDB_GZ)
    first_atom = next(line for line in pdb_text.splitlines() if line.startswith("ATOM"))
    files = {
        "missing": tmp_path / "missing.pdb",
        "empty": tmp_path / "empty.pdb",
        "blank": tmp_path / "blank.pdb",
        "empty_gz": tmp_path / "empty.pdb.gz",
        "unknown_type": tmp_path / "protein.xyz",
        "no_suffix": tmp_path / "protein",
        "directory": tmp_path / "folder.pdb",
        "not_a_structure": tmp_path / "notes.pdb",
        "bad_coordinate": tmp_path / "bad_coordinate.pdb",
        "truncated_gz": tmp_path / "truncated.pdb.gz",
        "not_gzip": tmp_path / "plain.pdb.gz",
        "corrupt_gz": tmp_path / "corrupt.pdb.gz",
        "truncated_mmcif": tmp_path / "truncated.cif",
        "not_mmcif": tmp_path / "notes.cif",
        "ca_only": tmp_path / "ca_only.pdb",
        "water_only": tmp_path / "water.cif",
    }
    files["empty"].write_text("")
    files["blank"].write_text("\n   \n")
    files["empty_gz"].write_bytes(gzip.compress(b""))
    files["unknown_type"].write_text(pdb_text)
    files["no_suffix"].write_text(pdb_text)
    files["directory"].mkdir()
    files["not_a_structure"].write_text("These are my notes about the receptor.\n")
    files["bad_coordinate"].write_text(f"{first_atom[:30]}   x.xxx{first_atom[38:]}\n")
    files["truncated_gz"].write_bytes(PDB_GZ.read_bytes()[:300])
    files["not_gzip"].write_text(pdb_text)
    damaged = bytearray(PDB_GZ.read_bytes())
    damaged[1000:1400] = b"U" * 400
    files["corrupt_gz"].write_bytes(bytes(damaged))
    mmcif_lines = gz_text(MMCIF_GZ).splitlines()
    files["truncated_mmcif"].write_text("\n".join(mmcif_lines[:1660]) + "\n")
    files["not_mmcif"].write_text(pdb_text)
    files["ca_only"].write_text("\n".join(line for line in pdb_text.splitlines() if line[12:16] == " CA "))
    header_end = next(i for i, line in enumerate(mmcif_lines) if line.startswith(("ATOM", "HETATM")))
    water = [line for line in mmcif_lines if line.startswith("HETATM") and " HOH " in line]
    files["water_only"].write_text("\n".join([*mmcif_lines[:header_end], *water]) + "\n")
    return files


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("missing", "no such file"),
        ("empty", "empty"),
        ("blank", "empty"),
        ("empty_gz", "empty"),
        ("unknown_type", "unknown protein file type"),
        ("no_suffix", "unknown protein file type"),
        ("directory", "not a regular file"),
        ("not_a_structure", "no atoms"),
        ("bad_coordinate", "not a valid PDB file"),
        ("truncated_gz", "cannot be read"),
        ("not_gzip", "cannot be read"),
        ("corrupt_gz", "cannot be read"),
        ("truncated_mmcif", "not a valid mmCIF file"),
        ("not_mmcif", "not a valid mmCIF file"),
        ("ca_only", "no amino-acid residue with N, CA and C"),
        ("water_only", "no amino-acid residue with N, CA and C"),
    ],
)
def test_bad_input_raises_one_line_error_naming_the_file(tmp_path: Path, case: str, phrase: str) -> None:
    path = bad_files(tmp_path)[case]
    with pytest.raises(InputError) as raised:
        read_protein(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert phrase in message
    assert "\n" not in message


def test_too_many_residues_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "6moa_protein.pdb.gz"
    shutil.copy(EXAMPLES / "6moa" / "6moa_protein.pdb.gz", path)
    monkeypatch.setattr(protein_module, "MAX_RESIDUES", 100)
    with pytest.raises(InputError, match=r"has 109 residues, more than the 100"):
        read_protein(path)
    monkeypatch.setattr(protein_module, "MAX_RESIDUES", 109)
    assert read_protein(path).num_residues == 109
