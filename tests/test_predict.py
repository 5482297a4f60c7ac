"""``discodock predict`` and its batch runner: CSV batches, skip/override, clean errors, CLI = API."""

from __future__ import annotations

import csv
import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from rdkit import Chem

from discodock import DockingModel
from discodock.cli import main
from discodock.data.layout import find_complexes
from discodock.data.ligand import read_ligand
from discodock.errors import InputError
from discodock.inference.docking import DEFAULT_POCKET_SIGMA, SamplingOptions, ligand_centroid
from discodock.inference.predict import (
    PredictItem,
    PredictOutputs,
    predict,
    read_items_csv,
    safe_name,
    single_items,
)
from discodock.inference.ranking import DEFAULT_CONSENSUS_WEIGHT

from .conftest import EXAMPLE_IDS, EXAMPLES, REPO
from .test_docking import LIGAND, PROTEIN, make_test_checkpoint, one_thread  # noqa: F401

FAST = ["--samples", "2", "--steps", "2", "--quiet"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_checkpoint(tmp_path_factory.mktemp("checkpoint"))


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, ["predict", *map(str, args)])


def results_rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "results.csv").open() as handle:
        return {row["complex_name"]: row for row in csv.DictReader(handle)}


def rank1_positions(folder: Path) -> np.ndarray:
    (mol,) = list(Chem.SDMolSupplier(str(folder / "rank1.sdf")))
    return mol.GetConformer().GetPositions()


