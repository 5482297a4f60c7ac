from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from discodock.data.cache import ComplexCache

from .conftest import EXAMPLES, REPO


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "discodock", *args], capture_output=True, text=True, cwd=REPO, timeout=600
    )


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One good complex and three broken ones, built from the real example files."""
    root = tmp_path_factory.mktemp("mixed")
    good = root / "1a46"
    shutil.copytree(EXAMPLES / "1a46", good)

    malformed_ligand = root / "bad1"
    malformed_ligand.mkdir()
    shutil.copy(EXAMPLES / "1a46" / "1a46_protein.pdb.gz", malformed_ligand / "bad1_protein.pdb.gz")
    sdf = (EXAMPLES / "1a46" / "1a46_ligand.sdf").read_text().splitlines()
    (malformed_ligand / "bad1_ligand.sdf").write_text("\n".join(sdf[:6]) + "\n")  # cut inside the atom block

    no_residues = root / "bad2"
    no_residues.mkdir()
    with gzip.open(EXAMPLES / "1a46" / "1a46_protein.pdb.gz", "rt") as handle:
        hetero_only = [line for line in handle if line.startswith("HETATM")]
    (no_residues / "bad2_protein.pdb").write_text("".join(hetero_only) + "END\n")
    shutil.copy(EXAMPLES / "1a46" / "1a46_ligand.sdf", no_residues / "bad2_ligand.sdf")

    empty_protein = root / "bad3"
    empty_protein.mkdir()
    (empty_protein / "bad3_protein.pdb").write_text("")
    shutil.copy(EXAMPLES / "1a46" / "1a46_ligand.sdf", empty_protein / "bad3_ligand.sdf")
    return root


def test_cli_prepares_the_examples(tmp_path: Path) -> None:
    out = tmp_path / "examples.pt"
    result = _run_cli("prepare", "--data-dir", str(EXAMPLES), "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "prepared 4/4" in result.stdout
    cache = ComplexCache.load(out)
    assert cache.names == ["1a0q", "1a46", "6k05", "6moa"]


def test_cli_reports_each_bad_complex_and_continues(mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "mixed.pt"
    result = _run_cli(
        "prepare", "--data-dir", str(mixed_folder), "--out", str(out), "--quiet", "--workers", "2"
    )
    assert result.returncode == 0, result.stderr
    assert "prepared 1/4" in result.stdout
    assert "Traceback" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed")]
    assert len(failed) == 3
    for name, file_name in (
        ("bad1", "bad1_ligand.sdf"),
        ("bad2", "bad2_protein.pdb"),
        ("bad3", "bad3_protein.pdb"),
    ):
        line = next(line for line in failed if line.startswith(f"failed {name}:"))
        assert file_name in line
    assert "unexpected" not in result.stderr
    assert ComplexCache.load(out).names == ["1a46"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-dir", "no/such/folder"], "data folder not found"),
        (["--data-dir", str(EXAMPLES), "--split", "no/such/split.txt"], "split file not found"),
    ],
)
def test_cli_bad_arguments_give_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = _run_cli("prepare", *args, "--out", str(tmp_path / "x.pt"), "--quiet")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_fails_when_nothing_is_prepared(mixed_folder: Path, tmp_path: Path) -> None:
    split = tmp_path / "split.txt"
    split.write_text("bad1\nbad3\n")
    out = tmp_path / "none.pt"
    result = _run_cli(
        "prepare", "--data-dir", str(mixed_folder), "--split", str(split), "--out", str(out), "--quiet"
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "no complex could be prepared" in result.stderr
    assert not out.exists()


def test_help_lists_subcommands() -> None:
    result = _run_cli("--help")
    assert result.returncode == 0 and "prepare" in result.stdout


def test_unreadable_sdf_falls_back_to_mol2(tmp_path: Path) -> None:
    from discodock.data.layout import complex_files
    from discodock.prepare import read_first_readable_ligand

    folder = tmp_path / "1a0q"
    folder.mkdir()
    shutil.copy(EXAMPLES / "1a0q" / "1a0q_ligand.mol2", folder)
    shutil.copy(EXAMPLES / "1a0q" / "1a0q_protein.pdb.gz", folder)
    shutil.copy(EXAMPLES.parent / "invalid" / "1cbr_ligand.sdf", folder / "1a0q_ligand.sdf")
    files = complex_files(folder)
    assert [p.suffix for p in files.ligand_paths] == [".sdf", ".mol2"]
    assert read_first_readable_ligand(files.ligand_paths).GetNumAtoms() == 23
