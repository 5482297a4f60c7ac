"""Tests of ligand reading, atom features and the bond graph on the real example ligands."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDepictor

from discodock.data.ligand import (
    BOND_TYPES,
    atom_features,
    bond_graph,
    canonical_smiles,
    inchikey,
    read_ligand,
    read_ligands,
    with_hydrogens,
)
from discodock.data.vocabulary import ATOM_FEATURE_CARDINALITIES, ATOM_FEATURE_NAMES
from discodock.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
SDF_LIGANDS = {
    "1a0q": EXAMPLES / "1a0q" / "1a0q_ligand.sdf",  # with hydrogens
    "6moa": EXAMPLES / "6moa" / "6moa_ligand.sdf",  # with hydrogens, unnamed
    "6k05": EXAMPLES / "6k05" / "6k05_ligand_from_ccd.sdf",  # heavy atoms only
}
MOL2_1A0Q = EXAMPLES / "1a0q" / "1a0q_ligand.mol2"
SDF_1CBR_BAD_VALENCE = (
    EXAMPLES.parent / "invalid" / "1cbr_ligand.sdf"
)  # carboxylate written as C(=O)=O: valence 5
PDBQT_6K05 = EXAMPLES / "6k05" / "6k05_ligand.pdbqt"


def _rdkit_with_hydrogens(path: Path) -> Chem.Mol:
    """The file's molecule as RDKit reads it, hydrogens kept: the reference for coordinates."""
    return Chem.MolFromMolFile(str(path), removeHs=False)


def _assert_one_line_error(
    error: pytest.ExceptionInfo[InputError], source: str | Path, *phrases: str
) -> None:
    message = str(error.value)
    assert message.startswith(f"{source}: ")
    assert "\n" not in message
    for phrase in phrases:
        assert phrase in message.lower()


@pytest.mark.parametrize("pdb_id", sorted(SDF_LIGANDS))
def test_sdf_ligand_is_heavy_atom_graph_with_crystal_coordinates(pdb_id: str) -> None:
    path = SDF_LIGANDS[pdb_id]
    mol = read_ligand(path)
    reference = _rdkit_with_hydrogens(path)
    heavy_indices = [atom.GetIdx() for atom in reference.GetAtoms() if atom.GetAtomicNum() > 1]

    assert all(atom.GetAtomicNum() > 1 for atom in mol.GetAtoms())
    assert [atom.GetSymbol() for atom in mol.GetAtoms()] == [
        reference.GetAtomWithIdx(i).GetSymbol() for i in heavy_indices
    ]
    np.testing.assert_allclose(
        mol.GetConformer().GetPositions(), reference.GetConformer().GetPositions()[heavy_indices]
    )
    assert mol.GetConformer().Is3D()
    assert mol.GetProp("_Name") == reference.GetProp("_Name")
    assert len(Chem.GetMolFrags(mol)) == 1


def test_mol2_and_sdf_of_one_ligand_give_the_same_atoms_and_coordinates() -> None:
    from_sdf, from_mol2 = read_ligand(SDF_LIGANDS["1a0q"]), read_ligand(MOL2_1A0Q)

    assert from_mol2.GetProp("_Name") == "1a0q_ligand"
    assert [a.GetSymbol() for a in from_mol2.GetAtoms()] == [a.GetSymbol() for a in from_sdf.GetAtoms()]
    np.testing.assert_allclose(
        from_mol2.GetConformer().GetPositions(), from_sdf.GetConformer().GetPositions()
    )


def test_gzipped_sdf_reads_like_the_plain_file(tmp_path: Path) -> None:
    compressed = tmp_path / "1a0q_ligand.sdf.gz"
    compressed.write_bytes(gzip.compress(SDF_LIGANDS["1a0q"].read_bytes()))

    assert canonical_smiles(read_ligand(compressed)) == canonical_smiles(read_ligand(SDF_LIGANDS["1a0q"]))


