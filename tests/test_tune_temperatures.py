"""``benchmarks/tune_temperatures.py``: the candidate list, the selection rule and an end-to-end run."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from typing import Any

import pytest
import torch

from discodock.data.cache import ComplexCache
from discodock.diffusion.noising import sample_training_pockets
from discodock.diffusion.sampler import (
    DIFFDOCK_S_TEMPERATURES,
    DISCO_DIFFDOCK_S_TEMPERATURES,
    ComponentTemperature,
    SamplingTemperatures,
    prior_latents,
    sample_poses,
)
from discodock.inference.networks import DEFAULT_POCKET_MARGIN, DEFAULT_POCKET_SIGMA, DockingNetworks
from discodock.training.trainer import batch_of

from .test_docking import _script, make_test_checkpoint
from .test_networks import BLOCKED

tune = _script("tune_temperatures")

NAMES = [
    "none",
    "diffdock-s",
    "disco-diffdock-s",
    "disco-scaled-0.25",
    "disco-scaled-0.5",
    "disco-scaled-1.5",
    "disco-tr-only",
    "disco-rot-only",
    "disco-tor-only",
]
COMPONENTS = ("tr", "rot", "tor")
SAMPLES, STEPS, SEED = 2, 3, 0
METRICS = ("poses", "below_2", "below_5", "median_rmsd", "top1_below_2", "top1_below_5", "seconds")


def test_the_script_runs_without_rdkit_biopython_or_spyrmsd() -> None:
    """The GPU machine has none of them."""
    blocker = "".join(f"sys.modules[{name!r}] = None\n" for name in BLOCKED)
    code = f"import sys, runpy\n{blocker}sys.argv = ['tune_temperatures.py', '--help']\n"
    code += f"runpy.run_path({str(tune.__file__)!r}, run_name='__main__')\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "--write-checkpoint" in result.stdout, result.stderr


def test_candidates_are_the_presets_their_scalings_and_one_component_versions() -> None:
    table = tune.candidates()
    assert list(table) == NAMES
    assert table["none"] == SamplingTemperatures()
    assert table["diffdock-s"] == DIFFDOCK_S_TEMPERATURES
    assert table["disco-diffdock-s"] == DISCO_DIFFDOCK_S_TEMPERATURES
    for alpha in (0.25, 0.5, 1.5):
        candidate = table[f"disco-scaled-{alpha:g}"]
        for name in COMPONENTS:
            preset, value = getattr(DISCO_DIFFDOCK_S_TEMPERATURES, name), getattr(candidate, name)
            assert value.sampling == pytest.approx(preset.sampling**alpha)
            assert value.psi == pytest.approx(alpha * preset.psi)
            assert value.sigma_data == preset.sigma_data
    for name in COMPONENTS:
        candidate = table[f"disco-{name}-only"]
        assert getattr(candidate, name) == getattr(DISCO_DIFFDOCK_S_TEMPERATURES, name)
        for other in set(COMPONENTS) - {name}:
            assert getattr(candidate, other) == ComponentTemperature()


def test_scaling_by_zero_is_plain_and_by_one_is_the_preset() -> None:
    for name in COMPONENTS:
        preset = getattr(DISCO_DIFFDOCK_S_TEMPERATURES, name)
        assert tune.scaled(preset, 1.0) == preset
        plain = tune.scaled(preset, 0.0)
        assert (plain.sampling, plain.psi) == (1.0, 0.0)


def test_selection_score_averages_the_two_shares_over_the_modes() -> None:
    metrics = {
        "pocket": {"below_2": 40.0, "below_5": 80.0, "top1_below_2": 0.0},
        "blind": {"below_2": 10.0, "below_5": 30.0, "top1_below_2": 100.0},
    }
    assert tune.selection_score(metrics) == pytest.approx(
        ((40 + 80) / 2 + (10 + 30) / 2) / 2
    )  # top-1 ignored


def test_choose_takes_the_maximum_and_keeps_the_earlier_candidate_on_ties() -> None:
    assert tune.choose({"none": 3.0, "a": 5.0, "b": 5.0, "c": 4.0}) == "a"
    assert tune.choose({"none": 2.0, "a": 2.0}) == "none"


def test_mode_metrics_shares_median_and_unranked_top1() -> None:
    rmsd = torch.tensor([1.0, 3.0, 6.0, math.inf])
    values = tune.mode_metrics(rmsd, torch.tensor([1.5, 2.5]), 1.25)
    assert values["poses"] == 4
    assert (values["below_2"], values["below_5"], values["median_rmsd"]) == (25.0, 50.0, 4.5)
    assert values["top1_below_2"] == 50.0
    assert values["seconds"] == 1.25
    assert math.isnan(tune.mode_metrics(rmsd, torch.full((2,), math.nan), 0.0)["top1_below_2"])
    assert tune.median(torch.tensor([7.0, math.inf, 1.0])) == 7.0


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, example_cache: ComplexCache) -> dict[str, Any]:
    """A full run (all candidates, --write-checkpoint) on the first 2 of 3 example complexes, CPU."""
    root = tmp_path_factory.mktemp("tuning")
    cache_path = root / "val.cache.pt"
    example_cache.subset([example_cache.names.index(name) for name in ("6k05", "6moa", "1a46")]).save(
        cache_path
    )
    checkpoint = make_test_checkpoint(root / "checkpoint")
    out = root / "out"
    argv = ["--checkpoint", str(checkpoint), "--cache", str(cache_path), "--device", "cpu", "--first", "2"]
    argv += ["--samples", str(SAMPLES), "--steps", str(STEPS), "--seed", str(SEED), "--complexes-per-batch"]
    argv += ["1", "--out", str(out), "--write-checkpoint", "--pocket-sigmas", "5", "19"]
    tune.main(argv)
    return {
        "argv": argv,
        "cache": cache_path,
        "checkpoint": checkpoint,
        "record": json.loads((out / "tuning.json").read_text()),
        "markdown": (out / "tuning.md").read_text(),
        "sampling": json.loads((checkpoint / "sampling.json").read_text()),
    }


def test_run_reports_every_candidate_in_both_modes_and_chooses_the_best(tuned: dict[str, Any]) -> None:
    record = tuned["record"]
    assert record["complexes"] == 2 and record["names"] == ["6k05", "6moa"]
    assert list(record["candidates"]) == NAMES and list(record["metrics"]) == NAMES
    for name, per_mode in record["metrics"].items():
        assert list(per_mode) == ["pocket", "blind"]
        for values in per_mode.values():
            assert set(values) == set(METRICS)
            assert values["poses"] == 2 * SAMPLES
            for share in ("below_2", "below_5", "top1_below_2", "top1_below_5"):
                assert 0 <= values[share] <= 100
            assert values["below_2"] <= values["below_5"]
            assert values["median_rmsd"] > 0 and values["seconds"] > 0
        assert record["selection_scores"][name] == pytest.approx(tune.selection_score(per_mode))
    scores = record["selection_scores"]
    chosen = record["chosen"]
    assert scores[chosen] == max(scores.values())
    assert chosen == next(name for name in NAMES if scores[name] == max(scores.values()))
    assert record["command"] == "python benchmarks/tune_temperatures.py " + " ".join(tuned["argv"])
    assert f"**{chosen}**" in tuned["markdown"]
    assert all(f"| {name} |" in tuned["markdown"] for name in NAMES if name != chosen)


def test_the_pocket_spread_sweep_redocks_the_winner_and_matches_its_run_at_the_default_spread(
    tuned: dict[str, Any],
) -> None:
    record = tuned["record"]
    sweep = record["pocket_sigma_metrics"]
    assert list(sweep) == ["5", "19"] and DEFAULT_POCKET_SIGMA == 5.0
    winner = record["metrics"][record["chosen"]]["pocket"]
    same_spread = sweep["5"]["pocket"]
    assert {k: v for k, v in same_spread.items() if k != "seconds"} == {
        k: v for k, v in winner.items() if k != "seconds"
    }
    assert sweep["19"]["pocket"]["median_rmsd"] != winner["median_rmsd"]
    assert "## Pocket prior spread" in tuned["markdown"] and "| 19 |" in tuned["markdown"]


def test_sampling_json_round_trips_into_the_chosen_temperatures(tuned: dict[str, Any]) -> None:
    record, sampling = tuned["record"], tuned["sampling"]
    chosen = record["chosen"]
    temperatures = SamplingTemperatures(
        **{name: ComponentTemperature(**value) for name, value in sampling["temperatures"].items()}
    )
    assert temperatures == tune.candidates()[chosen]
    assert sampling["candidate"] == chosen
    assert sampling["selection_score"] == pytest.approx(record["selection_scores"][chosen])
    assert sampling["tuned_on"] == {"cache": str(tuned["cache"]), "complexes": 2}
    assert (sampling["samples"], sampling["steps"], sampling["seed"]) == (SAMPLES, STEPS, SEED)
    assert sampling["command"] == record["command"]


def test_metrics_agree_with_an_independent_docking_of_the_plain_candidate(tuned: dict[str, Any]) -> None:
    """The ``none`` candidate in pocket mode redone with the same seed, one generator through the chunks of
    one complex (``--complexes-per-batch 1``), RMSDs computed per graph by hand: the same numbers."""
    networks = DockingNetworks.load(tuned["checkpoint"], device="cpu")
    model = networks.score_model
    cache = ComplexCache.load(tuned["cache"]).subset([0, 1])
    complexes = torch.arange(2)
    pockets = sample_training_pockets(
        cache, complexes.repeat_interleave(SAMPLES), 1.0, 0.0, DEFAULT_POCKET_MARGIN
    )
    generator = torch.Generator().manual_seed(SEED)
    rmsds, top1 = [], []
    with torch.no_grad():
        for c in complexes:  # one complex per batch, as the run's --complexes-per-batch 1
            rows = slice(int(c) * SAMPLES, (int(c) + 1) * SAMPLES)
            batch = batch_of(cache, c[None], SAMPLES, model.config, pockets[rows])
            pos = sample_poses(
                model.for_receptors(batch),
                batch,
                model.config.schedule,
                num_steps=STEPS,
                latent_source=prior_latents(networks.prior),
                temperatures=SamplingTemperatures(),
                prior_center=pockets[rows, :3],
                prior_sigma_tr=torch.full((SAMPLES,), DEFAULT_POCKET_SIGMA),
                generator=generator,
            )
            logits = networks.confidence(batch.with_ligand_pos(pos))
            pose_rmsds = [
                float(
                    ((pos[batch.atom_graph == g] - batch.crystal_pos[batch.atom_graph == g]) ** 2)
                    .sum(1)
                    .mean()
                )
                ** 0.5
                for g in range(batch.num_graphs)
            ]
            rmsds += pose_rmsds
            top1.append(pose_rmsds[int(logits.argmax())])
    chunks = tune.prepare_chunks(networks, cache, "pocket", SAMPLES, 1, DEFAULT_POCKET_SIGMA)
    latents = prior_latents(networks.prior)
    rmsd, top1_rmsd = tune.dock(networks, chunks, SamplingTemperatures(), latents, SAMPLES, STEPS, SEED)
    assert rmsd.tolist() == pytest.approx(rmsds, rel=1e-5)
    assert top1_rmsd.tolist() == pytest.approx(top1, rel=1e-5)
    reported = tuned["record"]["metrics"]["none"]["pocket"]
    assert reported["below_2"] == pytest.approx(100 * sum(r < 2 for r in rmsds) / len(rmsds))
    assert reported["below_5"] == pytest.approx(100 * sum(r < 5 for r in rmsds) / len(rmsds))
    assert reported["median_rmsd"] == pytest.approx(statistics.median(rmsds), rel=1e-5)
    assert reported["top1_below_2"] == pytest.approx(100 * sum(r < 2 for r in top1) / len(top1))
