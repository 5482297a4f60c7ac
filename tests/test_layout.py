from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from discodock.data.layout import complex_files, find_complexes, read_split
from discodock.errors import InputError

from .conftest import EXAMPLE_IDS, EXAMPLES


def test_finds_every_example_with_the_right_files() -> None:
    usable, unusable = find_complexes(EXAMPLES)
    assert [c.name for c in usable] == sorted(EXAMPLE_IDS)
    assert unusable == []
    by_name = {c.name: c for c in usable}
    assert by_name["6k05"].protein_path.name == "6k05_protein.pdbqt.gz"
    # the PDBQT ligand has no bond orders: the CCD-derived SDF must be chosen
    assert by_name["6k05"].ligand_path.name == "6k05_ligand_from_ccd.sdf"
    # SDF is preferred over MOL2
    assert by_name["1a0q"].ligand_path.name == "1a0q_ligand.sdf"


def test_split_restricts_and_reports_missing_ids(tmp_path: Path) -> None:
    split = tmp_path / "split.txt"
    split.write_text("1A46\n# a comment\n\nnope\n")
    usable, unusable = find_complexes(EXAMPLES, read_split(split))
    assert [c.name for c in usable] == ["1a46"]
    assert len(unusable) == 1 and unusable[0][0] == "nope"


def test_pdbqt_only_ligand_is_unusable_with_reason(tmp_path: Path) -> None:
    folder = tmp_path / "6k05"
    folder.mkdir()
    for name in ("6k05_protein.pdbqt.gz", "6k05_ligand.pdbqt"):
        shutil.copy(EXAMPLES / "6k05" / name, folder / name)
    with pytest.raises(InputError, match="no bond orders"):
        complex_files(folder)
    _, unusable = find_complexes(tmp_path)
    assert unusable[0][0] == "6k05" and str(folder) in unusable[0][1]


def test_missing_protein_and_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "1a46"
    folder.mkdir()
    shutil.copy(EXAMPLES / "1a46" / "1a46_ligand.sdf", folder)
    with pytest.raises(InputError, match="no protein file"):
        complex_files(folder)
    with pytest.raises(InputError, match="data folder not found"):
        find_complexes(tmp_path / "absent")
    with pytest.raises(InputError, match="split file not found"):
        read_split(tmp_path / "absent.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(InputError, match="no IDs"):
        read_split(tmp_path / "empty.txt")