def test_multi_molecule_sdf_is_read_in_order_but_refused_as_a_single_ligand(tmp_path: Path) -> None:
    both = tmp_path / "two.sdf"
    both.write_text(SDF_LIGANDS["6k05"].read_text() + SDF_LIGANDS["1a0q"].read_text())

    names = [mol.GetProp("_Name") for mol in read_ligands(both)]
    assert names == ["6k05_CQF", "1a0q_ligand"]
    with pytest.raises(InputError) as error:
        read_ligand(both)
    _assert_one_line_error(error, both, "2 molecules")


def test_smiles_string_gives_a_named_molecule_without_conformer() -> None:
    smiles = canonical_smiles(read_ligand(SDF_LIGANDS["6k05"]))

    mol = read_ligand(f"{smiles} CQF")

    assert mol.GetNumConformers() == 0
    assert mol.GetProp("_Name") == "CQF"
    assert canonical_smiles(mol) == smiles


def test_stereo_and_fragment_smiles_are_not_mistaken_for_paths() -> None:
    assert read_ligand("C/C=C/C").GetNumAtoms() == 4
    assert read_ligand("CCO.Cl").GetNumAtoms() == 3


def test_smiles_file_skips_header_comments_and_blank_lines(tmp_path: Path) -> None:
    smiles_file = tmp_path / "ligands.smi"
    smiles_file.write_text("SMILES name\n# a comment\n\nCCO ethanol\nc1ccccc1\tbenzene ring\nCC(=O)O\n")

    molecules = read_ligands(smiles_file)

    assert [canonical_smiles(mol) for mol in molecules] == ["CCO", "c1ccccc1", "CC(=O)O"]
    assert [mol.GetProp("_Name") if mol.HasProp("_Name") else None for mol in molecules] == [
        "ethanol",
        "benzene ring",
        None,
    ]


def test_salt_keeps_the_largest_fragment_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="discodock.data.ligand"):
        mol = read_ligand("[Na+].CC(=O)[O-]")

    assert canonical_smiles(mol) == "CC(=O)[O-]"
    assert "largest of 2" in caplog.text


@pytest.mark.parametrize(
    ("source", "phrases"),
    [
        ("missing_ligand.sdf", ("file not found",)),
        ("some/dir/missing_ligand", ("file not found",)),
        ("CC(=O", ("invalid smiles",)),
        ("c1cccc1", ("sanitisation failed", "kekulize")),
        ("[H][H]", ("no heavy atoms",)),
        ("C->[Fe]", ("unsupported bond type", "dative")),
        (str(SDF_1CBR_BAD_VALENCE), ("sanitisation failed", "valence", "atom # 14")),
        (str(PDBQT_6K05), ("no bond orders",)),
        (str(EXAMPLES), ("directory",)),
    ],
)
def test_bad_input_is_one_line_naming_the_source(
    source: str, phrases: tuple[str, ...], capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError) as error:
        read_ligand(source)

    _assert_one_line_error(error, source, *phrases)
    assert capfd.readouterr().err == ""  # RDKit's own log lines are silenced


