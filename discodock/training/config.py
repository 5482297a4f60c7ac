"""Training hyperparameters and the experiment file that holds them (method.md §1.5, §3.6–3.7).

An experiment is one YAML file with two sections::

    model: small.yaml          # a model config file (relative to this file), or the mapping itself
    train:
      stage: score
      train_cache: cache/train.cache.pt
      batch_size: 16
      validation: {every_steps: 500, complexes: 100}

``model`` is a :class:`~discodock.model.config.ModelConfig`, ``train`` a :class:`TrainConfig`; both are
read by the generic :func:`~discodock.model.config.dataclass_from_dict` (omitted keys keep their
defaults, unknown keys are errors). Relative paths inside ``train`` are taken as given (relative to
the working directory). Single values can be overridden without editing the file
(:func:`apply_overrides`, ``discodock train --set train.weight_decay=0.05``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from discodock.diffusion.loss import LossWeights
from discodock.errors import InputError
from discodock.model.config import ModelConfig, dataclass_from_dict

STAGES = ("score", "prior", "confidence")
"""Stages :func:`discodock.training.trainer.train` can run."""


@dataclass(frozen=True)
class ValidationConfig:
    """Periodic validation on held-out complexes.

    Score stage: dock the first ``complexes`` complexes of the validation cache, ``samples`` times each,
    by ``inference_steps``-step reverse diffusion with the EMA score network and oracle tokens from the
    encoder, and report the share with (plain, unaligned) RMSD to the crystal pose below 2 Å, plus the
    denoising loss on the same complexes. Prior stage: cross-entropy and accuracy of the prior against
    the encoder's tokens on those complexes.

    Attributes
    ----------
    every_steps
        Validate after every this many optimiser steps (0: never).
    complexes
        Validation complexes used (the first ones of the validation cache; at most all of them).
    samples
        Poses sampled per complex.
    inference_steps
        Reverse-diffusion steps (20).
    graphs_per_batch
        Graphs (complex copies) per sampling batch; bounds memory.
    pocket_jitter
        If set, the translation prior is centred on a pocket centre (crystal centroid + ``N(0, jitter²)``
        Å) instead of the protein centre: pocket-docking success, a quicker signal than blind docking.
    """

    every_steps: int = 500
    complexes: int = 500
    samples: int = 1
    inference_steps: int = 20
    graphs_per_batch: int = 64
    pocket_jitter: float | None = None

    def __post_init__(self) -> None:
        if self.every_steps < 0 or self.complexes < 1 or self.samples < 1 or self.inference_steps < 1:
            raise ValueError("validation needs every_steps ≥ 0 and complexes, samples, inference_steps ≥ 1")
        if self.graphs_per_batch < 1:
            raise ValueError(f"graphs_per_batch must be ≥ 1, got {self.graphs_per_batch}")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one stage.

    Attributes
    ----------
    stage
        ``"score"``: denoiser and latent encoder jointly (method.md §3.6); ``"prior"``: the
        autoregressive prior on a trained score stage (§3.7); ``"confidence"``: the pose-ranking model.
    train_cache, val_cache
        :class:`~discodock.data.cache.ComplexCache` files; ``val_cache`` empty disables validation.
    score_weights
        Weights file or network folder of a trained score stage. Prior stage: its raw, non-EMA score
        network initialises the prior's trunk and its encoder provides the targets.
    docked_poses, val_docked_poses
        Confidence stage: file, or glob pattern of the shards, of the poses trained networks docked for
        the training (validation) complexes (:class:`~discodock.data.docked_poses.DockedPoses`,
        ``discodock dock-cache``). Training mixes them in at ``model.confidence.sampled_pose_fraction``;
        validation ranks them too. Empty: none.
    batch_size
        Complexes per optimiser step, summed over all processes.
    lr
        Adam learning rate.
    weight_decay
        Decoupled (AdamW) weight decay: every step multiplies the weights by ``1 − lr · weight_decay``
        (0: plain Adam). A resumed run takes this value from the config, not from the checkpoint.
    ema_decay
        EMA decay of the score network (score stage).
    time_alpha, time_beta
        Training times ``t ~ Beta(α, β)``.
    loss_weights
        Translation, rotation and torsion loss weights.
    scheduler_factor, scheduler_patience, scheduler_min_lr_fraction
        ReduceLROnPlateau on the best-so-far validation metric: factor 0.7, patience counted in
        validations, minimum learning rate ``lr × fraction``.
    max_steps, max_epochs
        Stop after this many optimiser steps / passes over the training set (0: no limit).
    max_wall_minutes
        Stop cleanly (with a checkpoint) before this much wall time has passed since the start of
        :func:`~discodock.training.trainer.train` (0: no limit).
    log_every_steps
        Write a training log line (losses averaged over the window) every this many steps.
    checkpoint_every_steps
        Write the resume checkpoint and the weights file every this many steps (0: only at the end).
    seed
        Seed of initialisation, data order and noise.
    log_path
        JSON-lines log file (appended to).
    checkpoint_dir
        Folder of ``last.pt`` (resume), ``weights.pt``, ``networks/`` (the last weights) and
        ``best_networks/`` (those of the best validation so far).
    allow_tf32
        Allow TF32 matrix products on CUDA (faster, slightly less precise).
    noise_copies
        Score stage: pose copies of each complex per batch, each with its own time and noise. The copies
        share the complex's receptor crop, its receptor encoding and (with latents) the encoder's tokens,
        computed once, so a step costs far less than ``noise_copies`` one-copy steps of the same graphs:
        the rotation and torsion targets get more noise draws per complex and per GPU-second. A step
        has ``batch_size · noise_copies`` graphs.
    residue_noise
        Å; standard deviation of the Gaussian noise added to every residue's C-alpha position in training
        batches (the same for all pose copies of a complex), an augmentation against memorising the
        receptors of a small training set (0: none).
    pocket_fraction
        Share of the training complexes docked in pocket mode: receptor cropped around a centre near the
        ligand (:func:`~discodock.diffusion.noising.sample_training_pockets`), so that ``--pocket-center``
        is a trained mode. Score and confidence stages only: the prior's targets (the encoder's token
        distributions, cached per complex) cover the whole receptor.
    pocket_jitter
        Å; spread of those pocket centres around the crystal ligand's centroid.
    pocket_margin
        Å; pocket radius = this + the conformer's radius (the default of ``discodock predict``,
        :data:`~discodock.inference.networks.DEFAULT_POCKET_MARGIN`).
    compile_tensor_products
        Compile the networks' tensor products with ``torch.compile``
        (:func:`~discodock.model.layers.compile_tensor_products`): faster on a GPU after a one-off
        compilation of a minute or so.
    validation
        See :class:`ValidationConfig`.
    """

    stage: str = "score"
    train_cache: str = ""
    val_cache: str = ""
    score_weights: str = ""
    docked_poses: str = ""
    val_docked_poses: str = ""
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    time_alpha: float = 2.0
    time_beta: float = 1.0
    loss_weights: LossWeights = field(default_factory=LossWeights)
    scheduler_factor: float = 0.7
    scheduler_patience: int = 6
    scheduler_min_lr_fraction: float = 0.01
    max_steps: int = 0
    max_epochs: float = 0.0
    max_wall_minutes: float = 0.0
    log_every_steps: int = 10
    checkpoint_every_steps: int = 1000
    seed: int = 0
    log_path: str = "runs/train.jsonl"
    checkpoint_dir: str = "runs/checkpoints"
    allow_tf32: bool = True
    noise_copies: int = 1
    residue_noise: float = 0.0
    pocket_fraction: float = 0.0
    pocket_jitter: float = 2.0
    pocket_margin: float = 20.0
    compile_tensor_products: bool = False
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if not self.train_cache:
            raise ValueError("train_cache is required")
        if self.stage == "prior" and not self.score_weights:
            raise ValueError("the prior stage needs score_weights (weights file of the score stage)")
        if self.batch_size < 1 or self.log_every_steps < 1 or self.noise_copies < 1:
            raise ValueError("batch_size, log_every_steps and noise_copies must be ≥ 1")
        if self.stage != "score" and self.noise_copies != 1:
            raise ValueError(f"noise_copies is a score-stage setting; the {self.stage} stage needs 1")
        if (
            self.max_steps < 0
            or self.max_epochs < 0
            or self.max_wall_minutes < 0
            or self.checkpoint_every_steps < 0
        ):
            raise ValueError("max_steps, max_epochs, max_wall_minutes and checkpoint_every_steps must be ≥ 0")
        if not (0 <= self.pocket_fraction <= 1 and self.pocket_jitter >= 0 and self.pocket_margin > 0):
            raise ValueError("need 0 ≤ pocket_fraction ≤ 1, pocket_jitter ≥ 0 and pocket_margin > 0")
        if self.stage == "prior" and self.pocket_fraction > 0:
            # its targets are the encoder's distributions over the nodes of the whole complex
            raise ValueError("the prior stage trains on whole receptors: pocket_fraction must be 0")
        if not (self.lr > 0 and 0 <= self.ema_decay < 1 and 0 < self.scheduler_factor < 1):
            raise ValueError("need lr > 0, 0 ≤ ema_decay < 1 and 0 < scheduler_factor < 1")
        if self.weight_decay < 0 or self.residue_noise < 0:
            raise ValueError("weight_decay and residue_noise must be ≥ 0")


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: the networks and how to train them."""

    model: ModelConfig
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts (the inverse of :func:`experiment_from_dict`), for checkpoints and logs."""
        return dataclasses.asdict(self)