@pytest.fixture(scope="module")
def batch_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four examples, an invalid SMILES, a missing receptor and a real unsanitisable SDF."""
    examples, _ = find_complexes(EXAMPLES)
    rows = [(files.name, files.protein_path, files.ligand_path) for files in examples]
    rows += [
        ("bad_smiles", PROTEIN, "C1CC("),
        ("no_protein", "absent_protein.pdb", "CCO"),
        ("bad_sdf", PROTEIN, REPO / "data" / "invalid" / "1cbr_ligand.sdf"),
    ]
    path = tmp_path_factory.mktemp("csv") / "batch.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["complex_name", "protein_path", "ligand_description"])
        writer.writerows(rows)
    return path


def test_csv_batch_docks_the_examples_and_reports_the_bad_items(
    batch_csv: Path, checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = invoke("--csv", batch_csv, "-o", out, "--checkpoint", checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].startswith("docked 4, failed 3 in ")
    assert result.stderr.splitlines() == [
        "failed bad_smiles: C1CC(: invalid SMILES 'C1CC('",
        "failed no_protein: absent_protein.pdb: no such file",
        f"failed bad_sdf: {REPO / 'data' / 'invalid' / '1cbr_ligand.sdf'}: sanitisation failed: "
        "Explicit valence for atom # 14 C, 5, is greater than permitted",
    ]
    rows = results_rows(out)
    assert {name: row["status"] for name, row in rows.items()} == {
        **dict.fromkeys(EXAMPLE_IDS, "ok"),
        "bad_smiles": "failed",
        "no_protein": "failed",
        "bad_sdf": "failed",
    }
    assert rows["bad_smiles"]["error"] == "C1CC(: invalid SMILES 'C1CC('"
    for key in EXAMPLE_IDS:
        names = sorted(p.name for p in (out / key).iterdir())
        assert names[0] == "rank1.sdf" and len(names) == 3
        assert names[1].startswith("rank1_confidence")
        in_name = float(names[1].removeprefix("rank1_confidence").removesuffix(".sdf"))
        assert in_name == pytest.approx(float(rows[key]["best_confidence"]), abs=0.006)
        assert names[2].startswith("rank2_confidence")
        assert float(rows[key]["seconds"]) > 0
    assert not (out / "bad_smiles").exists()


def test_finished_complexes_are_skipped_unless_override(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["-r", PROTEIN, "-l", LIGAND, "--name", "x", "-o", out, "--checkpoint", checkpoint, *FAST]
    assert invoke(*args).exit_code == 0
    rank1 = out / "x" / "rank1.sdf"
    first_write = rank1.stat().st_mtime_ns
    again = invoke(*args)
    assert again.exit_code == 0 and "docked 0, failed 0, skipped 1" in again.stdout
    assert rank1.stat().st_mtime_ns == first_write
    assert results_rows(out)["x"]["status"] == "skipped"
    overridden = invoke(*args, "--override")
    assert overridden.exit_code == 0 and overridden.stdout.startswith("docked 1, failed 0 in")
    assert rank1.stat().st_mtime_ns != first_write
    assert results_rows(out)["x"]["status"] == "ok"


def test_cli_and_api_give_the_same_poses_in_the_input_frame(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    reference = EXAMPLES / "6moa" / "6moa_ligand.sdf"
    args = ["-r", PROTEIN, "-l", LIGAND, "--name", "x", "-o", out, "--checkpoint", checkpoint, *FAST]
    result = invoke(*args, "--autobox-ligand", reference, "--seed", "5", "--hydrogens", "--complex-pdb")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (out / "x").iterdir())
    assert names[:2] == ["complex.pdb", "rank1.sdf"] and len(names) == 4
    ligand = read_ligand(LIGAND)
    ligand.SetProp("_Name", "x")  # the complex name is part of the seed of its batch
    model = DockingModel.load(checkpoint, device="cpu")
    (docked,) = model.dock(
        PROTEIN, ligand, samples=2, steps=2, seed=5, pocket_center=ligand_centroid(reference)
    )
    np.testing.assert_allclose(
        rank1_positions(out / "x"), docked.best.mol.GetConformer().GetPositions(), atol=1e-4
    )
    (with_hydrogens,) = list(Chem.SDMolSupplier(str(out / "x" / "rank1.sdf"), removeHs=False))
    assert with_hydrogens.GetNumAtoms() > docked.best.mol.GetNumAtoms()
    same_centre = invoke(*args, "--override", "--seed", "5", "--pocket-center", *ligand_centroid(reference))
    assert same_centre.exit_code == 0
    np.testing.assert_allclose(
        rank1_positions(out / "x"), docked.best.mol.GetConformer().GetPositions(), atol=1e-3
    )


def test_end_to_end_in_a_separate_process(checkpoint: Path, tmp_path: Path) -> None:
    protein, ligand = EXAMPLES / "1a46" / "1a46_protein.pdb.gz", EXAMPLES / "1a46" / "1a46_ligand.sdf"
    command = [sys.executable, "-m", "discodock", "predict", "-r", protein, "-l", ligand, "-o", tmp_path]
    completed = subprocess.run(
        [*map(str, command), "--checkpoint", str(checkpoint), "--samples", "3", "--steps", "2", "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("docked 1, failed 0 in")
    assert len(list((tmp_path / "1a46_protein_1a46_ligand").glob("rank3_confidence*.sdf"))) == 1
    assert completed.stderr == ""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    with gzip.open(PROTEIN, "rt") as handle:  # side chains only: no residue has a backbone
        side_chains = "".join(
            line for line in handle if line.startswith("ATOM") and line[12:16].strip() not in ("N", "CA", "C")
        )
    mol2_header = "@<TRIPOS>MOLECULE\nx\n 2 1 0 0 0\nSMALL\nNO_CHARGES\n\n@<TRIPOS>ATOM\n"
    return {
        "empty.pdb": _write(folder / "empty.pdb", ""),
        "garbage.pdb": _write(folder / "garbage.pdb", "ATOM      1  CA  ALA A   1      xx.xxx\n"),
        "side_chains.pdb": _write(folder / "side_chains.pdb", side_chains + "END\n"),
        "protein.xyz": _write(folder / "protein.xyz", "1\n\nC 0 0 0\n"),
        "empty.sdf": _write(folder / "empty.sdf", ""),
        "garbage.sdf": _write(folder / "garbage.sdf", "not\na\nmolfile\n$$$$\n"),
        "garbage.mol2": _write(folder / "garbage.mol2", mol2_header + "      1 C  x y z C.3\n"),
        "ligand.xyz": _write(folder / "ligand.xyz", "1\n\nC 0 0 0\n"),
        "ligand.foo": _write(folder / "ligand.foo", "CCO\n"),
        "missing_columns.csv": _write(folder / "missing_columns.csv", "name,protein\nx,y\n"),
    }


@pytest.mark.parametrize(
    ("protein", "ligand", "problem"),
    [
        ("absent.pdb", "CCO", "no such file"),
        ("empty.pdb", "CCO", "is empty"),
        ("garbage.pdb", "CCO", "is not a valid PDB file"),
        ("side_chains.pdb", "CCO", "has no amino-acid residue with N, CA and C atoms"),
        ("protein.xyz", "CCO", "unknown"),
        (None, "absent.sdf", "file not found"),
        (None, "empty.sdf", "file is empty"),
        (None, "garbage.sdf", "malformed record"),
        (None, "garbage.mol2", "malformed record"),
        (None, "C1CC(", "invalid SMILES 'C1CC('"),
        (None, "[H][H]", "no heavy atoms"),
        (None, "ligand.xyz", "carry no bond orders"),
        (None, "ligand.foo", "unknown ligand file type .foo"),
        (None, "1cbr", "sanitisation failed"),
        (None, "1bcu", "outside an aromatic ring"),
    ],
)
def test_bad_single_inputs_give_one_clean_error_line(
    protein: str | None,
    ligand: str,
    problem: str,
    bad_inputs: dict[str, Path],
    checkpoint: Path,
    tmp_path: Path,
) -> None:
    def resolve(name: str) -> str:
        if name in bad_inputs:
            return str(bad_inputs[name])
        if name in ("1cbr", "1bcu"):
            return str(REPO / "data" / "invalid" / f"{name}_ligand.sdf")
        return str(tmp_path / name) if "." in name and "(" not in name else name

    protein_path = resolve(protein) if protein else str(PROTEIN)
    ligand_source = resolve(ligand)
    result = invoke(
        "-r", protein_path, "-l", ligand_source, "-o", tmp_path / "out", "--checkpoint", checkpoint
    )
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    culprit = protein_path if protein else ligand_source
    assert line.startswith(f"error: {culprit}: ") and problem in line, line
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csv", "missing_columns.csv"], "missing column complex_name"),
        (["--csv", "absent.csv"], "file not found"),
        (["-r", str(PROTEIN), "-l", "CCO", "--autobox-ligand", "CCO"], "no 3D coordinates"),
        (["-r", str(PROTEIN), "-l", "CCO", "--checkpoint", "absent_folder"], "checkpoint folder not found"),
    ],
)
def test_bad_arguments_give_one_clean_error_line(
    args: list[str], message: str, bad_inputs: dict[str, Path], tmp_path: Path
) -> None:
    args = [str(bad_inputs.get(arg, arg)) for arg in args]
    result = invoke(*args, "-o", tmp_path)
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-r", str(PROTEIN)],
        ["--csv", "x.csv", "-l", "CCO"],
        ["-r", "p.pdb", "-l", "CCO", "--pocket-center", "1"],
        ["-r", "p.pdb", "-l", "CCO", "--pocket-radius", "10"],
        ["-r", "p.pdb", "-l", "CCO", "--pocket-center", "1", "2", "3", "--pocket-radius", "0"],
    ],
)
def test_invalid_argument_combinations_are_usage_errors(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and "Error:" in result.stderr


def test_nothing_docked_exits_non_zero(tmp_path: Path, checkpoint: Path) -> None:
    path = _write(
        tmp_path / "all_bad.csv", f"complex_name,protein_path,ligand_description\na,{PROTEIN},C1CC(\n"
    )
    result = invoke("--csv", path, "-o", tmp_path / "out", "--checkpoint", checkpoint, "--quiet")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["failed a: C1CC(: invalid SMILES 'C1CC('"]
    assert result.stdout.startswith("docked 0, failed 1 in")


def test_a_failing_sampling_chunk_fails_only_its_culprit(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = DockingModel.load(checkpoint, device="cpu")
    run = model.run

    def fragile_run(jobs, options):  # type: ignore[no-untyped-def]
        if any(job.name == "boom" for job in jobs):
            raise RuntimeError("numerical trouble")
        return run(jobs, options)

    monkeypatch.setattr(model, "run", fragile_run)
    items = [
        PredictItem(name, PROTEIN, smiles) for name, smiles in (("a", "CCO"), ("boom", "CCN"), ("c", "CCC"))
    ]
    options = SamplingOptions(samples=1, steps=1, graphs_per_batch=8)
    summary = predict(model, items, options, PredictOutputs(tmp_path), progress=False)
    assert summary.docked == ["a", "c"]
    assert summary.failures == [("boom", "unexpected RuntimeError: numerical trouble")]


def test_read_items_csv_names_and_checks_rows(tmp_path: Path) -> None:
    header = "complex_name,protein_path,ligand_description,protein_sequence\n"
    path = _write(tmp_path / "a.csv", header + ",p.pdb,CCO,\nmy/complex 1,p.pdb,l.sdf,\n")
    assert read_items_csv(path) == [
        PredictItem("complex_1", "p.pdb", "CCO"),
        PredictItem("my_complex_1", "p.pdb", "l.sdf"),
    ]
    duplicate = _write(tmp_path / "b.csv", header + "x,p.pdb,CCO,\nx,p.pdb,CCN,\n")
    with pytest.raises(InputError, match="complex name x appears in rows 1 and 2"):
        read_items_csv(duplicate)
    with pytest.raises(InputError, match=r"row 1 .*required"):
        read_items_csv(_write(tmp_path / "c.csv", header + "x,,CCO,\n"))
    with pytest.raises(InputError, match="no complexes"):
        read_items_csv(_write(tmp_path / "d.csv", header))
    assert safe_name("../etc") == "_etc" and safe_name("  ") == "complex"


def test_single_items_name_every_molecule_of_a_file(tmp_path: Path) -> None:
    (item,) = single_items(PROTEIN, "CCO")
    assert item.name == "6moa_protein_ligand" and isinstance(item.ligand, Chem.Mol)
    assert item.protein.num_residues > 0
    library = tmp_path / "library.smi"
    library.write_text("CCO ethanol\nCCN ethylamine\n")
    assert [i.name for i in single_items(PROTEIN, library)] == ["ethanol", "ethylamine"]
    library.write_text("CCO\nCCN\n")
    assert [i.name for i in single_items(PROTEIN, library, name="lib")] == ["lib_1", "lib_2"]


def test_pocket_radius_crops_as_in_the_api_and_an_empty_pocket_is_one_clean_error(
    checkpoint: Path, tmp_path: Path
) -> None:
    pocket = ligand_centroid(LIGAND)
    args = ["-r", PROTEIN, "-l", LIGAND, "--name", "x", "-o", tmp_path, "--checkpoint", checkpoint, *FAST]
    result = invoke(*args, "--pocket-center", *pocket, "--pocket-radius", "9")
    assert result.exit_code == 0, result.output
    ligand = read_ligand(LIGAND)
    ligand.SetProp("_Name", "x")
    model = DockingModel.load(checkpoint, device="cpu")
    (docked,) = model.dock(PROTEIN, ligand, samples=2, steps=2, pocket_center=pocket, pocket_radius=9.0)
    np.testing.assert_allclose(
        rank1_positions(tmp_path / "x"), docked.best.mol.GetConformer().GetPositions(), atol=1e-4
    )
    far = invoke(*args, "--override", "--pocket-center", "500", "0", "0")
    assert far.exit_code == 1
    (line,) = far.stderr.splitlines()
    assert line.startswith(f"error: {PROTEIN}: no residue within ") and line.endswith(
        " Å of the pocket centre (500.00, 0.00, 0.00)"
    ), line


@pytest.mark.parametrize("command", ["predict", "benchmark"])
def test_the_pocket_sigma_and_consensus_options_default_to_the_api_defaults(command: str) -> None:
    """The CLI states the defaults as literals (importing them loads torch at start-up): keep them equal."""
    options = {param.name: param for param in main.commands[command].params}
    assert options["pocket_sigma"].default == DEFAULT_POCKET_SIGMA == SamplingOptions().pocket_sigma
    assert (
        options["consensus_weight"].default == DEFAULT_CONSENSUS_WEIGHT == SamplingOptions().consensus_weight
    )
