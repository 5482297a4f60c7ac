"""The rdkit-free networks (:mod:`discodock.inference.networks`): import without RDKit, batched sampling."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from discodock.data.cache import COUNT_COLUMNS, ComplexCache
from discodock.diffusion.sampler import ComponentTemperature, SamplingTemperatures
from discodock.errors import InputError
from discodock.inference import networks as networks_module
from discodock.inference.networks import (
    TEMPERATURE_PRESETS,
    DockingNetworks,
    SampledPoses,
    SamplingOptions,
)
from discodock.training.trainer import batch_of

from .test_docking import make_test_checkpoint, one_thread  # noqa: F401

BLOCKED = ("rdkit", "Bio", "spyrmsd")


def import_without_rdkit(module: str) -> subprocess.CompletedProcess[str]:
    """``import module`` in a fresh interpreter in which RDKit, Biopython and spyrmsd cannot be imported."""
    code = f"import sys\nfor name in {BLOCKED!r}:\n    sys.modules[name] = None\nimport {module}\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_the_networks_import_without_rdkit_biopython_or_spyrmsd() -> None:
    result = import_without_rdkit("discodock.inference.networks")
    assert result.returncode == 0, result.stderr
    control = import_without_rdkit("discodock.inference.docking")  # the blocking works: docking needs RDKit
    assert control.returncode != 0 and "rdkit" in control.stderr


@pytest.fixture(scope="module")
def networks(tmp_path_factory: pytest.TempPathFactory) -> DockingNetworks:
    return DockingNetworks.load(make_test_checkpoint(tmp_path_factory.mktemp("checkpoint")), device="cpu")


def prior_centers(cache: ComplexCache) -> torch.Tensor:
    return torch.zeros(len(cache), 3)


def test_sample_gives_every_graph_its_complex_atoms_and_repeats_with_the_seed(
    networks: DockingNetworks, cache: ComplexCache
) -> None:
    options = SamplingOptions(samples=3, steps=1, seed=2, graphs_per_batch=4)  # batches straddle complexes
    sampled = networks.sample(cache, prior_centers(cache), options)
    atoms = cache.counts[:, COUNT_COLUMNS.index("atoms")]
    assert sampled.atoms.tolist() == atoms.tolist() and sampled.samples == 3
    assert [len(pose) for pose in sampled.graph_poses()] == atoms.repeat_interleave(3).tolist()
    assert sampled.confidences.shape == (6,) and torch.isfinite(sampled.confidences).all()
    assert sampled.token_nodes.shape == (6, networks.num_tokens)
    again = networks.sample(cache, prior_centers(cache), options)
    assert torch.equal(again.poses, sampled.poses) and torch.equal(again.token_nodes, sampled.token_nodes)
    parts = sampled.per_complex()
    assert [part.atoms.tolist() for part in parts] == [[a] for a in atoms.tolist()]
    joined = SampledPoses.concatenate(parts, 3, networks.num_tokens)
    for name in ("poses", "atoms", "confidences", "token_nodes"):
        assert torch.equal(getattr(joined, name), getattr(sampled, name)), name
    empty = SampledPoses.concatenate([], 3, networks.num_tokens)
    assert empty.poses.shape == (0, 3) and empty.token_nodes.shape == (0, networks.num_tokens)


def test_receptors_are_encoded_once_per_complex_and_copied_to_its_graphs(
    networks: DockingNetworks, cache: ComplexCache
) -> None:
    """The per-complex encoding, copied, equals encoding every copy (a batch straddling complexes)."""
    index = torch.tensor([0, 0, 0, 1, 1])
    batch = batch_of(cache, index, 1, networks.score_model.config)
    with torch.no_grad():
        copied = networks.receptor_encoding(cache, index)
        every_copy = networks.score_model.encode_receptor(batch)
    assert copied.shape == every_copy.shape
    torch.testing.assert_close(copied, every_copy)


def test_out_of_memory_halves_the_batch_and_retries(
    networks: DockingNetworks,
    cache: ComplexCache,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fresh = DockingNetworks(networks.score_model, networks.prior, device="cpu")
    sample_batch = fresh._sample_batch
    sizes = []

    def limited(cache, index, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(index.numel())
        if index.numel() > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return sample_batch(cache, index, *args, **kwargs)

    monkeypatch.setattr(fresh, "_sample_batch", limited)
    one = cache.subset([0])
    options = SamplingOptions(samples=5, steps=1, seed=0, graphs_per_batch=8)
    with caplog.at_level(logging.WARNING):
        sampled = fresh.sample(one, prior_centers(one), options)
    assert sizes == [5, 2, 2, 1]  # 5 graphs fail, halved to 2 for the rest
    assert len(sampled.graph_poses()) == 5 and "out of device memory" in caplog.text
    residues, atoms = (one.counts[:, COUNT_COLUMNS.index(column)] for column in ("residues", "atoms"))
    assert fresh.graphs_per_batch(residues, atoms, options) == 2  # later batches start at the reduced size


@pytest.mark.parametrize("preset", ["tuned", "disco-diffdock-s"])
def test_sampling_options_survive_a_file(tmp_path: Path, preset: str) -> None:
    options = SamplingOptions(
        samples=3, steps=4, seed=5, latents="null", temperatures=TEMPERATURE_PRESETS[preset]
    )
    torch.save(dataclasses.asdict(options), tmp_path / "options.pt")
    assert SamplingOptions.from_dict(torch.load(tmp_path / "options.pt", weights_only=True)) == options


def test_a_checkpoints_tuned_temperatures_are_the_default_and_change_the_poses(
    tmp_path: Path, cache: ComplexCache
) -> None:
    folder = make_test_checkpoint(tmp_path / "checkpoint")
    plain = DockingNetworks.load(folder, device="cpu")
    assert plain.tuned_temperatures == SamplingTemperatures()
    tuned = TEMPERATURE_PRESETS["disco-diffdock-s"]
    assert tuned is not None
    record = {"temperatures": dataclasses.asdict(tuned), "candidate": "disco-diffdock-s"}
    (folder / networks_module.SAMPLING_FILE).write_text(json.dumps(record))
    loaded = DockingNetworks.load(folder, device="cpu")
    assert loaded.tuned_temperatures == tuned
    options = SamplingOptions(samples=2, steps=3, seed=1, graphs_per_batch=4)
    assert loaded.resolved(options).temperatures == tuned
    assert loaded.resolved(dataclasses.replace(options, temperatures=SamplingTemperatures())) == (
        dataclasses.replace(options, temperatures=SamplingTemperatures())
    )
    centers = prior_centers(cache)
    default = loaded.sample(cache, centers, options).poses
    explicit = loaded.sample(cache, centers, dataclasses.replace(options, temperatures=tuned)).poses
    untuned = plain.sample(cache, centers, options).poses
    assert torch.equal(default, explicit) and not torch.allclose(default, untuned)
    assert networks_module.describe_temperatures(None) == "tuned"
    assert networks_module.describe_temperatures(tuned) == "disco-diffdock-s"
    assert (
        networks_module.describe_temperatures(SamplingTemperatures(rot=ComponentTemperature(2.0, 0.5, 0.3)))
        == "T tr/rot/tor 1/2/1"
    )
    (folder / networks_module.SAMPLING_FILE).write_text('{"temperatures": {"tr": {}}}')
    with pytest.raises(InputError, match=r"sampling.json: not a valid sampling file \(KeyError"):
        DockingNetworks.load(folder, device="cpu")


def test_the_default_checkpoint_follows_the_environment_and_explains_a_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(networks_module.CHECKPOINT_VARIABLE, str(tmp_path / "elsewhere"))
    with pytest.raises(InputError, match="elsewhere: checkpoint folder not found"):
        DockingNetworks.load(device="cpu")
    monkeypatch.delenv(networks_module.CHECKPOINT_VARIABLE)
    monkeypatch.setattr(networks_module, "DEFAULT_CHECKPOINT", tmp_path / "site-packages" / "checkpoints")
    with pytest.raises(InputError, match=r"install discodock from a clone \(pip install -e \.\)"):
        DockingNetworks.load(device="cpu")


@pytest.mark.parametrize("name", ["disco_small", "nolatent_small"])
def test_every_committed_checkpoint_loads_with_its_confidence_model(name: str) -> None:
    """The ablation's confidence.pt is a link to the DisCo folder's file (one ranker for both)."""
    folder = networks_module.DEFAULT_CHECKPOINT.parent / name
    loaded = DockingNetworks.load(folder, device="cpu")
    assert loaded.confidence is not None
    assert (loaded.prior is not None) == (loaded.score_model.config.latent_tokens > 0)