def experiment_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from plain dicts (``{"model": {...}, "train": {...}}``).

    Raises
    ------
    ValueError
        On a missing section, an unknown key or an invalid value (naming the dotted key).
    """
    missing = [section for section in ("model", "train") if section not in data]
    if missing:
        raise ValueError(f"{missing[0]}: section missing")
    return dataclass_from_dict(ExperimentConfig, data)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``data`` with each ``"dotted.key=value"`` of ``overrides`` set, the value read as YAML.

    E.g. ``train.weight_decay=0.05``, ``model.score.dropout=0.2``, ``train.checkpoint_dir=runs/a``.
    Intermediate mappings are created when missing; ``data`` itself is not changed.

    Raises
    ------
    ValueError
        On an override without ``=`` or with an empty key part, or one that descends into a value that
        is not a mapping.
    """
    result = copy.deepcopy(data)
    for override in overrides:
        key, separator, text = override.partition("=")
        parts = key.strip().split(".")
        if not separator or not all(parts):
            raise ValueError(f"override {override!r}: expected dotted.key=value")
        node = result
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {override!r}: {'.'.join(parts[: depth + 1])} is not a mapping")
        node[parts[-1]] = yaml.safe_load(text)
    return result


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read an experiment YAML file (see the module docstring), with ``overrides`` applied.

    ``model`` may name a model config file, relative to the experiment file's folder; it is read before
    the overrides (:func:`apply_overrides`) are applied.

    Raises
    ------
    InputError
        If a file is missing or not valid YAML, or the config or an override is invalid.
    """
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise InputError(path, "expected a mapping with sections model and train")
    if isinstance(data.get("model"), str):
        model_path = path.parent / data["model"]
        data = {**data, "model": _read_yaml(model_path) or {}}
    try:
        return experiment_from_dict(apply_overrides(data, overrides))
    except (ValueError, yaml.YAMLError) as error:
        raise InputError(path, str(error).replace("\n", " ")) from None


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InputError(path, f"not valid YAML ({error})") from None
