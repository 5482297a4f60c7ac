"""Training runs of the tiny networks on two real complexes (CPU, one thread for reproducibility)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from discodock.data.batch import ComplexBatch, collate, copied_rows
from discodock.data.cache import ComplexCache
from discodock.data.docked_poses import DockedPoses
from discodock.diffusion.loss import LOSS_TERMS, score_matching_loss
from discodock.diffusion.noising import noise_batch
from discodock.diffusion.sampler import prior_input_batch
from discodock.errors import InputError
from discodock.model.confidence import ConfidenceModel
from discodock.model.config import ModelConfig, load_config
from discodock.model.latent_encoder import LatentEncoder
from discodock.model.latents import TokenLogits, copy_latents, drop_latents, gumbel_softmax_tokens
from discodock.model.score_model import ScoreModel
from discodock.training.checkpoint import (
    load_network,
    load_payload,
    load_training_state,
    load_weights,
    save_network_folder,
    save_weights,
    training_state_file,
)
from discodock.training.config import ExperimentConfig, TrainConfig, ValidationConfig, load_experiment
from discodock.training.trainer import (
    ConfidenceStage,
    PriorStage,
    ProcessGroup,
    ScoreStage,
    TrainingSummary,
    complex_logits,
    pose_rmsd,
    train,
    training_batches,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cache_path(example_cache: ComplexCache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two small example complexes (6k05, 6moa) as a cache file."""
    path = tmp_path_factory.mktemp("cache") / "two.cache.pt"
    example_cache.subset([example_cache.names.index(name) for name in ("6k05", "6moa")]).save(path)
    return path


def tiny_experiment(cache_path: Path, out: Path, dropout: float = 0.1, **train: Any) -> ExperimentConfig:
    model = load_config(REPO / "configs" / "tiny.yaml")
    model = dataclasses.replace(
        model,
        score=dataclasses.replace(model.score, dropout=dropout),
        encoder=dataclasses.replace(model.encoder, dropout=dropout),
    )
    settings = TrainConfig(
        train_cache=str(cache_path),
        batch_size=4,
        log_every_steps=1,
        checkpoint_every_steps=0,
        log_path=str(out / "train.jsonl"),
        checkpoint_dir=str(out),
        validation=ValidationConfig(every_steps=0),
    )
    return ExperimentConfig(model=model, train=dataclasses.replace(settings, **train))


def quiet_train(experiment: ExperimentConfig, resume: Path | None = None) -> TrainingSummary:
    with contextlib.redirect_stdout(io.StringIO()):
        return train(experiment, resume=resume, device="cpu")