@pytest.mark.parametrize(
    ("file_name", "content", "phrases"),
    [
        ("empty.sdf", "  \n", ("empty",)),
        ("garbage.sdf", "this is not a molecule\n", ("malformed",)),
        ("garbage.mol2", "@<TRIPOS>MOLECULE\nnothing useful\n", ("malformed",)),
        ("header_only.smi", "smiles name\n", ("no smiles",)),
        ("bad_line.smi", "CCO\nC1CC oops\n", ("line 2", "invalid smiles")),
        ("ligand.xyz", "1\n\nC 0 0 0\n", ("no bond orders",)),
        ("ligand.json", "{}", ("unknown ligand file type",)),
    ],
)
def test_bad_files_are_one_line_naming_the_file(
    tmp_path: Path, file_name: str, content: str, phrases: tuple[str, ...], capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / file_name
    path.write_text(content)

    with pytest.raises(InputError) as error:
        read_ligands(path)

    _assert_one_line_error(error, path, *phrases)
    assert capfd.readouterr().err == ""


def test_bad_record_of_a_multi_molecule_file_is_numbered(tmp_path: Path) -> None:
    path = tmp_path / "with_bad_record.sdf"
    shutil.copy(SDF_LIGANDS["6k05"], path)
    with path.open("a") as handle:
        handle.write(SDF_1CBR_BAD_VALENCE.read_text())

    with pytest.raises(InputError) as error:
        read_ligands(path)

    _assert_one_line_error(error, path, "molecule 2", "valence")


def test_two_dimensional_depiction_is_read_without_conformer(tmp_path: Path) -> None:
    depiction = Chem.MolFromSmiles(canonical_smiles(read_ligand(SDF_LIGANDS["6k05"])))
    rdDepictor.Compute2DCoords(depiction)
    path = tmp_path / "depiction.mol"
    path.write_text(Chem.MolToMolBlock(depiction))

    assert read_ligand(path).GetNumConformers() == 0


@pytest.mark.parametrize("pdb_id", sorted(SDF_LIGANDS))
def test_atom_features_are_valid_category_indices(pdb_id: str) -> None:
    mol = read_ligand(SDF_LIGANDS[pdb_id])

    features = atom_features(mol)

    assert features.shape == (mol.GetNumAtoms(), len(ATOM_FEATURE_CARDINALITIES)) == (mol.GetNumAtoms(), 16)
    assert len(ATOM_FEATURE_NAMES) == 16
    assert features.dtype == np.int64
    assert (features >= 0).all()
    assert (features < np.asarray(ATOM_FEATURE_CARDINALITIES)).all()


def test_atom_features_encode_the_chemistry_of_6k05() -> None:
    mol = read_ligand(SDF_LIGANDS["6k05"])
    features = atom_features(mol)
    column = {name: features[:, j] for j, name in enumerate(ATOM_FEATURE_NAMES)}
    ring_info = mol.GetRingInfo()

    for atom in mol.GetAtoms():
        i = atom.GetIdx()
        assert column["atomic_number"][i] == atom.GetAtomicNum() - 1
        assert column["total_degree"][i] == atom.GetDegree() + atom.GetTotalNumHs()
        assert column["total_hydrogens"][i] == atom.GetTotalNumHs()
        assert column["aromatic"][i] == atom.GetIsAromatic()
        assert column["in_ring_of_size_6"][i] == ring_info.IsAtomInRingOfSize(i, 6)
        assert column["in_ring_of_size_7"][i] == ring_info.IsAtomInRingOfSize(i, 7)
    chiral = [
        atom.GetIdx() for atom in mol.GetAtoms() if atom.GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED
    ]
    assert len(chiral) == 1
    assert column["chirality"][chiral[0]] in (1, 2)
    assert column["atomic_number"][[a.GetSymbol() == "Cl" for a in mol.GetAtoms()]].tolist() == [16]


@pytest.mark.parametrize("pdb_id", ["1a0q", "6k05"])
def test_atom_features_do_not_depend_on_how_hydrogens_were_given(pdb_id: str) -> None:
    """The SDF (with or without H atoms) and its SMILES give the same features, atom for atom.

    1a0q's SDF lists its hydrogens, so RDKit keeps the chiral CH's hydrogen as an explicit count; 6k05's
    SDF has none, so the same kind of atom gets an implicit one. Chirality tags depend on neighbour order
    and are compared only as 'tagged or not'.
    """
    from_file = read_ligand(SDF_LIGANDS[pdb_id])
    from_smiles = read_ligand(Chem.MolToSmiles(from_file))
    order = from_smiles.GetSubstructMatch(from_file)  # from_smiles atom matching each from_file atom
    assert len(order) == from_file.GetNumAtoms()

    file_features = atom_features(from_file)
    smiles_features = atom_features(from_smiles)[list(order)]

    chirality = ATOM_FEATURE_NAMES.index("chirality")
    others = [j for j in range(len(ATOM_FEATURE_NAMES)) if j != chirality]
    np.testing.assert_array_equal(file_features[:, others], smiles_features[:, others])
    np.testing.assert_array_equal(file_features[:, chirality] > 0, smiles_features[:, chirality] > 0)


def test_atom_features_refuse_hydrogen_atoms() -> None:
    with pytest.raises(ValueError, match="heavy-atom"):
        atom_features(_rdkit_with_hydrogens(SDF_LIGANDS["1a0q"]))


@pytest.mark.parametrize("pdb_id", sorted(SDF_LIGANDS))
def test_bond_graph_lists_each_bond_both_ways_with_its_type(pdb_id: str) -> None:
    mol = read_ligand(SDF_LIGANDS[pdb_id])

    edge_index, bond_type = bond_graph(mol)

    assert edge_index.shape == (2, 2 * mol.GetNumBonds()) and edge_index.dtype == np.int64
    assert bond_type.shape == (2 * mol.GetNumBonds(),) and bond_type.dtype == np.int64
    for bond in mol.GetBonds():
        forward, backward = 2 * bond.GetIdx(), 2 * bond.GetIdx() + 1
        assert tuple(edge_index[:, forward]) == (bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
        assert tuple(edge_index[:, backward]) == (bond.GetEndAtomIdx(), bond.GetBeginAtomIdx())
        assert BOND_TYPES[bond_type[forward]] == BOND_TYPES[bond_type[backward]] == bond.GetBondType()
    assert set(bond_type.tolist()) >= {0, 3}  # drug-like: single and aromatic bonds present


def test_bond_graph_of_a_single_atom_is_empty() -> None:
    edge_index, bond_type = bond_graph(read_ligand("[Na+]"))

    assert edge_index.shape == (2, 0) and bond_type.shape == (0,)


@pytest.mark.parametrize("pdb_id", sorted(SDF_LIGANDS))
def test_with_hydrogens_keeps_heavy_atoms_and_places_hydrogens_at_bond_length(pdb_id: str) -> None:
    mol = read_ligand(SDF_LIGANDS[pdb_id])

    protonated = with_hydrogens(mol)

    heavy = mol.GetNumAtoms()
    expected_hydrogens = sum(atom.GetTotalNumHs() for atom in mol.GetAtoms())
    assert protonated.GetNumAtoms() == heavy + expected_hydrogens
    positions = protonated.GetConformer().GetPositions()
    np.testing.assert_allclose(positions[:heavy], mol.GetConformer().GetPositions())
    for atom in list(protonated.GetAtoms())[heavy:]:
        assert atom.GetAtomicNum() == 1
        (partner,) = atom.GetNeighbors()
        length = np.linalg.norm(positions[atom.GetIdx()] - positions[partner.GetIdx()])
        assert 0.9 < length < 1.2


def test_identifiers_agree_across_input_formats() -> None:
    from_sdf = read_ligand(SDF_LIGANDS["1a0q"])
    from_smiles = read_ligand(Chem.MolToSmiles(from_sdf))
    other = read_ligand(SDF_LIGANDS["6k05"])

    assert canonical_smiles(from_sdf) == canonical_smiles(from_smiles)
    assert inchikey(from_sdf) == inchikey(from_smiles)
    assert len(inchikey(from_sdf)) == 27
    assert inchikey(from_sdf) != inchikey(other)


def test_aromatic_bonds_outside_aromatic_rings_are_refused() -> None:
    """Real CASF-2016 SDF: bond type 4 on rings RDKit does not perceive as aromatic (no Kekulé form)."""
    with pytest.raises(InputError, match="outside an aromatic ring"):
        read_ligand(EXAMPLES.parent / "invalid" / "1bcu_ligand.sdf")
