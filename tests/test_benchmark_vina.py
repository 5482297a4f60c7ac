"""The AutoDock Vina baseline: search boxes, and a pocket redock of 6moa whose RMSDs the report states."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdMolAlign

from discodock.benchmark.complexes import load_benchmark_set
from discodock.benchmark.report import write_report
from discodock.benchmark.run import BenchmarkSettings, settings_record

from .conftest import EXAMPLES

vina = pytest.importorskip("discodock.benchmark.vina", reason="needs the benchmark extra (vina, meeko)")


def test_pocket_box_pads_the_ligand_by_4_angstrom_and_is_at_least_15_angstrom() -> None:
    positions = np.array([[0.0, 0.0, 0.0], [20.0, 2.0, 10.0], [10.0, 1.0, 2.0]])
    box = vina.pocket_box(positions)
    np.testing.assert_allclose(box.center, positions.mean(axis=0))
    np.testing.assert_allclose(box.size, [28.0, 15.0, 18.0])


def test_blind_box_covers_the_whole_receptor_with_padding() -> None:
    positions = np.array([[-10.0, 0.0, 5.0], [30.0, 20.0, 5.0]])
    box = vina.blind_box(positions)
    np.testing.assert_allclose(box.center, [10.0, 10.0, 5.0])
    np.testing.assert_allclose(box.size, [48.0, 28.0, 8.0])


def test_vina_pocket_redock_of_6moa_and_the_report_states_its_rmsds(tmp_path: Path) -> None:
    (tmp_path / "split").write_text("6moa\n")
    benchmark = load_benchmark_set(EXAMPLES, tmp_path / "split", tmp_path / "receptors")
    run = vina.run_vina(benchmark.complexes, "pocket", tmp_path / "vina", seed=0, workers=1, progress=False)
    assert not run.failures
    settings = BenchmarkSettings(EXAMPLES, tmp_path / "split", None, tmp_path, checkpoints=(), vina="pocket")
    write_report(benchmark, [run], tmp_path, settings=settings_record(settings), progress=False)

    poses = list(Chem.SDMolSupplier(str(tmp_path / "poses" / "vina-pocket" / "6moa.sdf")))
    assert 1 <= len(poses) <= vina.NUM_POSES
    energies = [pose.GetDoubleProp("vina_kcal_per_mol") for pose in poses]
    assert energies == sorted(energies) and energies[0] < 0  # best (lowest) score first
    crystal = Chem.RemoveHs(Chem.MolFromMolFile(str(EXAMPLES / "6moa" / "6moa_ligand.sdf")))
    rmsds = [rdMolAlign.CalcRMS(pose, crystal) for pose in poses]
    assert min(rmsds[:5]) < 2.0  # Vina finds the crystal pose in a box around it

    metrics = json.loads((tmp_path / "results.json").read_text())["methods"]["vina-pocket"]["metrics"]["all"]
    assert metrics["median_top1_rmsd"] == pytest.approx(rmsds[0], abs=1e-3)
    assert metrics["top1_below_2A"] == (100.0 if rmsds[0] < 2 else 0.0)
    assert metrics["top5_below_2A"] == 100.0
    with (tmp_path / "complexes.csv").open() as handle:
        (row,) = csv.DictReader(handle)
    assert float(row["top1_rmsd"]) == pytest.approx(rmsds[0], abs=1e-3)
    assert row["notes"].removeprefix("receptor: ") in vina.RECEPTOR_ROUTES
    assert float(row["seconds"]) > 0
    assert (tmp_path / "vina" / "pocket" / "6moa" / "receptor.pdbqt").is_file()


def test_vina_past_its_time_limit_is_stopped_and_counted_as_failed(tmp_path: Path) -> None:
    (tmp_path / "split").write_text("6moa\n1a0q\n")
    benchmark = load_benchmark_set(EXAMPLES, tmp_path / "split", tmp_path / "receptors")
    run = vina.run_vina(
        benchmark.complexes, "pocket", tmp_path / "vina", seed=0, workers=2, time_limit=0.5, progress=False
    )
    assert set(run.attempted) == {"1a0q", "6moa"}
    assert not run.positions
    assert set(run.failures) == {"1a0q", "6moa"}
    assert all("time limit of 0.5 s" in reason for reason in run.failures.values())
    assert "stopped after 0.5 s per complex" in run.description