def log_records(out: Path, event: str) -> list[dict[str, Any]]:
    lines = (out / "train.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["event"] == event]


def assert_same_tensors(first: Any, second: Any) -> None:
    """Nested dicts/lists of tensors and plain values are identical (tensors bitwise)."""
    if isinstance(first, torch.Tensor):
        assert torch.equal(first, second)
    elif isinstance(first, dict):
        assert first.keys() == second.keys()
        for key in first:
            assert_same_tensors(first[key], second[key])
    elif isinstance(first, (list, tuple)):
        assert len(first) == len(second)
        for a, b in zip(first, second, strict=True):
            assert_same_tensors(a, b)
    else:
        assert first == second


def test_experiment_files_load() -> None:
    for name in ("train_tiny.yaml", "train_small.yaml", "train_small_nolatent.yaml"):
        experiment = load_experiment(REPO / "configs" / name)
        assert experiment.train.stage == "score"
    assert load_experiment(REPO / "configs" / "train_small_nolatent.yaml").model.score.latent_tokens == 0


def test_overrides_set_nested_values_and_name_bad_ones() -> None:
    path = REPO / "configs" / "train_small.yaml"
    plain = load_experiment(path)
    changed = load_experiment(
        path,
        [
            "train.weight_decay=0.05",
            "model.score.dropout=0.25",
            "train.checkpoint_dir=runs/arm",
            "train.seed=7",
        ],
    )
    assert (changed.train.weight_decay, changed.model.score.dropout) == (0.05, 0.25)
    assert (changed.train.checkpoint_dir, changed.train.seed) == ("runs/arm", 7)
    assert (
        dataclasses.replace(
            changed,
            train=dataclasses.replace(
                changed.train, weight_decay=0.0, checkpoint_dir=plain.train.checkpoint_dir, seed=0
            ),
            model=dataclasses.replace(
                changed.model,
                score=dataclasses.replace(changed.model.score, dropout=plain.model.score.dropout),
            ),
        )
        == plain
    )
    for bad, message in (
        ("train.weight_decay", "expected dotted.key=value"),
        ("train..seed=1", "expected dotted.key=value"),
        ("train.seed.value=1", "train.seed is not a mapping"),
        ("train.no_such_key=1", "unknown key"),
        ("train.weight_decay=-1", "must be ≥ 0"),
    ):
        with pytest.raises(InputError, match=message):
            load_experiment(path, [bad])


def test_tiny_model_cuts_its_loss(cache_path: Path, tmp_path: Path) -> None:
    """120 steps of 4 complexes (~40 s): the translation term falls clearly, the total falls.

    Rotation and torsion terms barely move in so few steps; the translation score (where the pocket
    is) is what a tiny network learns first.
    """
    experiment = tiny_experiment(cache_path, tmp_path, dropout=0.0, lr=1e-2, max_steps=120, seed=0)
    summary = quiet_train(experiment)
    assert summary.steps == 120 and summary.stop_reason == "max_steps"
    records = log_records(tmp_path, "train")
    assert [r["step"] for r in records] == list(range(1, 121))

    def mean(key: str, part: slice) -> float:
        values = [r[key] for r in records[part]]
        return sum(values) / len(values)

    first, last = slice(0, 10), slice(-10, None)
    assert mean("tr", first) / mean("tr", last) > 1.5
    assert mean("loss", first) > mean("loss", last)
    assert Path(summary.checkpoint).is_file() and Path(summary.weights).is_file()


@pytest.mark.parametrize("stage", ["score", "confidence"])
def test_resumed_run_equals_an_uninterrupted_one(cache_path: Path, tmp_path: Path, stage: str) -> None:
    """Score stage with half the batches in pocket mode and pocket validation: the crops resume too."""
    pocket_jitter = 2.0 if stage == "score" else None
    validation = ValidationConfig(
        every_steps=2, complexes=2, samples=2, inference_steps=2, pocket_jitter=pocket_jitter
    )
    common = {
        "stage": stage,
        "pocket_fraction": 0.5 if stage == "score" else 0.0,
        "checkpoint_every_steps": 2,
        "val_cache": str(cache_path),
        "validation": validation,
        "seed": 3,
    }
    whole = quiet_train(tiny_experiment(cache_path, tmp_path / "whole", max_steps=4, **common))
    quiet_train(tiny_experiment(cache_path, tmp_path / "first", max_steps=2, **common))
    resumed = quiet_train(
        tiny_experiment(cache_path, tmp_path / "second", max_steps=4, **common),
        resume=tmp_path / "first" / "last.pt",
    )
    assert whole.steps == resumed.steps == 4
    expected, actual = load_payload(whole.checkpoint), load_payload(resumed.checkpoint)
    resume_keys = ("step", "stage", "optimizer", "scheduler", "data_order", "rng", "best_metric")
    for key in (*resume_keys, "last_validation"):
        assert_same_tensors(expected[key], actual[key])
    whole_losses = [r["loss"] for r in log_records(tmp_path / "whole", "train")[2:]]
    resumed_losses = [r["loss"] for r in log_records(tmp_path / "second", "train")]
    assert whole_losses == resumed_losses
    assert log_records(tmp_path / "second", "validation")[-1] == {
        **log_records(tmp_path / "whole", "validation")[-1],
        "seconds": log_records(tmp_path / "second", "validation")[-1]["seconds"],
    }
    if stage == "score":
        assert {"pocket_rmsd_lt2", "pocket_rmsd_median"} <= log_records(tmp_path / "whole", "validation")[
            -1
        ].keys()


def test_warm_start_from_a_network_folder_continues_the_networks(cache_path: Path, tmp_path: Path) -> None:
    """The committed form of a run (one file per network + training_state.json) restarts training."""
    first = quiet_train(tiny_experiment(cache_path, tmp_path / "first", max_steps=3, seed=1))
    folder = Path(first.checkpoint).parent / "networks"
    assert load_training_state(folder)["steps"] == 3
    _, saved = load_weights(folder)
    assert set(saved) == {"score_model", "score_model_ema", "encoder"}

    # one more step at a vanishing learning rate: the parameters must come back unchanged
    experiment = tiny_experiment(cache_path, tmp_path / "second", max_steps=4, seed=2, lr=1e-30)
    with contextlib.redirect_stdout(io.StringIO()):
        warm = train(experiment, device="cpu", init_from=folder)
    assert warm.steps == 4
    assert [r["step"] for r in log_records(tmp_path / "second", "train")] == [4]
    assert log_records(tmp_path / "second", "start")[0]["warm_started_from"] == str(folder)
    second_folder = Path(warm.checkpoint).parent / "networks"
    assert load_training_state(second_folder)["steps"] == 4
    _, continued = load_weights(second_folder)
    for name in ("score_model", "encoder"):
        for key, value in saved[name].items():
            if "running" not in key and "num_batches" not in key:  # batch-norm statistics do move
                assert torch.equal(value, continued[name][key]), (name, key)


def test_run_stops_cleanly_at_its_time_budget(cache_path: Path, tmp_path: Path) -> None:
    budget_minutes = 0.12
    summary = quiet_train(
        tiny_experiment(cache_path, tmp_path, max_steps=100_000, max_wall_minutes=budget_minutes)
    )
    assert summary.stop_reason == "time_budget"
    assert 0 < summary.steps < 100_000
    # the loop stops when 1.5 × the last step's time would pass the budget; on a loaded machine one step
    # can take longer than that (CI beside other jobs: 7.27 s for 7.2 s), so allow a second of noise
    assert summary.wall_seconds < 60 * budget_minutes + 1.0
    assert load_payload(summary.checkpoint)["step"] == summary.steps
    assert log_records(tmp_path, "stop")[-1]["reason"] == "time_budget"


def prior_experiment(cache_path: Path, out: Path) -> ExperimentConfig:
    """Prior stage on a freshly initialised score stage, whose weights file is written to ``out``."""
    experiment = tiny_experiment(cache_path, out, stage="prior", score_weights=str(out / "score.pt"))
    torch.manual_seed(5)
    score_model = ScoreModel(experiment.model.score)
    encoder = LatentEncoder(experiment.model.encoder, experiment.model.score.latent_tokens)
    save_weights(out / "score.pt", experiment.to_dict(), {"score_model": score_model, "encoder": encoder})
    return experiment


def test_prior_stage_resumes_exactly(cache_path: Path, tmp_path: Path) -> None:
    base = prior_experiment(cache_path, tmp_path)

    def run(out: str, steps: int, resume: Path | None = None) -> TrainingSummary:
        settings = dataclasses.replace(
            base.train,
            batch_size=2,
            max_steps=steps,
            log_path=str(tmp_path / out / "train.jsonl"),
            checkpoint_dir=str(tmp_path / out),
        )
        return quiet_train(dataclasses.replace(base, train=settings), resume=resume)

    first = run("first", 1)
    resumed = run("resumed", 3, resume=Path(first.checkpoint))
    whole = run("whole", 3)
    _, after_one = load_weights(first.weights)
    _, after_three = load_weights(whole.weights)
    name = "trunk.ligand_node_input.weight"
    assert not torch.equal(after_one["prior"][name], after_three["prior"][name])
    assert_same_tensors(load_payload(whole.checkpoint)["stage"], load_payload(resumed.checkpoint)["stage"])


def test_prior_stage_learns_fixed_token_targets(cache_path: Path, tmp_path: Path) -> None:
    experiment = prior_experiment(cache_path, tmp_path)
    _, state_dicts = load_weights(tmp_path / "score.pt")
    encoder = LatentEncoder(experiment.model.encoder, experiment.model.score.latent_tokens).eval()
    encoder.load_state_dict(state_dicts["encoder"])
    cache = ComplexCache.load(cache_path)
    stage = PriorStage(experiment, ProcessGroup(0, 1, torch.device("cpu")), cache, None)

    # The cached encoder logits line up with a batch of any complexes, repeated or reordered.
    index = torch.tensor([1, 0, 1])
    gathered = complex_logits(cache, stage.train_logits, index)
    with torch.no_grad():
        direct = encoder(collate(cache, index))
    torch.testing.assert_close(gathered.ligand, direct.ligand)
    torch.testing.assert_close(gathered.residue, direct.residue)

    # Fixed, sharply peaked targets: token 0 on ligand atom 2, token 1 on residue 7 of every complex.
    ligand = torch.full((int(cache.counts[:, 1].sum()), 2), -20.0)
    residue = torch.full((int(cache.counts[:, 0].sum()), 2), -20.0)
    ligand[cache.offsets("atoms") + 2, 0] = 20.0
    residue[cache.offsets("residues") + 7, 1] = 20.0
    stage.train_logits = TokenLogits(ligand, residue)

    batch = collate(cache, [0, 1, 0, 1])
    optimizer = torch.optim.Adam(stage.trainable_parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(40):
        loss = stage.loss(batch, generator, batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) < 0.25 * sum(losses[:5])

    stage.prior.eval()
    with torch.no_grad():
        inputs = prior_input_batch(batch, generator)
        decoded = stage.prior.sample(inputs, logit_multiplier=100.0)  # greedy decoding
        first_token = stage.prior.log_probs(inputs, decoded, 0).ligand[:, 0].exp()
    atoms_per_graph = torch.bincount(inputs.atom_graph)
    expected = torch.stack([torch.full_like(atoms_per_graph, 2), atoms_per_graph + 7], dim=1)
    assert torch.equal(decoded.token_nodes(inputs), expected)
    first_atom = torch.cumsum(atoms_per_graph, 0) - atoms_per_graph
    local_atom = torch.arange(len(inputs.atom_graph)) - first_atom[inputs.atom_graph]
    assert (first_token[local_atom == 2] > 0.5).all()


def confidence_experiment(cache_path: Path, out: Path, **train: Any) -> ExperimentConfig:
    """The tiny confidence model without dropout, trained and validated on the two complexes."""
    experiment = tiny_experiment(cache_path, out, stage="confidence", val_cache=str(cache_path), **train)
    confidence = dataclasses.replace(experiment.model.confidence, dropout=0.0)
    return dataclasses.replace(experiment, model=dataclasses.replace(experiment.model, confidence=confidence))


def test_confidence_experiment_file_loads() -> None:
    experiment = load_experiment(REPO / "configs" / "train_confidence_small.yaml")
    assert experiment.train.stage == "confidence"
    assert experiment.model.confidence.sampled_pose_fraction == 0.0
    docked = load_experiment(
        REPO / "configs" / "train_confidence_docked_small.yaml",
        ["model.confidence.sampled_pose_fraction=0.5"],
    )
    assert docked.model.confidence.sampled_pose_fraction == 0.5
    assert (
        docked.train.docked_poses == "docked/train-*.pt" and docked.train.val_docked_poses == "docked/val.pt"
    )


def test_confidence_stage_learns_to_tell_poses_within_2_angstrom(cache_path: Path, tmp_path: Path) -> None:
    """100 steps of 8 noised poses (~25 s): validation AUROC on 2 × 48 fresh poses well above chance.

    Across seeds the AUROC after 100 steps lies in 0.83–0.93 (0.5 is chance); the classes stay balanced.
    """
    validation = ValidationConfig(every_steps=100, complexes=2, samples=48)
    experiment = confidence_experiment(
        cache_path, tmp_path, batch_size=8, lr=3e-3, max_steps=100, seed=0, validation=validation
    )
    summary = quiet_train(experiment)
    records = log_records(tmp_path, "train")
    positives = sum(r["positives"] for r in records) / len(records)
    assert 35.0 < positives < 65.0
    metrics = summary.last_validation
    assert metrics["val_auroc"] > 0.7
    assert 0.0 <= metrics["val_random_pick_success"] <= metrics["val_best_pick_success"] <= 100.0
    assert 0.0 <= metrics["val_top1_success"] <= metrics["val_best_pick_success"]
    assert summary.best_metric == metrics["val_auroc"]
    assert set(load_weights(tmp_path / "networks")[1]) == {"confidence"}
    best = load_training_state(tmp_path / "best_networks", "confidence")
    assert best["best_metric"] == summary.best_metric == best["last_validation"]["val_auroc"]
    assert set(load_weights(tmp_path / "best_networks")[1]) == {"confidence"}


def test_exported_confidence_weights_give_identical_logits(cache_path: Path, tmp_path: Path) -> None:
    """The network folder's ``confidence.pt`` rebuilds the trained network exactly (as inference loads it)."""
    experiment = confidence_experiment(cache_path, tmp_path)
    cache = ComplexCache.load(cache_path)
    stage = ConfidenceStage(experiment, ProcessGroup(0, 1, torch.device("cpu")), cache, None)
    optimizer = torch.optim.Adam(stage.trainable_parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):  # move the weights and the batch-norm statistics away from their initial values
        batch = collate(cache, [0, 1, 0, 1])
        loss = stage.loss(batch, generator, batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_network_folder(tmp_path / "networks", experiment.to_dict(), stage.export(), {"stage": "confidence"})

    config, name, state_dict = load_network(tmp_path / "networks" / "confidence.pt")
    fresh = ConfidenceModel(ModelConfig.from_dict(config["model"]).confidence)
    fresh.load_state_dict(state_dict)
    poses = stage.noised_poses(collate(cache, [0, 1], copies=3), generator)
    with torch.no_grad():
        assert name == "confidence"
        assert torch.equal(fresh.eval()(poses), stage.model.eval()(poses))


def test_every_stage_warm_starts_from_one_shared_network_folder(cache_path: Path, tmp_path: Path) -> None:
    """Score and confidence networks in one folder (as checkpoints/disco_small ships them): each stage
    reads its own training state and networks."""
    score = quiet_train(tiny_experiment(cache_path, tmp_path / "score", max_steps=2, seed=1))
    confidence = quiet_train(confidence_experiment(cache_path, tmp_path / "confidence", max_steps=3))
    shared = tmp_path / "shared"
    shutil.copytree(Path(score.checkpoint).parent / "networks", shared)
    for file in (Path(confidence.checkpoint).parent / "networks").iterdir():
        shutil.copy(file, shared)
    assert load_training_state(shared)["steps"] == 2
    assert load_training_state(shared, "confidence")["steps"] == 3
    experiment = confidence_experiment(cache_path, tmp_path / "again", max_steps=4)
    with contextlib.redirect_stdout(io.StringIO()):
        warm = train(experiment, device="cpu", init_from=shared)
    assert warm.steps == 4 and [r["step"] for r in log_records(tmp_path / "again", "train")] == [4]


def docked_experiment(cache_path: Path, out: Path, docked: Path, **train: Any) -> ExperimentConfig:
    """:func:`confidence_experiment` with half the training poses and the validation docked beforehand."""
    experiment = confidence_experiment(
        cache_path, out, docked_poses=str(docked), val_docked_poses=str(docked), **train
    )
    confidence = dataclasses.replace(experiment.model.confidence, sampled_pose_fraction=0.5, sampling_steps=2)
    return dataclasses.replace(experiment, model=dataclasses.replace(experiment.model, confidence=confidence))


@pytest.fixture(scope="module")
def docked_path(cache_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two blind and two pocket poses of each complex, docked by random tiny networks in 2 steps."""
    from discodock.inference.dock_cache import dock_cache
    from discodock.inference.networks import DockingNetworks, SamplingOptions

    from .test_docking import make_test_checkpoint

    folder = tmp_path_factory.mktemp("docked")
    networks = DockingNetworks.load(make_test_checkpoint(folder / "checkpoint"), device="cpu")
    options = SamplingOptions(steps=2, seed=1)
    docked = dock_cache(networks, ComplexCache.load(cache_path), 2, options, progress=False)
    docked.save(folder / "docked.pt")
    return folder / "docked.pt"


def test_confidence_stage_mixes_in_docked_poses_with_the_receptor_crop_they_were_docked_in(
    cache_path: Path, docked_path: Path, tmp_path: Path
) -> None:
    """With ``sampled_pose_fraction``, each graph's training pose is either its noised pose (in the batch's
    crop) or one of its docked poses (in that pose's crop)."""
    cache = ComplexCache.load(cache_path)
    group = ProcessGroup(0, 1, torch.device("cpu"))
    base = confidence_experiment(cache_path, tmp_path)
    without = dataclasses.replace(
        base,
        model=dataclasses.replace(
            base.model, confidence=dataclasses.replace(base.model.confidence, sampled_pose_fraction=0.5)
        ),
    )
    with pytest.raises(ValueError, match=r"train\.docked_poses"):
        ConfidenceStage(without, group, cache, None)
    wrong_steps = docked_experiment(cache_path, tmp_path, docked_path)
    wrong_steps = dataclasses.replace(
        wrong_steps,
        model=dataclasses.replace(
            wrong_steps.model, confidence=dataclasses.replace(wrong_steps.model.confidence, sampling_steps=20)
        ),
    )
    with pytest.raises(InputError, match="docked with 2 steps"):
        ConfidenceStage(wrong_steps, group, cache, None)

    stage = ConfidenceStage(docked_experiment(cache_path, tmp_path, docked_path), group, cache, None)
    docked = DockedPoses.read(docked_path)
    index = torch.tensor([0, 1] * 8)
    batch = collate(cache, index)
    mixed = stage.training_poses(batch, torch.Generator().manual_seed(4))
    noised = stage.noised_poses(batch, torch.Generator().manual_seed(4)).ligand_pos
    assert mixed.pockets is not None
    from_noise = torch.zeros(batch.num_graphs, dtype=torch.bool)
    from_docking = torch.zeros(batch.num_graphs, dtype=torch.bool)
    for graph, (pose, complex_index) in enumerate(
        zip(mixed.ligand_pos.split(torch.bincount(batch.atom_graph).tolist()), index.tolist(), strict=True)
    ):
        if torch.equal(pose, noised[batch.atom_graph == graph]):
            from_noise[graph] = True
            assert math.isinf(mixed.pockets[graph, 3])  # the batch was collated without crops
            continue
        for sample in range(docked.poses_per_complex):
            rows = docked.pose_rows(torch.tensor([complex_index]), torch.tensor([sample]))
            if torch.equal(pose, docked.poses[rows]):
                from_docking[graph] = True
                crop = docked.crops(torch.tensor([complex_index]), torch.tensor([sample]))[0]
                assert torch.equal(mixed.pockets[graph], crop)
    assert torch.equal(from_noise, ~from_docking) and from_noise.any() and from_docking.any()
    residues = torch.bincount(mixed.residue_graph, minlength=batch.num_graphs)
    whole = torch.bincount(batch.residue_graph, minlength=batch.num_graphs)
    assert (residues[torch.isfinite(mixed.pockets[:, 3])] < whole[torch.isfinite(mixed.pockets[:, 3])]).all()
    assert torch.isfinite(stage.loss(batch, torch.Generator().manual_seed(5), batch)["loss"])


def test_confidence_training_on_docked_poses_validates_their_ranking(
    cache_path: Path, docked_path: Path, tmp_path: Path
) -> None:
    """Validation ranks each complex's docked poses per mode; their top-1 selects the best networks."""
    validation = ValidationConfig(every_steps=2, complexes=2, samples=4, graphs_per_batch=8)
    experiment = docked_experiment(cache_path, tmp_path, docked_path, max_steps=2, validation=validation)
    quiet_train(experiment)
    (record,) = log_records(tmp_path, "validation")
    docked = DockedPoses.read(docked_path)
    cache = ComplexCache.load(cache_path)
    graphs = torch.arange(2).repeat_interleave(docked.poses_per_complex)
    sample = torch.arange(docked.poses_per_complex).repeat(2)
    poses = collate(cache, graphs).with_ligand_pos(docked.poses[docked.pose_rows(graphs, sample)])
    success = (pose_rmsd(poses.ligand_pos, poses.crystal_pos, poses.atom_graph, 8) < 2.0).view(4, 2)
    assert record["val_docked_random_pick_success"] == pytest.approx(100.0 * success.float().mean().item())
    assert record["val_docked_best_pick_success"] == pytest.approx(
        100.0 * success.any(1).float().mean().item()
    )
    own_top1 = success.gather(1, docked.confidences.view(4, 2).argmax(1, keepdim=True))
    assert record["val_docked_top1_as_docked"] == pytest.approx(100.0 * own_top1.float().mean().item())
    assert 0.0 <= record["val_docked_top1_success"] <= record["val_docked_best_pick_success"]
    assert "val_auroc" in record and "val_docked_auroc" in record
    assert record["best_val_docked_top1_success"] == record["val_docked_top1_success"]


def test_pose_copies_share_the_receptor_encoding_and_tokens_exactly(cache_path: Path, tmp_path: Path) -> None:
    """With ``noise_copies`` = 3 the score stage encodes each receptor and draws each complex's tokens once;
    the loss equals that of encoding every copy on its own with the same tokens (no dropout)."""
    experiment = tiny_experiment(cache_path, tmp_path, dropout=0.0, noise_copies=3, pocket_fraction=0.5)
    cache = ComplexCache.load(cache_path)
    stage = ScoreStage(experiment, ProcessGroup(0, 1, torch.device("cpu")), cache, None)
    settings, score_config = experiment.train, experiment.model.score
    batch, complexes = training_batches(
        cache, torch.tensor([0, 1, 1, 0]), settings, score_config, torch.Generator().manual_seed(3)
    )
    assert batch.num_graphs == 12 and complexes.num_graphs == 4
    assert torch.equal(batch.complex_index, complexes.complex_index.repeat_interleave(3))
    shared = stage.loss(batch, torch.Generator().manual_seed(4), complexes)

    # The same draws, with every copy's receptor and tokens computed from the copy itself.
    assert stage.encoder is not None
    generator = torch.Generator().manual_seed(4)
    noisy, noise = noise_batch(
        batch, score_config.schedule, generator, time_alpha=settings.time_alpha, time_beta=settings.time_beta
    )
    logits = stage.encoder(complexes)
    tokens = gumbel_softmax_tokens(
        logits, complexes, experiment.model.encoder.training_temperature, generator
    )
    copy_of = torch.arange(4).repeat_interleave(3)
    copied = copy_latents(tokens, complexes, copy_of)
    per_copy_logits = stage.encoder(batch)
    atom_rows = copied_rows(complexes.atom_graph, 4, copy_of)
    residue_rows = copied_rows(complexes.residue_graph, 4, copy_of)
    torch.testing.assert_close(per_copy_logits.ligand, logits.ligand[atom_rows])
    torch.testing.assert_close(per_copy_logits.residue, logits.residue[residue_rows])
    latents = drop_latents(copied, batch, score_config.latent_droprate, generator)
    separate = score_matching_loss(stage.score_model(noisy, noise.t, latents), noise, settings.loss_weights)
    for name in LOSS_TERMS:
        torch.testing.assert_close(shared[name], separate[name])


def test_runs_train_with_pose_copies_and_only_the_score_stage_takes_them(
    cache_path: Path, tmp_path: Path
) -> None:
    summary = quiet_train(
        tiny_experiment(cache_path, tmp_path, noise_copies=2, pocket_fraction=0.5, max_steps=2)
    )
    assert summary.steps == 2 and all(math.isfinite(r["loss"]) for r in log_records(tmp_path, "train"))
    for stage in ("prior", "confidence"):
        with pytest.raises(ValueError, match="noise_copies"):
            TrainConfig(stage=stage, train_cache="x", score_weights="y", noise_copies=2)


def test_score_validation_losses_use_the_same_noise_at_every_validation(
    cache_path: Path, tmp_path: Path
) -> None:
    """The denoising losses of two validations of one network agree exactly; the docked poses need not."""
    validation = ValidationConfig(every_steps=1, complexes=2, samples=2, inference_steps=2)
    experiment = tiny_experiment(cache_path, tmp_path, val_cache=str(cache_path), validation=validation)
    cache = ComplexCache.load(cache_path)
    stage = ScoreStage(experiment, ProcessGroup(0, 1, torch.device("cpu")), cache, cache)
    first = stage.validate(torch.Generator().manual_seed(1))
    second = stage.validate(torch.Generator().manual_seed(2))
    for name in LOSS_TERMS:
        assert first[f"val_{name}"] == second[f"val_{name}"]
    assert first["val_loss"] > 0


def test_weight_decay_shrinks_every_weight_by_lr_times_decay_per_step(
    cache_path: Path, tmp_path: Path
) -> None:
    """One step from the same warm start with and without decoupled weight decay ``w`` at rate ``lr``:
    the weights differ by exactly ``lr · w · θ₀`` (the Adam step itself is the same)."""
    first = quiet_train(tiny_experiment(cache_path, tmp_path / "first", max_steps=1, seed=1))
    folder = Path(first.checkpoint).parent / "networks"
    _, start = load_weights(folder)
    lr, decay = 1e-2, 0.5
    runs = {}
    for weight_decay in (0.0, decay):
        out = tmp_path / f"decay{weight_decay}"
        experiment = tiny_experiment(cache_path, out, max_steps=2, seed=2, lr=lr, weight_decay=weight_decay)
        with contextlib.redirect_stdout(io.StringIO()):
            summary = train(experiment, device="cpu", init_from=folder)
        runs[weight_decay] = load_weights(Path(summary.checkpoint).parent / "networks")[1]
    model = tiny_experiment(cache_path, tmp_path).model
    parameters = {
        "score_model": dict(ScoreModel(model.score).named_parameters()),
        "encoder": dict(LatentEncoder(model.encoder, model.score.latent_tokens).named_parameters()),
    }
    for name, names in parameters.items():
        for key in names:  # not the buffers
            value = start[name][key]
            difference = runs[0.0][name][key] - runs[decay][name][key]
            torch.testing.assert_close(difference, lr * decay * value, atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="weight_decay and residue_noise"):
        TrainConfig(train_cache="x", weight_decay=-1.0)


def test_residue_noise_moves_every_residue_alike_in_all_copies(cache_path: Path, tmp_path: Path) -> None:
    cache = ComplexCache.load(cache_path)
    index = torch.tensor([0, 1, 1, 0] * 8)
    experiment = tiny_experiment(cache_path, tmp_path, noise_copies=3, pocket_fraction=0.5, residue_noise=0.5)
    settings, config = experiment.train, experiment.model.score

    def batches(residue_noise: float) -> tuple[ComplexBatch, ComplexBatch]:
        chosen = dataclasses.replace(settings, residue_noise=residue_noise)
        return training_batches(cache, index, chosen, config, torch.Generator().manual_seed(7))

    clean_poses, clean = batches(0.0)
    poses, complexes = batches(0.5)
    shift = complexes.residue_pos - clean.residue_pos
    assert abs(float(shift.std()) - 0.5) < 0.05 and abs(float(shift.mean())) < 0.05
    copy_of = torch.arange(len(index)).repeat_interleave(3)
    rows = copied_rows(complexes.residue_graph, len(index), copy_of)
    assert torch.equal(poses.residue_pos, complexes.residue_pos[rows])
    assert torch.equal(poses.residue_graph, clean_poses.residue_graph)
    assert torch.equal(poses.receptor_edges, clean_poses.receptor_edges)


@pytest.mark.parametrize("stage", ["prior", "score"])
def test_a_warm_start_keeps_the_best_metric_only_where_the_targets_cannot_have_changed(
    cache_path: Path, tmp_path: Path, stage: str
) -> None:
    """The prior's targets come from the score stage's encoder, which may be newer than the prior's last
    run: its warm start forgets the best validation cross-entropy. The score stage's keeps it."""
    validation = ValidationConfig(every_steps=1, complexes=2, samples=1, inference_steps=2)
    base = (
        prior_experiment(cache_path, tmp_path) if stage == "prior" else tiny_experiment(cache_path, tmp_path)
    )

    def experiment(out: str, steps: int) -> ExperimentConfig:
        settings = dataclasses.replace(
            base.train,
            batch_size=2,
            max_steps=steps,
            val_cache=str(cache_path),
            validation=validation,
            log_path=str(tmp_path / out / "train.jsonl"),
            checkpoint_dir=str(tmp_path / out),
        )
        return dataclasses.replace(base, train=settings)

    first = quiet_train(experiment("first", 1))
    folder = Path(first.checkpoint).parent / "networks"
    state_file = folder / training_state_file(stage)
    state = json.loads(state_file.read_text())
    unbeatable = -1.0 if stage == "prior" else 101.0  # a cross-entropy below 0, a success rate above 100 %
    state_file.write_text(json.dumps({**state, "best_metric": unbeatable}))
    with contextlib.redirect_stdout(io.StringIO()):
        train(experiment("warm", 2), device="cpu", init_from=folder)
    metric = "val_ce" if stage == "prior" else "rmsd_lt2"
    record = log_records(tmp_path / "warm", "validation")[-1]
    expected = record[metric] if stage == "prior" else unbeatable
    assert record[f"best_{metric}"] == expected
