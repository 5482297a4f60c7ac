"""The benchmark: end to end through the CLI on real examples, and the report's arithmetic on known poses.

Every metric the report states is recomputed here independently: RMSDs with RDKit's symmetry-aware in-place
``CalcRMS`` from the written pose files and the crystal ligand files, PoseBusters on the written top-1 poses.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from posebusters import PoseBusters
from rdkit import Chem
from rdkit.Chem import rdMolAlign

from discodock import DockingModel
from discodock.benchmark import sample_inputs
from discodock.benchmark.complexes import BenchmarkSet, MethodRun, load_benchmark_set, seeded_subset
from discodock.benchmark.report import (
    POSEBUSTERS_RECEPTOR_MARGIN,
    PUBLISHED_ANCHORS,
    ComplexOutcome,
    evaluate_run,
    paired_comparison,
    posebusters_failures,
    read_run_poses,
    receptor_near_pose,
    write_report,
)
from discodock.benchmark.run import BenchmarkSettings, settings_record
from discodock.benchmark.sample_inputs import read_inputs, read_samples
from discodock.cli import main
from discodock.inference.docking import SamplingOptions

from .conftest import EXAMPLES, REPO
from .test_docking import make_test_checkpoint, one_thread  # noqa: F401

CRYSTAL_FILES = {
    "1a0q": EXAMPLES / "1a0q" / "1a0q_ligand.sdf",
    "1a46": EXAMPLES / "1a46" / "1a46_ligand.sdf",
    "6k05": EXAMPLES / "6k05" / "6k05_ligand_from_ccd.sdf",
    "6moa": EXAMPLES / "6moa" / "6moa_ligand.sdf",
}
METRICS = (
    "top1_below_2A",
    "top5_below_2A",
    "top1_below_5A",
    "median_top1_rmsd",
    "top1_pb_valid",
    "top1_below_2A_and_pb_valid",
)
SAMPLES = 6


def crystal(name: str) -> Chem.Mol:
    """The crystal ligand, read by RDKit alone."""
    return Chem.RemoveHs(Chem.MolFromMolFile(str(CRYSTAL_FILES[name])))


def written_poses(out: Path, method: str, name: str) -> list[Chem.Mol]:
    return list(Chem.SDMolSupplier(str(out / "poses" / method / f"{name}.sdf")))


def pb_valid(pose: Chem.Mol, receptor: Path) -> bool:
    table = PoseBusters(config="dock").bust(pose, None, str(receptor))
    return bool(table.iloc[0].astype(bool).all())


def expected_metrics(top_rmsds: list[list[float] | None], valid: list[bool]) -> dict[str, float | None]:
    """The report's metrics from per-complex RMSDs in rank order (``None``: failed) and PB flags."""
    top1 = np.array([math.inf if r is None else r[0] for r in top_rmsds])
    top5 = np.array([math.inf if r is None else min(r[:5]) for r in top_rmsds])
    valid_flags = np.array(valid)
    median = float(np.median(top1))
    return {
        "top1_below_2A": 100 * np.mean(top1 < 2),
        "top5_below_2A": 100 * np.mean(top5 < 2),
        "top1_below_5A": 100 * np.mean(top1 < 5),
        "median_top1_rmsd": median if math.isfinite(median) else None,
        "top1_pb_valid": 100 * np.mean(valid_flags),
        "top1_below_2A_and_pb_valid": 100 * np.mean(valid_flags & (top1 < 2)),
    }


