"""The benchmark's GPU route (:mod:`discodock.benchmark.sample_inputs`): export → sample → import.

On real examples with tiny random networks, the three phases must give the same ranked poses, RMSDs and
metrics as the direct in-process benchmark with the same seed, and samples of other complexes, variants or
options must be refused with one line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from discodock.benchmark import sample_inputs
from discodock.cli import main

from .conftest import EXAMPLES
from .test_docking import make_test_checkpoint, one_thread  # noqa: F401
from .test_networks import import_without_rdkit

NAMES = ("6k05", "6moa")
SAMPLES = 3


def benchmark(*arguments: str) -> tuple[int, str]:
    """``discodock benchmark ARGUMENTS`` with the test's sampling options: exit status and output."""
    result = CliRunner().invoke(
        main, ["benchmark", *arguments, "--samples", str(SAMPLES), "--steps", "1", "--seed", "3", "--quiet"]
    )
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The direct benchmark and the three-phase one of two examples (blind and pocket, two checkpoints)."""
    root = tmp_path_factory.mktemp("gpu_route")
    data = root / "data"
    data.mkdir()
    for name in NAMES:
        (data / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    (root / "split").write_text("\n".join(NAMES) + "\n")
    (root / "other_split").write_text("6moa\n")
    checkpoints = ["--checkpoint", str(make_test_checkpoint(root / "tiny"))] * 2
    common = ["--data-dir", str(data), "--pocket", "--no-posebusters", "--split", str(root / "split")]
    paths = {name: root / name for name in ("direct", "imported", "samples")}
    status, output = benchmark(*common, *checkpoints, "--device", "cpu", "--out", str(paths["direct"]))
    assert status == 0, output
    status, output = benchmark(*common, "--export-inputs", str(root / "inputs.pt"))
    assert status == 0 and "exported 2 blind, 2 pocket featurized complexes" in output, output
    assert not (root / "benchmark_results").exists()  # no report
    inputs = ["--inputs", str(root / "inputs.pt")]
    for variant in ("pocket", "blind"):  # split over two runs, merged in the direct run's order
        sample_inputs.main(
            [*inputs, *checkpoints, "--out", str(paths["samples"]), "--device", "cpu", "--variant", variant]
        )
    status, output = benchmark(
        *common, "--import-samples", str(paths["samples"]), "--out", str(paths["imported"])
    )
    assert status == 0, output
    return {"root": root, **paths}


def test_the_sampling_module_imports_without_rdkit_biopython_or_spyrmsd() -> None:
    result = import_without_rdkit("discodock.benchmark.sample_inputs")
    assert result.returncode == 0, result.stderr


def test_exported_sampled_and_imported_poses_are_those_of_the_direct_run(runs: dict[str, Path]) -> None:
    methods = ["tiny", "tiny-pocket", "tiny-2", "tiny-2-pocket"]
    assert sorted(path.name for path in runs["samples"].iterdir()) == sorted(
        f"{method}.samples.pt" for method in methods
    )
    direct = json.loads((runs["direct"] / "results.json").read_text())
    imported = json.loads((runs["imported"] / "results.json").read_text())
    assert list(direct["methods"]) == list(imported["methods"]) == methods
    for method in methods:
        for name in NAMES:  # the same ranked poses, to the last written digit
            pose_file = Path("poses") / method / f"{name}.sdf"
            assert (runs["imported"] / pose_file).read_text() == (runs["direct"] / pose_file).read_text()
        before, after = direct["methods"][method], imported["methods"][method]
        assert after["metrics"] == before["metrics"] and after["description"] == before["description"]
        assert after["ranked"] and not after["failures"]
        timing = after["timing"]
        assert timing["hardware"].startswith("cpu") and timing["docking_s_per_complex"] > 0
        assert timing["preparation_s_per_complex"] > 0  # this run's featurization
    with (
        (runs["direct"] / "complexes.csv").open() as direct_csv,
        (runs["imported"] / "complexes.csv").open() as imported_csv,
    ):
        for row, other in zip(csv.DictReader(direct_csv), csv.DictReader(imported_csv), strict=True):
            assert {k: v for k, v in row.items() if k != "seconds"} == {
                k: v for k, v in other.items() if k != "seconds"
            }
    assert imported["settings"]["imported_samples"] == str(runs["samples"])


def test_samples_of_other_complexes_variants_or_options_are_refused_in_one_line(
    runs: dict[str, Path],
) -> None:
    root = runs["root"]
    common = ["--data-dir", str(root / "data"), "--no-posebusters", "--out", str(root / "refused")]
    status, output = benchmark(
        *common, "--pocket", "--split", str(root / "other_split"), "--import-samples", str(runs["samples"])
    )
    assert status == 1
    assert output.startswith("error: ") and len(output.strip().splitlines()) == 1
    assert "samples of 2 complexes, this run featurized 1; they differ in 6k05" in output
    status, output = benchmark(
        *common, "--split", str(root / "split"), "--import-samples", str(runs["samples"])
    )
    assert status == 1 and "this run without --pocket needs blind" in output
    status, output = benchmark(
        *common, "--pocket", "--split", str(root / "split"), "--temperatures", "diffdock-s",
        "--import-samples", str(runs["samples"]),
    )  # fmt: skip
    assert status == 1 and "tiny.samples.pt: sampled with temperatures=" in output
    status, output = benchmark(*common, "--split", str(root / "split"), "--import-samples", str(root))
    assert status == 1 and "no samples files (*.samples.pt)" in output
    assert not (root / "refused" / "results.json").exists()


def test_the_sampling_command_reports_bad_inputs_in_one_line(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        sample_inputs.main(["--inputs", str(runs["root"] / "split"), "--out", str(runs["root"] / "bad")])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "not a discodock benchmark inputs file" in error