def assert_metrics(reported: dict[str, object], expected: dict[str, float | None]) -> None:
    for key in METRICS:
        if expected[key] is None:
            assert reported[key] is None, key
        else:
            assert reported[key] == pytest.approx(expected[key], abs=1e-3), key


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """``discodock benchmark`` on three examples and two unusable IDs; tiny random networks, with --pocket."""
    root = tmp_path_factory.mktemp("benchmark")
    data = root / "data"
    data.mkdir()
    for name in ("6k05", "6moa", "1a46"):
        (data / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    no_bond_orders = data / "9bad"
    no_bond_orders.mkdir()
    shutil.copy(EXAMPLES / "6k05" / "6k05_protein.pdbqt.gz", no_bond_orders / "9bad_protein.pdbqt.gz")
    shutil.copy(EXAMPLES / "6k05" / "6k05_ligand.pdbqt", no_bond_orders / "9bad_ligand.pdbqt")
    split = root / "test_split"
    split.write_text("6k05\n6moa\n1a46\n9bad\n9zzz\n")
    (root / "test_split_no_rec_overlap").write_text("6moa\n1a46\n9bad\n")  # found beside --split
    out = root / "out"
    arguments = ["benchmark", "--data-dir", str(data), "--split", str(split), "--samples", str(SAMPLES)]
    arguments += ["--steps", "2", "--checkpoint", str(make_test_checkpoint(root / "tiny"))]
    arguments += ["--pocket", "--device", "cpu", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert "report in" in result.output
    return out, json.loads((out / "results.json").read_text())


def test_cli_lists_unusable_complexes_with_reasons(cli_run: tuple[Path, dict]) -> None:
    _, results = cli_run
    reasons = {entry["name"]: entry["reason"] for entry in results["benchmark"]["unusable"]}
    assert set(reasons) == {"9bad", "9zzz"}
    assert "no bond orders" in reasons["9bad"] and "no folder" in reasons["9zzz"]
    assert results["benchmark"]["sets"]["all"]["names"] == ["6k05", "6moa", "1a46"]
    assert results["benchmark"]["sets"]["unseen"]["names"] == ["6moa", "1a46"]


def test_cli_metrics_match_rmsds_and_posebusters_recomputed_from_the_written_poses(
    cli_run: tuple[Path, dict],
) -> None:
    out, results = cli_run
    assert set(results["methods"]) == {"tiny", "tiny-pocket"}
    with (out / "complexes.csv").open() as handle:
        rows = {(row["method"], row["complex"]): row for row in csv.DictReader(handle)}
    for method, record in results["methods"].items():
        assert record["ranked"] and not record["failures"]
        rmsds, valid = {}, {}
        for name in ("6k05", "6moa", "1a46"):
            poses = written_poses(out, method, name)
            assert len(poses) == SAMPLES
            assert [pose.GetIntProp("rank") for pose in poses] == list(range(1, SAMPLES + 1))
            confidences = [pose.GetDoubleProp("confidence") for pose in poses]
            assert confidences == sorted(confidences, reverse=True)
            rmsds[name] = [rdMolAlign.CalcRMS(pose, crystal(name)) for pose in poses]
            valid[name] = pb_valid(poses[0], out / "receptors" / f"{name}.pdb")
            row = rows[(method, name)]
            assert float(row["top1_rmsd"]) == pytest.approx(rmsds[name][0], abs=1e-3)
            assert float(row["top5_rmsd"]) == pytest.approx(min(rmsds[name][:5]), abs=1e-3)
            assert row["top1_pb_valid"] == str(valid[name])
        for set_name, names in (("all", ["6k05", "6moa", "1a46"]), ("unseen", ["6moa", "1a46"])):
            reported = record["metrics"][set_name]
            assert (reported["complexes"], reported["docked"], reported["failed"]) == (
                len(names),
                len(names),
                0,
            )
            assert_metrics(reported, expected_metrics([rmsds[n] for n in names], [valid[n] for n in names]))
        timing = record["timing"]
        assert timing["preparation_s_per_complex"] > 0 and timing["docking_s_per_complex"] > 0
        assert timing["total_s_per_complex"] == pytest.approx(
            timing["preparation_s_per_complex"] + timing["docking_s_per_complex"]
        )
        assert timing["peak_gpu_memory_gib"] is None and timing["hardware"].startswith("cpu")


def test_cli_writes_the_plot_and_keeps_published_anchors_apart_from_measured_rows(
    cli_run: tuple[Path, dict],
) -> None:
    out, results = cli_run
    assert (out / "rmsd_cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    measured, published = report.split("## Published anchors (not measured here)")
    assert "## Measured" not in published
    for anchor in PUBLISHED_ANCHORS:
        assert f"| {anchor.method} | {anchor.top1_all:.1f} | {anchor.top1_unseen:.1f} |" in published
        assert f"| {anchor.method} |" not in measured
    for method in results["methods"]:
        assert f"| {method} |" in measured
    anchors = results["published_anchors"]["rows"]
    assert [row["method"] for row in anchors] == ["DiffDock", "DisCo-DiffDock-S", "DiffDock-S"]
    assert [(row["top1_all"], row["top1_unseen"], row["seconds_per_complex"]) for row in anchors] == [
        (38.2, 20.8, 40.0),
        (35.4, 18.5, 9.1),
        (32.9, 13.9, 8.1),
    ]


def test_earlier_methods_are_scored_again_from_their_pose_folders(cli_run: tuple[Path, dict]) -> None:
    out, results = cli_run
    again = out.parent / "again"
    arguments = ["benchmark", "--data-dir", results["settings"]["data_dir"]]
    arguments += ["--split", results["settings"]["split_file"], "--no-models", "--no-posebusters"]
    arguments += [
        "--add-method",
        str(out / "poses" / "tiny-pocket"),
        "--add-method",
        str(out / "poses" / "tiny"),
    ]
    arguments += ["--out", str(again), "--quiet"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    rescored = json.loads((again / "results.json").read_text())["methods"]
    assert list(rescored) == ["tiny-pocket", "tiny"]
    for name, method in rescored.items():
        original = results["methods"][name]
        assert method["timing"] == original["timing"] and method["description"] == original["description"]
        for set_name in ("all", "unseen"):
            metrics, before = method["metrics"][set_name], original["metrics"][set_name]
            assert metrics["top1_pb_valid"] is None and metrics["top1_below_2A_and_pb_valid"] is None
            for key in ("top1_below_2A", "top5_below_2A", "top1_below_5A", "median_top1_rmsd"):
                assert metrics[key] == pytest.approx(before[key], abs=1e-3), key
    clash = CliRunner().invoke(
        main, [*arguments[:-3], "--add-method", str(out / "poses" / "tiny"), "--out", str(again)]
    )
    assert clash.exit_code == 1 and "two methods are named tiny" in clash.output


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> BenchmarkSet:
    root = tmp_path_factory.mktemp("examples")
    (root / "split").write_text("1a0q\n1a46\n6k05\n6moa\n")
    return load_benchmark_set(EXAMPLES, root / "split", root / "receptors")


def shifted_run(
    benchmark: BenchmarkSet, name: str, shifts: dict[str, list[float]], failures: dict[str, str], ranked: bool
) -> MethodRun:
    """A method whose poses are the crystal poses translated by ``d`` Å along x (so RMSD = d exactly)."""
    complexes = {c.name: c for c in benchmark.complexes}
    positions = {
        key: np.stack([complexes[key].crystal_positions + np.array([d, 0.0, 0.0]) for d in values])
        for key, values in shifts.items()
    }
    scores = {
        key: -np.arange(len(values), dtype=float) if ranked else np.full(len(values), np.nan)
        for key, values in shifts.items()
    }
    attempted = tuple(n for n in benchmark.names if n in shifts or n in failures)
    return MethodRun(
        name, "synthetic", attempted, positions, scores, "confidence", ranked, failures, 1.0, 2.0, "cpu"
    )


def test_report_rates_follow_the_ranking_count_failures_and_respect_each_set(
    examples: BenchmarkSet, tmp_path: Path
) -> None:
    # PoseBusters on these examples: the 1a0q crystal pose passes; every pose shifted by 1.5 Å or more
    # fails (clashes with the protein, or too far from it).
    ranked = shifted_run(
        examples,
        "ranked",
        {
            "1a0q": [0.0, 100.0],  # top-1 correct and valid
            "1a46": [100.0] * 5 + [0.0],  # the correct pose is 6th: outside the top 5
            "6k05": [1.5, 100.0],  # top-1 correct but clashing
            "6moa": [4.0, 100.0, 1.0],  # top-1 within 5 Å, top-5 correct
        },
        {},
        ranked=True,
    )
    half_failed = shifted_run(
        examples, "half-failed", {"1a0q": [0.0], "6k05": [3.0]}, {"1a46": "x", "6moa": "y"}, ranked=False
    )
    subset_only = shifted_run(examples, "subset-only", {"6k05": [0.0], "6moa": [0.0]}, {}, ranked=True)
    settings = BenchmarkSettings(EXAMPLES, Path("split"), Path("unseen"), tmp_path)
    results = write_report(
        examples,
        [ranked, half_failed, subset_only],
        tmp_path,
        settings=settings_record(settings),
        unseen=["1a46", "6moa"],
        subset=["6k05", "6moa"],
        progress=False,
    )
    methods = results["methods"]
    top = {"1a0q": [0.0, 100.0], "1a46": [100.0] * 5 + [0.0], "6k05": [1.5, 100.0], "6moa": [4.0, 100.0, 1.0]}
    valid = {"1a0q": True, "1a46": False, "6k05": False, "6moa": False}
    assert_metrics(
        methods["ranked"]["metrics"]["all"], expected_metrics(list(top.values()), list(valid.values()))
    )
    assert methods["ranked"]["metrics"]["all"]["top1_below_2A"] == 50.0
    assert methods["ranked"]["metrics"]["all"]["top5_below_2A"] == 75.0
    assert methods["ranked"]["metrics"]["all"]["median_top1_rmsd"] == pytest.approx(2.75)
    assert methods["ranked"]["metrics"]["all"]["top1_below_2A_and_pb_valid"] == 25.0
    unseen = methods["ranked"]["metrics"]["unseen"]
    assert (unseen["top1_below_2A"], unseen["top5_below_2A"], unseen["top1_below_5A"]) == (0.0, 50.0, 50.0)
    assert unseen["median_top1_rmsd"] == pytest.approx(52.0)

    failed = methods["half-failed"]
    assert not failed["ranked"]
    assert [entry["name"] for entry in failed["failures"]] == ["1a46", "6moa"]
    everything = failed["metrics"]["all"]
    assert (everything["docked"], everything["failed"], everything["top1_below_2A"]) == (2, 2, 25.0)
    assert everything["top1_below_5A"] == 50.0 and everything["median_top1_rmsd"] is None
    assert everything["top1_pb_valid"] == 25.0  # failures are not valid: 1 of 4, not 1 of 2
    assert_metrics(everything, expected_metrics([[0.0], None, [3.0], None], [True, False, False, False]))
    assert failed["metrics"]["vina_subset"]["top1_below_5A"] == 50.0

    assert set(methods["subset-only"]["metrics"]) == {"vina_subset"}
    assert methods["subset-only"]["metrics"]["vina_subset"]["top1_below_2A"] == 100.0
    reread = read_run_poses(tmp_path / "poses" / "half-failed", {c.name: c for c in examples.complexes})
    assert reread.failures == half_failed.failures and not reread.ranked
    assert set(reread.positions) == {"1a0q", "6k05"} and np.isnan(reread.scores["6k05"]).all()
    np.testing.assert_allclose(reread.positions["6k05"], half_failed.positions["6k05"], atol=1e-4)
    paired = {(row["first"], row["second"]): row for row in results["paired"]}
    # ranked vs half-failed on all four: both dock 1a0q; only ranked docks 6k05 (half-failed: 3 Å).
    assert {
        key: paired[("ranked", "half-failed")][key] for key in ("set", "both", "only_first", "only_second")
    } == {
        "set": "all",
        "both": 1,
        "only_first": 1,
        "only_second": 0,
    }
    # subset-only ran on Vina's subset only, so it is paired there; half-failed docks neither of its two.
    versus_subset = paired[("half-failed", "subset-only")]
    assert (versus_subset["set"], versus_subset["only_second"], versus_subset["p_value"]) == (
        "vina_subset",
        2,
        0.5,
    )
    report = (tmp_path / "report.md").read_text()
    assert "Vina's subset (2 of 4, drawn with seed 0)" in report
    assert "| half-failed | subset-only | vina_subset | 2 | 0 | 0 | 2 | 0.5 |" in report
    assert "- half-failed, 1a46: x" in report


def outcomes_with_top1(top1_rmsds: list[float | None]) -> list[ComplexOutcome]:
    """Outcomes of complexes c0, c1, ... with these top-1 RMSDs (``None``: failed)."""
    return [
        ComplexOutcome(
            f"c{index}",
            "failed" if rmsd is None else "",
            np.array([] if rmsd is None else [rmsd, 0.0]),
            math.nan,
            None,
            (),
            None,
        )
        for index, rmsd in enumerate(top1_rmsds)
    ]


def test_paired_comparison_counts_discordant_complexes_and_gives_the_exact_mcnemar_p() -> None:
    # 9 complexes only the first docks, 1 only the second, 2 both, 3 neither (one of them failed).
    first = outcomes_with_top1([0.5] * 9 + [3.0] + [1.0, 1.9] + [2.0, 7.0, None])
    second = outcomes_with_top1([2.5] * 8 + [None] + [1.5] + [0.1, 0.2] + [None, 2.0, 9.0])
    comparison = paired_comparison(first, second)
    assert {key: comparison[key] for key in ("complexes", "both", "only_first", "only_second")} == {
        "complexes": 15,
        "both": 2,
        "only_first": 9,
        "only_second": 1,
    }
    # Two-sided: P(B <= 1) + P(B >= 9) for B ~ Binomial(10, 1/2).
    assert comparison["p_value"] == pytest.approx(2 * (1 + 10) / 2**10)
    swapped = paired_comparison(second, first)
    assert (swapped["only_first"], swapped["only_second"]) == (1, 9)
    assert swapped["p_value"] == pytest.approx(comparison["p_value"])
    assert paired_comparison(first, first)["p_value"] == 1.0  # no discordant complex
    with pytest.raises(ValueError, match="same complexes"):
        paired_comparison(first, second[::-1])


def test_seeded_subset_is_fixed_by_the_seed_and_keeps_the_order() -> None:
    names = [f"c{i:03d}" for i in range(100)]
    subset = seeded_subset(names, 10, seed=3)
    assert subset == seeded_subset(names, 10, seed=3) and len(set(subset)) == 10
    assert subset == sorted(subset)
    assert subset != seeded_subset(names, 10, seed=4)
    assert seeded_subset(names, None, seed=3) == seeded_subset(names, 500, seed=3) == names


def test_screening_counts_docked_and_failed_ligands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("screening", REPO / "benchmarks" / "screening.py")
    assert spec is not None and spec.loader is not None
    screening = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "screening", screening)  # its dataclass looks itself up there
    spec.loader.exec_module(screening)
    model = DockingModel.load(make_test_checkpoint(tmp_path), device="cpu")
    ligands = [("paracetamol", "CC(=O)Nc1ccc(O)cc1"), ("phenol", "c1ccccc1O"), ("bad", "C1CC")]
    result = screening.measure_throughput(
        model, EXAMPLES / "6moa" / "6moa_protein.pdb.gz", ligands, SamplingOptions(samples=2, steps=1)
    )
    assert (result.ligands, result.failed, result.samples) == (2, 1, 2)
    assert result.docking_ligands_per_second == pytest.approx(2 / result.dock_seconds)
    table = screening.throughput_table(result)
    assert table.splitlines()[2].startswith("| 2 | 1 | 2 | 1 | cpu")

    smiles_file = tmp_path / "ligands.smi"
    smiles_file.write_text("# a screen\nCC(=O)Nc1ccc(O)cc1 paracetamol\n\nc1ccccc1O\nC1CC bad\n")
    assert screening.read_smiles_file(smiles_file, 2) == [
        ("paracetamol", "CC(=O)Nc1ccc(O)cc1"),
        ("line4", "c1ccccc1O"),
    ]
    assert [name for name, _ in screening.read_smiles_file(smiles_file, 10)] == [
        "paracetamol",
        "line4",
        "bad",
    ]

    # the split route: featurize here, dock the inputs file elsewhere; the same poses as a direct run
    inputs_file = tmp_path / "screen.inputs.pt"
    common = ["--checkpoint", str(tmp_path), "--device", "cpu"]
    options = ["--samples", "2", "--steps", "1", "--export-inputs", str(inputs_file)]
    screening.main([*common, "--smiles-file", str(smiles_file), "--ligands", "3", *options])
    inputs = read_inputs(inputs_file)
    assert list(inputs.variants) == ["blind"]
    assert inputs.variants["blind"].cache.names == ["paracetamol", "line4"]
    sample_inputs.main([*common, "--inputs", str(inputs_file), "--out", str(tmp_path / "s")])
    sampled = read_samples(tmp_path / "s" / f"{tmp_path.resolve().name}.samples.pt")
    direct = model.networks.sample(
        inputs.variants["blind"].cache, inputs.variants["blind"].prior_centers, inputs.options
    )
    assert torch.equal(sampled.poses.poses, direct.poses)


def test_posebusters_on_the_subset_only_reports_validity_on_that_set_alone(
    examples: BenchmarkSet, tmp_path: Path
) -> None:
    run = shifted_run(examples, "ranked", {name: [0.0] for name in examples.names}, {}, ranked=True)
    settings = BenchmarkSettings(EXAMPLES, Path("split"), Path("unseen"), tmp_path)
    results = write_report(
        examples,
        [run],
        tmp_path,
        settings=settings_record(settings),
        subset=["1a0q", "6k05"],
        posebusters_subset_only=True,
        progress=False,
    )
    metrics = results["methods"]["ranked"]["metrics"]
    assert metrics["all"]["top1_pb_valid"] is None and metrics["all"]["top1_below_2A"] == 100.0
    # the crystal pose of 1a0q passes (see above); that of 6k05 is checked too: a share of the 2
    assert metrics["vina_subset"]["top1_pb_valid"] in (50.0, 100.0)
    with open(tmp_path / "complexes.csv", newline="") as table:
        rows = {row["complex"]: row for row in csv.DictReader(table)}
    assert rows["1a46"]["top1_pb_valid"] == "" and rows["1a0q"]["top1_pb_valid"] == "True"


def test_posebusters_in_worker_processes_fails_the_same_checks(examples: BenchmarkSet) -> None:
    """Crystal poses and poses moved 1.5 Å (into the protein): the same outcomes in 2 processes as in 1."""
    shifts = {name: [1.5 if index % 2 else 0.0] for index, name in enumerate(examples.names)}
    run = shifted_run(examples, "moved", shifts, {}, ranked=True)
    complexes = {complex_.name: complex_ for complex_ in examples.complexes}
    buster = PoseBusters(config="dock")
    alone = evaluate_run(run, complexes, buster, progress=False)
    pooled = evaluate_run(run, complexes, buster, progress=False, posebusters_workers=2)
    checks = {name: (outcome.pb_valid, outcome.pb_failed_checks) for name, outcome in alone.items()}
    assert {name: (outcome.pb_valid, outcome.pb_failed_checks) for name, outcome in pooled.items()} == checks
    assert {valid for valid, _ in checks.values()} == {True, False}  # moved poses fail, crystal poses pass


def test_posebusters_sees_whole_residues_near_the_pose_and_the_nearest_residue_of_a_distant_pose(
    cli_run: tuple[Path, dict],
) -> None:
    out, _ = cli_run
    receptor = out / "receptors" / "1a46.pdb"
    pose = crystal("1a46")
    ligand = pose.GetConformer().GetPositions()
    atoms = [line for line in receptor.read_text().splitlines() if line.startswith(("ATOM", "HETATM"))]

    def residue_atoms(lines: list[str]) -> dict[str, list[np.ndarray]]:
        residues: dict[str, list[np.ndarray]] = {}
        for line in lines:
            xyz = np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])])
            residues.setdefault(line[17:27], []).append(xyz)
        return residues

    everything = residue_atoms(atoms)
    kept_lines = [line for line in receptor_near_pose(receptor, pose).splitlines() if line.startswith("ATOM")]
    kept = residue_atoms(kept_lines)
    assert 0 < len(kept) < len(everything)
    for key, xyz in everything.items():
        closest = min(np.linalg.norm(ligand - position, axis=1).min() for position in xyz)
        assert (key in kept) == (closest <= POSEBUSTERS_RECEPTOR_MARGIN)
        if key in kept:
            assert len(kept[key]) == len(xyz)  # whole residues

    far = Chem.Mol(pose)
    conformer = far.GetConformer()
    for index, position in enumerate(ligand):
        conformer.SetAtomPosition(index, (position + 30.0).tolist())
    far_ligand = far.GetConformer().GetPositions()
    nearest = min(
        everything,
        key=lambda key: min(np.linalg.norm(far_ligand - xyz, axis=1).min() for xyz in everything[key]),
    )
    far_kept = residue_atoms(
        [line for line in receptor_near_pose(receptor, far).splitlines() if line.startswith("ATOM")]
    )
    gap = min(np.linalg.norm(far_ligand - xyz, axis=1).min() for xyz in everything[nearest])
    assert gap > POSEBUSTERS_RECEPTOR_MARGIN  # no residue within the margin
    assert list(far_kept) == [nearest] and len(far_kept[nearest]) == len(everything[nearest])
    buster = PoseBusters(config="dock")
    far_whole = buster.bust(far, None, str(receptor)).iloc[0]
    assert set(posebusters_failures(buster, far, receptor)) == {
        str(name)
        for name, passed in far_whole.items()
        if not (isinstance(passed, bool | np.bool_) and passed)
    }
    whole = buster.bust(pose, None, str(receptor)).iloc[0]
    failed_whole = {
        str(name) for name, passed in whole.items() if not (isinstance(passed, bool | np.bool_) and passed)
    }
    assert set(posebusters_failures(buster, pose, receptor)) == failed_whole
