"""Training loop of the score, prior and confidence stages, on one device or many (method.md §1.5, §2.7, §3).

:func:`train` runs one stage of an experiment (:class:`~discodock.training.config.ExperimentConfig`):

* ``score``: the denoiser and the latent encoder trained jointly. Per step, for a batch of complexes:
  t ~ Beta(α, β) and the pose perturbation (:func:`~discodock.diffusion.noising.noise_batch`), the
  encoder's straight-through Gumbel tokens at τ = 1 on the crystal pose, latent dropout, the score
  network on the noisy pose, and the σ-normalised loss
  (:func:`~discodock.diffusion.loss.score_matching_loss`). One Adam optimiser updates both networks;
  an EMA of the score network (not the encoder) is kept.
  Validation docks held-out complexes with the EMA network and oracle tokens and reports % RMSD < 2 Å.
* ``prior``: the autoregressive prior. The trained encoder (eval mode) computes its token logits for
  every training and validation complex once; the loss is the teacher-forced cross-entropy of the prior
  against the encoder's soft targets.
* ``confidence``: the pose-ranking classifier, on matched poses noised afresh at every step (optionally
  mixed with poses docked by trained networks), labels RMSD < 2 Å, binary cross-entropy
  (:class:`ConfidenceStage`).

A stage is any object with the :class:`TrainingStage` interface, registered in :data:`STAGE_BUILDERS`.

Everything per step runs on the device: the whole cache lives there, batches are tensor gathers
(:func:`~discodock.data.batch.collate`), all noise comes from one device ``torch.Generator`` per
process, and the host synchronises only to log, validate and checkpoint.

**Several GPUs.** Launched by ``torchrun`` (``WORLD_SIZE > 1``), every process takes a disjoint shard
``global_batch[rank::world_size]`` of the same global batch; after the backward pass the gradients are
averaged over processes in one flat all-reduce (equivalent to DistributedDataParallel's averaging,
which is not used because which parameters receive gradients varies from step to step: null
embeddings under latent dropout, a frozen trunk). Validation complexes are split over processes too.
Only process 0 writes logs and checkpoints.

**Stopping and resuming.** A run stops at ``max_steps``, ``max_epochs`` or before ``max_wall_minutes``
would be exceeded, and then writes its checkpoint. The resume checkpoint holds the networks, EMA,
optimiser, scheduler, step, data order and the random-number state of every process (global torch,
CUDA, numpy and Python generators and the noise generator), so a resumed run continues exactly as an
uninterrupted one would have (bitwise on the CPU).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from discodock.data.batch import WHOLE_RECEPTOR, ComplexBatch, collate, copied_rows
from discodock.data.cache import COUNT_COLUMNS, ComplexCache, ragged_rows
from discodock.data.docked_poses import DockedPoses
from discodock.diffusion.loss import LOSS_TERMS, score_matching_loss
from discodock.diffusion.noising import noise_batch, sample_training_pockets
from discodock.diffusion.sampler import (
    LatentSource,
    oracle_latents,
    prior_input_batch,
    sample_poses,
)
from discodock.errors import InputError
from discodock.geometry.pose import graph_mean
from discodock.model.confidence import ConfidenceModel, binary_auroc
from discodock.model.config import ScoreModelConfig
from discodock.model.latent_encoder import LatentEncoder
from discodock.model.latents import (
    TokenLogits,
    copy_latents,
    drop_latents,
    gumbel_softmax_tokens,
    sample_tokens,
)
from discodock.model.layers import compile_tensor_products
from discodock.model.prior import AutoregressivePrior
from discodock.model.score_model import ScoreModel
from discodock.training.checkpoint import (
    capture_rng_state,
    load_payload,
    load_training_state,
    load_weights,
    restore_rng_state,
    save_atomic,
    save_network_folder,
    save_weights,
)
from discodock.training.config import ExperimentConfig, TrainConfig, load_experiment
from discodock.training.ema import ExponentialMovingAverage

CHECKPOINT_FORMAT = "discodock-train-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
SUCCESS_RMSD = 2.0
"""Å; a docked pose is a success below this RMSD to the crystal pose."""


# --------------------------------------------------------------------------------------------------
# Processes


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the training processes.

    Attributes
    ----------
    rank, world_size
        Index of this process and number of processes (1 without ``torchrun``).
    device
        Device of this process.
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this process writes logs and checkpoints."""
        return self.rank == 0

    def shard(self, items: torch.Tensor) -> torch.Tensor:
        """This process's share ``items[rank::world_size]``."""
        return items[self.rank :: self.world_size]

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise mean of ``values`` over processes."""
        if self.world_size > 1:
            values = values.clone()
            dist.all_reduce(values)
            values /= self.world_size
        return values

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value`` (a picklable object), in rank order."""
        if self.world_size == 1:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process."""
        if self.world_size == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def start_processes(device: str | torch.device | None) -> tuple[ProcessGroup, bool]:
    """Join the ``torchrun`` process group if ``WORLD_SIZE > 1``; otherwise a single process.

    Parameters
    ----------
    device
        Device of a single process (default CUDA when available). Under ``torchrun`` each process uses
        ``cuda:LOCAL_RANK``, or the CPU (gloo backend) when ``device`` is ``"cpu"``.

    Returns
    -------
    group
        This process's :class:`ProcessGroup`.
    initialised_here
        Whether this call created the process group (and should destroy it).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        default = "cuda" if torch.cuda.is_available() else "cpu"
        return ProcessGroup(0, 1, torch.device(default if device is None else device)), False
    use_cuda = torch.device(device).type != "cpu" if device is not None else torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(chosen)
    initialised_here = not dist.is_initialized()
    if initialised_here:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), chosen), initialised_here


def average_gradients(parameters: list[nn.Parameter], group: ProcessGroup) -> None:
    """Replace each gradient by its mean over processes, in one flat all-reduce.

    A parameter without a gradient on some process counts as 0 there; one without a gradient on every
    process keeps none (so the optimiser skips it, as a single process would).
    """
    if group.world_size == 1 or not parameters:
        return
    gradients = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    present = torch.tensor([float(p.grad is not None) for p in parameters], device=parameters[0].device)
    flat = torch.cat([*(g.reshape(-1) for g in gradients), present])
    dist.all_reduce(flat)
    pieces = flat[: -len(parameters)].split([p.numel() for p in parameters])
    for parameter, piece, count in zip(parameters, pieces, flat[-len(parameters) :].tolist(), strict=True):
        parameter.grad = (piece / group.world_size).view_as(parameter) if count > 0 else None


def process_seed(seed: int, *keys: int) -> int:
    """A well-mixed 63-bit seed derived from ``seed`` and ``keys`` (e.g. the rank)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def seed_globals(seed: int) -> None:
    """Seed the global torch (all devices), numpy and Python generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# --------------------------------------------------------------------------------------------------
# Data order and logging


class DataOrder:
    """Endless stream of training-set indices: one fresh random permutation per epoch.

    Global batches are consecutive slices of the stream, so a batch may span two epochs and a batch
    larger than the training set is allowed. The position and the generator state are part of the
    resume checkpoint.

    Parameters
    ----------
    size
        Number of training complexes.
    seed
        Seed of the permutations.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(size, generator=self.generator)
        self.position = 0
        self.consumed = 0

    @property
    def epochs(self) -> float:
        """Passes over the training set so far."""
        return self.consumed / self.size

    def next(self, count: int) -> torch.Tensor:
        """The next ``count`` indices, ``int64[count]`` (CPU)."""
        parts = []
        while count > 0:
            if self.position == self.size:
                self.permutation = torch.randperm(self.size, generator=self.generator)
                self.position = 0
            take = min(count, self.size - self.position)
            parts.append(self.permutation[self.position : self.position + take])
            self.position += take
            self.consumed += take
            count -= take
        return torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        """Generator state, current permutation and position, indices consumed so far."""
        return {
            "generator": self.generator.get_state(),
            "permutation": self.permutation,
            "position": self.position,
            "consumed": self.consumed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream saved by :meth:`state_dict`."""
        if len(state["permutation"]) != self.size:
            raise ValueError("the checkpoint was written for a training set of another size")
        self.generator.set_state(state["generator"])
        self.permutation = state["permutation"].clone()
        self.position = int(state["position"])
        self.consumed = int(state["consumed"])


class JsonLinesLog:
    """Append one JSON object per line to a file (and echo it to standard output) on process 0."""

    def __init__(self, path: str | Path, enabled: bool) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line (process 0 only)."""
        if not self.enabled:
            return
        line = json.dumps(record, allow_nan=True)
        with self.path.open("a") as handle:
            handle.write(line + "\n")
        print(line, flush=True)


class LossWindow:
    """Running sums of the loss components since the last log line (kept on the device)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.seconds = 0.0

    def add(self, losses: dict[str, torch.Tensor], seconds: float) -> None:
        """Add one step's losses and its duration (validation and checkpoints excluded)."""
        for name, value in losses.items():
            detached = value.detach()
            self.sums[name] = self.sums[name] + detached if name in self.sums else detached
        self.steps += 1
        self.seconds += seconds

    def means(self, group: ProcessGroup) -> dict[str, float]:
        """Mean of each component over the window's steps and all processes (synchronises)."""
        names = sorted(self.sums)
        values = group.mean(torch.stack([self.sums[name] for name in names]) / self.steps)
        return dict(zip(names, values.tolist(), strict=True))


# --------------------------------------------------------------------------------------------------
# Stages


class TrainingStage(Protocol):
    """What the training loop needs from a stage (score, prior, confidence).

    Attributes
    ----------
    metric, metric_mode
        Validation metric that selects ``best_networks/`` and drives the learning-rate scheduler
        (its best-so-far value), and whether higher (``"max"``) or lower (``"min"``) is better.
    warm_start_keeps_best
        Whether a warm start (``--init-from``) continues the best-so-far metric of the networks it
        starts from; ``False`` where the validation targets may have changed since.
    """

    metric: str
    metric_mode: str
    warm_start_keeps_best: bool

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates now."""

    def set_epoch(self, epoch: float) -> bool:
        """Enter the phase of ``epoch`` (passes over the training set); True if the trainable set changed."""

    def loss(
        self, batch: ComplexBatch, generator: torch.Generator, complexes: ComplexBatch
    ) -> dict[str, torch.Tensor]:
        """Loss components of a training batch; ``"loss"`` is the one to minimise.

        ``batch`` holds ``noise_copies`` consecutive pose copies of each complex of ``complexes``, the
        one-copy batch of the same complexes and receptor crops (``batch`` itself for one copy). Only
        the score stage reads ``complexes``: the other stages train with one copy.
        """

    def after_step(self) -> None:
        """Bookkeeping after an optimiser step (e.g. the EMA update)."""

    def validate(self, generator: torch.Generator) -> dict[str, float]:
        """Validation metrics (identical on every process)."""

    def export(self) -> dict[str, nn.Module]:
        """Networks of the weights file, by name."""

    def state_dict(self) -> dict[str, Any]:
        """Networks and stage state for the resume checkpoint."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    def load_networks(self, state_dicts: dict[str, dict[str, torch.Tensor]], steps: int) -> None:
        """Warm start: the networks of :meth:`export` (by name) after ``steps`` optimiser steps."""


def _validation_indices(
    cache: ComplexCache | None, settings: TrainConfig, group: ProcessGroup
) -> torch.Tensor:
    """This process's share of the validation complexes (the first ``validation.complexes`` of ``cache``)."""
    if cache is None:
        return torch.zeros(0, dtype=torch.long)
    return group.shard(torch.arange(min(settings.validation.complexes, len(cache))))


def batch_of(
    cache: ComplexCache,
    index: torch.Tensor,
    copies: int,
    config: ScoreModelConfig,
    pockets: torch.Tensor | None = None,
) -> ComplexBatch:
    """:func:`collate` with the receptor-graph parameters of the score model config."""
    return collate(cache, index, copies, config.receptor_radius, config.receptor_max_neighbors, pockets)


VALIDATION_LOSS_COPIES = 4
"""Noised poses per validation complex for the score stage's validation losses."""


def training_batches(
    cache: ComplexCache,
    index: torch.Tensor,
    settings: TrainConfig,
    config: ScoreModelConfig,
    generator: torch.Generator | None = None,
) -> tuple[ComplexBatch, ComplexBatch]:
    """The batches of one training step of the complexes ``index``: ``(poses, complexes)``.

    A share ``settings.pocket_fraction`` of the complexes is cropped to a training pocket
    (:func:`~discodock.diffusion.noising.sample_training_pockets`); ``complexes`` has one copy of each,
    ``poses`` ``settings.noise_copies`` consecutive copies with the same crop (``complexes`` itself for
    one copy). With ``settings.residue_noise`` = σ > 0 every residue position moves by ``N(0, σ² I)``,
    the same in all copies of a complex (the receptor graph stays that of the deposited positions).
    """
    pockets = None
    if settings.pocket_fraction > 0:
        pockets = sample_training_pockets(
            cache, index, settings.pocket_fraction, settings.pocket_jitter, settings.pocket_margin, generator
        )
    complexes = batch_of(cache, index, 1, config, pockets)
    if settings.residue_noise > 0:
        shift = torch.randn(
            complexes.residue_pos.shape,
            generator=generator,
            device=complexes.device,
            dtype=complexes.residue_pos.dtype,
        )
        complexes = dataclasses.replace(
            complexes, residue_pos=complexes.residue_pos + settings.residue_noise * shift
        )
    copies = settings.noise_copies
    if copies == 1:
        return complexes, complexes
    copied_pockets = None if pockets is None else pockets.repeat_interleave(copies, dim=0)
    poses = batch_of(cache, index, copies, config, copied_pockets)
    copy_of = torch.arange(len(index), device=poses.device).repeat_interleave(copies)
    rows = copied_rows(complexes.residue_graph, len(index), copy_of)
    return dataclasses.replace(poses, residue_pos=complexes.residue_pos[rows]), complexes


def pose_rmsd(
    pos: torch.Tensor, reference: torch.Tensor, atom_graph: torch.Tensor, num_graphs: int
) -> torch.Tensor:
    """Plain RMSD per graph, atoms matched by index, no superposition: ``float[B]``.

    ``RMSD_b = sqrt(mean_{i ∈ b} ‖x_i − y_i‖²)`` (no symmetry correction: rdkit/spyrmsd are not needed).
    """
    squared = (pos - reference).square().sum(dim=-1, keepdim=True)
    return graph_mean(squared, atom_graph, num_graphs)[:, 0].sqrt()


@torch.no_grad()
def validation_loss_sums(
    network: ScoreModel,
    latent_source: LatentSource | None,
    cache: ComplexCache,
    chunks: Sequence[torch.Tensor],
    settings: TrainConfig,
    score_config: ScoreModelConfig,
    seed: int,
) -> tuple[torch.Tensor, int]:
    """Denoising losses of the complexes ``chunks`` (index tensors), on fixed noise.

    :data:`VALIDATION_LOSS_COPIES` noised poses of each complex (times from ``settings``' time
    distribution), drawn chunk by chunk from one generator seeded by ``seed`` on the cache's device, so
    that two calls with the same seed and chunks see the same noise. Returns ``float[len(LOSS_TERMS)]``,
    each term's loss times the chunk's complexes summed over the chunks, and the number of complexes.
    """
    device = cache.device
    generator = torch.Generator(device).manual_seed(seed)
    sums, complexes = torch.zeros(len(LOSS_TERMS), device=device), 0
    for chunk in chunks:
        noised = batch_of(cache, chunk, VALIDATION_LOSS_COPIES, score_config)
        schedule, alpha, beta = score_config.schedule, settings.time_alpha, settings.time_beta
        noisy, noise = noise_batch(noised, schedule, generator, time_alpha=alpha, time_beta=beta)
        latents = None if latent_source is None else latent_source(noised, generator)
        losses = score_matching_loss(network(noisy, noise.t, latents), noise, settings.loss_weights)
        sums += len(chunk) * torch.stack([losses[name] for name in LOSS_TERMS])
        complexes += len(chunk)
    return sums, complexes


class ScoreStage:
    """Stage 1: score network and latent encoder trained jointly (method.md §1.5, §3.6)."""

    metric = "rmsd_lt2"
    metric_mode = "max"
    warm_start_keeps_best = True

    def __init__(
        self,
        experiment: ExperimentConfig,
        group: ProcessGroup,
        train_cache: ComplexCache,
        val_cache: ComplexCache | None,
    ) -> None:
        self.model_config = experiment.model
        self.settings = experiment.train
        self.group = group
        self.val_cache = val_cache
        self.val_indices = _validation_indices(val_cache, self.settings, group)
        latent_tokens = self.model_config.score.latent_tokens
        self.score_model = ScoreModel(self.model_config.score).to(group.device)
        self.encoder = (
            LatentEncoder(self.model_config.encoder, latent_tokens).to(group.device)
            if latent_tokens
            else None
        )
        self.ema = ExponentialMovingAverage(self.score_model, self.settings.ema_decay)

    def _networks(self) -> dict[str, nn.Module]:
        networks: dict[str, nn.Module] = {"score_model": self.score_model}
        if self.encoder is not None:
            networks["encoder"] = self.encoder
        return networks

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for network in self._networks().values() for p in network.parameters()]

    def set_epoch(self, epoch: float) -> bool:
        return False

    def loss(
        self, batch: ComplexBatch, generator: torch.Generator, complexes: ComplexBatch
    ) -> dict[str, torch.Tensor]:
        """Denoising loss given encoder tokens (straight-through Gumbel at the training τ, latent dropout).

        The receptor encoding and the encoder's tokens are computed once per complex on ``complexes``
        and shared by its pose copies in ``batch``; time, noise and latent dropout are drawn per copy.
        """
        settings = self.settings
        noisy, noise = noise_batch(
            batch,
            self.model_config.score.schedule,
            generator,
            time_alpha=settings.time_alpha,
            time_beta=settings.time_beta,
        )
        num_complexes = complexes.num_graphs
        copy_of = torch.arange(num_complexes, device=batch.device).repeat_interleave(
            batch.num_graphs // num_complexes
        )
        receptor_rows = copied_rows(complexes.residue_graph, num_complexes, copy_of)
        receptor = self.score_model.encode_receptor(complexes)[receptor_rows]
        latents = None
        if self.encoder is not None:
            temperature = self.model_config.encoder.training_temperature
            tokens = gumbel_softmax_tokens(self.encoder(complexes), complexes, temperature, generator)
            tokens = copy_latents(tokens, complexes, copy_of)
            latents = drop_latents(tokens, batch, self.model_config.score.latent_droprate, generator)
        prediction = self.score_model(noisy, noise.t, latents, receptor=receptor)
        return score_matching_loss(prediction, noise, settings.loss_weights)

    def after_step(self) -> None:
        self.ema.update(self.score_model)

    @torch.no_grad()
    def validate(self, generator: torch.Generator) -> dict[str, float]:
        """Dock the validation complexes with the EMA network and oracle tokens; also their denoising loss.

        Returns ``rmsd_lt2`` (% of poses with RMSD < 2 Å), ``rmsd_median`` (Å) and ``val_loss``,
        ``val_tr``, ``val_rot``, ``val_tor``, ``val_disp`` (means over complexes, on
        :data:`VALIDATION_LOSS_COPIES` noised poses of each, drawn from ``train.seed`` alone: the same times
        and noise at every validation, so that the losses of two validations compare); with
        ``validation.pocket_jitter`` also ``pocket_rmsd_lt2`` and ``pocket_rmsd_median``: docked again in
        pocket mode (receptor cropped around, and translation prior centred on, a centre within that
        jitter of the ligand).
        """
        cache, settings, validation = self.val_cache, self.settings, self.settings.validation
        if cache is None:
            raise ValueError("validation needs a validation cache")
        score_config = self.model_config.score
        network = self.ema.averaged
        if self.encoder is not None:
            self.encoder.eval()
        latent_source = None if self.encoder is None else oracle_latents(self.encoder)
        complexes_per_batch = max(1, validation.graphs_per_batch // validation.samples)
        modes = ["blind"] if validation.pocket_jitter is None else ["blind", "pocket"]
        rmsds: dict[str, list[torch.Tensor]] = {mode: [] for mode in modes}
        for chunk in self.val_indices.split(complexes_per_batch):
            for mode in modes:
                pockets = None
                if mode == "pocket":
                    graphs = chunk.repeat_interleave(validation.samples)
                    jitter = validation.pocket_jitter or 0.0
                    pockets = sample_training_pockets(
                        cache, graphs, 1.0, jitter, settings.pocket_margin, generator
                    )
                batch = batch_of(cache, chunk, validation.samples, score_config, pockets)
                pos = sample_poses(
                    network.for_receptors(batch),
                    batch,
                    score_config.schedule,
                    num_steps=validation.inference_steps,
                    latent_source=latent_source,
                    prior_center=None if pockets is None else pockets[:, :3],
                    generator=generator,
                )
                rmsds[mode].append(
                    pose_rmsd(pos, batch.crystal_pos, batch.atom_graph, batch.num_graphs).cpu()
                )
        loss_sums, num_complexes = validation_loss_sums(
            network,
            latent_source,
            cache,
            self.val_indices.split(complexes_per_batch),
            settings,
            score_config,
            process_seed(settings.seed, self.group.rank, 3, 0),
        )
        if self.encoder is not None:
            self.encoder.train()
        totals = self.group.mean(torch.cat([loss_sums, loss_sums.new_tensor([num_complexes])]))
        mean_losses = (totals[:-1] / totals[-1]).tolist()
        metrics = {f"val_{name}": value for name, value in zip(LOSS_TERMS, mean_losses, strict=True)}
        for mode in modes:
            gathered = [r for part in self.group.gather(rmsds[mode]) for r in part]
            all_rmsds = torch.cat(gathered or [torch.zeros(0)])
            prefix = "" if mode == "blind" else "pocket_"
            metrics[f"{prefix}rmsd_lt2"] = 100.0 * float((all_rmsds < SUCCESS_RMSD).float().mean())
            metrics[f"{prefix}rmsd_median"] = float(all_rmsds.median())
        return metrics

    def export(self) -> dict[str, nn.Module]:
        """Raw score network, its EMA and (with latents) the encoder (method.md §6.15)."""
        return {**self._networks(), "score_model_ema": self.ema.averaged}

    def state_dict(self) -> dict[str, Any]:
        return {
            "networks": {name: network.state_dict() for name, network in self._networks().items()},
            "ema": self.ema.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, network in self._networks().items():
            network.load_state_dict(state["networks"][name])
        self.ema.load_state_dict(state["ema"])

    def load_networks(self, state_dicts: dict[str, dict[str, torch.Tensor]], steps: int) -> None:
        for name, network in self._networks().items():
            network.load_state_dict(state_dicts[name])
        self.ema.averaged.load_state_dict(state_dicts["score_model_ema"])
        self.ema.num_updates = steps


def complex_logits(cache: ComplexCache, logits: TokenLogits, index: torch.Tensor) -> TokenLogits:
    """Rows of per-node logits of a whole cache that belong to the complexes ``index``.

    Parameters
    ----------
    cache
        The cache the logits were computed for.
    logits
        ``ligand [N_atoms, K]``, ``residue [N_residues, K]`` in the cache's row order.
    index
        ``int64[B]`` complexes (repeats allowed), one graph each, as :func:`collate` lays them out.

    Returns
    -------
    TokenLogits
        ``ligand [A, K]``, ``residue [R, K]`` aligned with ``collate(cache, index)``.
    """
    index = index.to(cache.device)
    rows = {}
    for column in ("atoms", "residues"):
        counts = cache.counts[:, COUNT_COLUMNS.index(column)]
        rows[column], _, _ = ragged_rows(cache.offsets(column), counts, index)
    return TokenLogits(logits.ligand[rows["atoms"]], logits.residue[rows["residues"]])


class PriorStage:
    """Stage 2: the autoregressive token prior on a trained score stage (method.md §3.7)."""

    metric = "val_ce"
    metric_mode = "min"
    warm_start_keeps_best = False  # its targets: the encoder of score_weights, which may be newer

    def __init__(
        self,
        experiment: ExperimentConfig,
        group: ProcessGroup,
        train_cache: ComplexCache,
        val_cache: ComplexCache | None,
    ) -> None:
        self.model_config = experiment.model
        self.settings = experiment.train
        self.group = group
        self.train_cache, self.val_cache = train_cache, val_cache
        self.val_indices = _validation_indices(val_cache, self.settings, group)
        score_config = self.model_config.score
        if score_config.latent_tokens < 1:
            raise ValueError("the prior stage needs a model with latent_tokens ≥ 1")
        encoder = self._trained_encoder(experiment)
        self.prior = AutoregressivePrior(self.model_config.prior, score_config.latent_tokens).to(group.device)
        self.train_logits = self._encoder_logits(encoder, train_cache)
        self.val_logits = None if val_cache is None else self._encoder_logits(encoder, val_cache)

    def _trained_encoder(self, experiment: ExperimentConfig) -> LatentEncoder:
        """The encoder from the score stage's weights file (same model config required), in eval mode."""
        path = self.settings.score_weights
        config, state_dicts = load_weights(path)
        trained_model = config.get("model", {})
        ours = experiment.to_dict()["model"]
        for section in ("score", "encoder"):
            if trained_model.get(section) != ours[section]:
                raise InputError(path, f"model.{section} differs from this experiment's model.{section}")
        encoder = LatentEncoder(self.model_config.encoder, self.model_config.score.latent_tokens)
        encoder.load_state_dict(state_dicts["encoder"])
        return encoder.to(self.group.device).eval()

    @torch.no_grad()
    def _encoder_logits(self, encoder: LatentEncoder, cache: ComplexCache) -> TokenLogits:
        """Encoder logits of every complex of ``cache`` on its crystal pose, in the cache's row order."""
        score_config = self.model_config.score
        graphs_per_batch = self.settings.validation.graphs_per_batch
        ligand, residue = [], []
        for chunk in torch.arange(len(cache)).split(graphs_per_batch):
            batch = batch_of(cache, chunk, 1, score_config)
            logits = encoder(batch)
            ligand.append(logits.ligand)
            residue.append(logits.residue)
        return TokenLogits(torch.cat(ligand), torch.cat(residue))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.prior.parameters())

    def set_epoch(self, epoch: float) -> bool:
        return False

    def loss(
        self, batch: ComplexBatch, generator: torch.Generator, complexes: ComplexBatch
    ) -> dict[str, torch.Tensor]:
        """Cross-entropy of the prior against the cached encoder distributions, on random orientations."""
        targets = complex_logits(self.train_cache, self.train_logits, batch.complex_index)
        return {"loss": self.prior.loss(prior_input_batch(batch, generator), targets, generator)}

    def after_step(self) -> None:
        pass

    @torch.no_grad()
    def validate(self, generator: torch.Generator) -> dict[str, float]:
        """``val_ce``: the training loss on the validation complexes; ``val_accuracy``: % of (complex, token)
        where the prior's most likely node, given the encoder's most likely earlier tokens, is the
        encoder's most likely node."""
        cache, logits = self.val_cache, self.val_logits
        if cache is None or logits is None:
            raise ValueError("validation needs a validation cache")
        score_config = self.model_config.score
        self.prior.eval()
        # cross-entropy × complexes, complexes, correct tokens
        sums = torch.zeros(3, device=self.group.device)
        for chunk in self.val_indices.split(self.settings.validation.graphs_per_batch):
            batch = prior_input_batch(
                batch_of(cache, chunk, 1, score_config),
                generator,
            )
            targets = complex_logits(cache, logits, batch.complex_index)
            encoder_best = sample_tokens(targets, batch, logit_multiplier=100.0)
            encoder_nodes = encoder_best.token_nodes(batch)
            for position in range(self.prior.num_tokens):
                prior_best = sample_tokens(self.prior.log_probs(batch, encoder_best, position), batch, 100.0)
                sums[2] += (prior_best.token_nodes(batch)[:, 0] == encoder_nodes[:, position]).sum()
            sums[0] += len(chunk) * self.prior.loss(batch, targets, generator)
            sums[1] += len(chunk)
        self.prior.train()
        ce_sum, num_complexes, correct = self.group.mean(sums).tolist()
        return {
            "val_ce": ce_sum / num_complexes,
            "val_accuracy": 100.0 * correct / (num_complexes * self.prior.num_tokens),
        }

    def export(self) -> dict[str, nn.Module]:
        return {"prior": self.prior}

    def state_dict(self) -> dict[str, Any]:
        return {"networks": {"prior": self.prior.state_dict()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prior.load_state_dict(state["networks"]["prior"])

    def load_networks(self, state_dicts: dict[str, dict[str, torch.Tensor]], steps: int) -> None:
        self.prior.load_state_dict(state_dicts["prior"])


class ConfidenceStage:
    """Stage 3: the confidence model, a classifier of poses within 2 Å of the crystal pose (method.md §2.7).

    **Training poses.** DiffDock trains its confidence model on poses docked by a trained score model
    (28 per training complex, sampled once and cached). The default here is cheaper: each complex's clean
    (matched) pose is noised forward by :func:`~discodock.diffusion.noising.noise_batch` at
    ``t ~ U(0, t_max)`` (``model.confidence.max_noise_time``), a fresh pose at every step. Why this will do:

    * it costs one batched pose update per graph instead of 20 score-network passes, and it needs no
      trained score model, so the confidence model can train before, or alongside, the score stage;
    * the noise scales are geometric in ``t``, so ``U(0, t_max)`` spreads the displacement log-uniformly,
      ``σ_tr`` from 0.1 to 8.6 Å at ``t_max = 0.85``: many poses sit near the 2 Å boundary, where ranking
      matters, and about half fall on either side (balanced classes without reweighting);
    * poses differ from the crystal pose in all three components (translation, orientation, torsions)
      at matching scales, as a sampled pose does.

    What it cannot teach is the score model's own failure modes (a plausible pose in a wrong pocket, a
    flipped ligand, a pose overlapping the receptor): noised negatives mostly overlap the receptor or float
    beside it. Hence ``model.confidence.sampled_pose_fraction``: that share of the graphs (chosen at random
    per graph) gets instead one of the poses the trained networks docked beforehand
    (:class:`~discodock.data.docked_poses.DockedPoses` of ``train.docked_poses``, ``discodock dock-cache``),
    drawn at random among its blind and pocket poses, with the receptor cropped as it was docked.

    **Labels**: plain RMSD to ``crystal_pos`` below 2 Å (:func:`pose_rmsd`; the matched pose's residual
    counts). **Loss**: binary cross-entropy of the logit. The training log reports ``accuracy`` (%, logit
    > 0 read as "below 2 Å") and ``positives`` (% of training poses below 2 Å).

    **Validation** (always on noised poses, ``validation.samples`` per complex, fresh each time):
    ``val_loss``, ``val_accuracy`` (%), ``val_auroc`` (:func:`~discodock.model.confidence.binary_auroc`),
    ``val_top1_success`` (% of complexes whose highest-logit pose is below 2 Å),
    ``val_random_pick_success`` (% for a uniformly random pick: the share of poses below 2 Å) and
    ``val_best_pick_success`` (% of complexes with any pose below 2 Å, the ceiling of ranking). With
    ``train.val_docked_poses``, the same ``val_docked_*`` figures on the docked poses of each validation
    complex, ranked per complex and mode (blind and pocket: ``val_docked_top1_success`` is the mean of
    both), and ``val_docked_top1_as_docked``, the top-1 of the docking networks' own confidence model;
    ``val_docked_top1_success`` then selects the best networks: the ranking ``discodock predict`` needs.
    """

    metric = "val_auroc"  # "val_docked_top1_success" with docked validation poses
    metric_mode = "max"
    warm_start_keeps_best = True

    def __init__(
        self,
        experiment: ExperimentConfig,
        group: ProcessGroup,
        train_cache: ComplexCache,
        val_cache: ComplexCache | None,
    ) -> None:
        self.model_config = experiment.model
        self.config = experiment.model.confidence
        self.settings = experiment.train
        self.group = group
        self.val_cache = val_cache
        self.val_indices = _validation_indices(val_cache, self.settings, group)
        self.model = ConfidenceModel(self.config).to(group.device)
        self.train_cache = train_cache
        self.docked: DockedPoses | None = None
        if self.config.sampled_pose_fraction > 0:
            if not self.settings.docked_poses:
                raise ValueError("confidence.sampled_pose_fraction > 0 needs train.docked_poses")
            self.docked = self._docked_poses(self.settings.docked_poses, train_cache)
        self.val_docked: DockedPoses | None = None
        if self.settings.val_docked_poses and val_cache is not None:
            self.val_docked = self._docked_poses(self.settings.val_docked_poses, val_cache)
        if self.val_docked is not None:
            self.metric = "val_docked_top1_success"

    def _docked_poses(self, pattern: str, cache: ComplexCache) -> DockedPoses:
        """The docked poses of ``cache`` from the files matching ``pattern``, on the stage's device."""
        paths = sorted(glob.glob(pattern)) or [pattern]  # a missing file is reported by name
        docked = DockedPoses.for_cache(paths, cache)
        if docked.steps != self.config.sampling_steps:
            raise InputError(
                paths[0],
                f"docked with {docked.steps} steps; model.confidence.sampling_steps is "
                f"{self.config.sampling_steps}",
            )
        return docked.to(self.group.device)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def set_epoch(self, epoch: float) -> bool:
        return False

    def noised_poses(self, batch: ComplexBatch, generator: torch.Generator) -> ComplexBatch:
        """``batch`` with each graph's matched pose noised at its own ``t ~ U(0, max_noise_time)``."""
        clean_pos = batch.matched_pos
        if clean_pos is None:
            raise ValueError("the confidence stage needs matched and crystal poses; the batch has none")
        t = self.config.max_noise_time * torch.rand(
            batch.num_graphs, generator=generator, device=batch.device, dtype=clean_pos.dtype
        )
        noisy, _ = noise_batch(batch, self.model_config.score.schedule, generator, t=t)
        return noisy

    def training_poses(self, batch: ComplexBatch, generator: torch.Generator) -> ComplexBatch:
        """Noised poses, each graph's replaced with probability ``sampled_pose_fraction`` by a docked one.

        A graph that gets a docked pose also gets the receptor crop it was docked with (the batch is
        collated again with those crops).
        """
        noisy = self.noised_poses(batch, generator)
        if self.docked is None:
            return noisy
        device = batch.device
        use = (
            torch.rand(batch.num_graphs, generator=generator, device=device)
            < self.config.sampled_pose_fraction
        )
        if not use.any():
            return noisy
        sample = torch.randint(
            self.docked.poses_per_complex, (batch.num_graphs,), generator=generator, device=device
        )
        crops = batch.pockets
        if crops is None:
            crops = torch.tensor(WHOLE_RECEPTOR, device=device).repeat(batch.num_graphs, 1)
        crops = crops.clone()
        crops[use] = self.docked.crops(batch.complex_index[use], sample[use])
        pos = noisy.ligand_pos.clone()
        pos[use[batch.atom_graph]] = self.docked.poses[
            self.docked.pose_rows(batch.complex_index[use], sample[use])
        ]
        recollated = batch_of(self.train_cache, batch.complex_index, 1, self.model_config.score, crops)
        return recollated.with_ligand_pos(pos)

    def loss(
        self, batch: ComplexBatch, generator: torch.Generator, complexes: ComplexBatch
    ) -> dict[str, torch.Tensor]:
        """Binary cross-entropy of the logits against ``RMSD < 2 Å`` on fresh training poses."""
        poses = self.training_poses(batch, generator)
        success = _pose_success(poses)
        logits = self.model(poses)
        labels = success.to(logits.dtype)
        return {
            "loss": F.binary_cross_entropy_with_logits(logits, labels),
            "accuracy": 100.0 * ((logits > 0) == success).float().mean(),
            "positives": 100.0 * labels.mean(),
        }

    def after_step(self) -> None:
        pass

    @torch.no_grad()
    def validate(self, generator: torch.Generator) -> dict[str, float]:
        """Classify and rank ``validation.samples`` noised poses per validation complex (see the class)."""
        cache, validation = self.val_cache, self.settings.validation
        if cache is None:
            raise ValueError("validation needs a validation cache")
        samples = validation.samples
        chunks = self.val_indices.split(max(1, validation.graphs_per_batch // samples))
        pose_batches = (
            self.noised_poses(batch_of(cache, chunk, samples, self.model_config.score), generator)
            for chunk in chunks
        )
        logits, success, _ = self._logits_and_successes(pose_batches, samples)
        metrics = ranking_metrics(logits, success, "val_")
        if self.val_docked is not None:
            metrics.update(self._validate_docked())
        return metrics

    def _validate_docked(self) -> dict[str, float]:
        """:func:`ranking_metrics` of the validation complexes' docked poses, one row per complex and mode."""
        cache, docked, validation = self.val_cache, self.val_docked, self.settings.validation
        assert cache is not None and docked is not None
        samples, per_complex = docked.samples, docked.poses_per_complex
        chunks = self.val_indices.to(cache.device).split(max(1, validation.graphs_per_batch // per_complex))

        def pose_batch(chunk: torch.Tensor) -> ComplexBatch:
            graphs = chunk.repeat_interleave(per_complex)
            sample = torch.arange(per_complex, device=cache.device).repeat(len(chunk))
            batch = batch_of(cache, graphs, 1, self.model_config.score, docked.crops(graphs, sample))
            return batch.with_ligand_pos(docked.poses[docked.pose_rows(graphs, sample)])

        logits, success, own_success = self._logits_and_successes(map(pose_batch, chunks), samples)
        metrics = ranking_metrics(logits, success, "val_docked_")
        own = docked.confidences[self.val_indices].view(-1, samples).cpu()  # this process's rows
        own_top1 = own_success.gather(1, own.argmax(dim=1, keepdim=True)).float()
        totals = self.group.mean(
            torch.stack([own_top1.sum(), own_top1.new_tensor(len(own_top1))]).to(self.group.device)
        )
        metrics["val_docked_top1_as_docked"] = 100.0 * float(totals[0] / totals[1].clamp(min=1))
        return metrics

    @torch.no_grad()
    def _logits_and_successes(
        self, pose_batches: Iterable[ComplexBatch], samples: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits and ``RMSD < 2 Å`` of pose batches, ``samples`` poses per row (on the CPU).

        Returns ``(logits, success)`` of all processes' rows (``float[N, S]``, ``bool[N, S]``) and the
        successes of this process's rows alone, in the order of its batches.
        """
        self.model.eval()
        logits, successes = [], []
        for poses in pose_batches:
            logits.append(self.model(poses).view(-1, samples).cpu())
            successes.append(_pose_success(poses).view(-1, samples).cpu())
        self.model.train()
        own_success = torch.cat(successes or [torch.zeros(0, samples).bool()])
        gathered = self.group.gather((logits, successes))
        all_logits = torch.cat([row for part, _ in gathered for row in part] or [torch.zeros(0, samples)])
        success = torch.cat([row for _, part in gathered for row in part] or [torch.zeros(0, samples).bool()])
        return all_logits, success, own_success

    def export(self) -> dict[str, nn.Module]:
        return {"confidence": self.model}

    def state_dict(self) -> dict[str, Any]:
        return {"networks": {"confidence": self.model.state_dict()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["networks"]["confidence"])

    def load_networks(self, state_dicts: dict[str, dict[str, torch.Tensor]], steps: int) -> None:
        self.model.load_state_dict(state_dicts["confidence"])


def ranking_metrics(logits: torch.Tensor, success: torch.Tensor, prefix: str) -> dict[str, float]:
    """How well logits rank the poses of each row (a complex, or a complex and mode).

    Parameters
    ----------
    logits, success
        ``float[N, S]`` and ``bool[N, S]``: confidence logits and ``RMSD < 2 Å`` of ``S`` poses per row.
    prefix
        Prefix of the metric names.

    Returns
    -------
    dict[str, float]
        ``loss`` (binary cross-entropy), ``accuracy`` (%), ``auroc``, ``top1_success`` (% of rows whose
        highest-logit pose is below 2 Å), ``random_pick_success`` (the share of poses below 2 Å) and
        ``best_pick_success`` (% of rows with any pose below 2 Å, the ceiling of ranking).
    """
    top1 = success.gather(1, logits.argmax(dim=1, keepdim=True))
    return {
        f"{prefix}loss": float(F.binary_cross_entropy_with_logits(logits, success.to(logits.dtype))),
        f"{prefix}accuracy": 100.0 * float(((logits > 0) == success).float().mean()),
        f"{prefix}auroc": float(binary_auroc(logits.flatten(), success.flatten())),
        f"{prefix}top1_success": 100.0 * float(top1.float().mean()),
        f"{prefix}random_pick_success": 100.0 * float(success.float().mean()),
        f"{prefix}best_pick_success": 100.0 * float(success.any(dim=1).float().mean()),
    }


def _pose_success(batch: ComplexBatch) -> torch.Tensor:
    """``bool[B]``: plain RMSD of ``batch.ligand_pos`` to the crystal pose below :data:`SUCCESS_RMSD`."""
    rmsd = pose_rmsd(batch.ligand_pos, batch.crystal_pos, batch.atom_graph, batch.num_graphs)
    return rmsd < SUCCESS_RMSD


STAGE_BUILDERS = {"score": ScoreStage, "prior": PriorStage, "confidence": ConfidenceStage}
"""Stage name → class built as ``cls(experiment, group, train_cache, val_cache)``."""


# --------------------------------------------------------------------------------------------------
# The loop


@dataclass(frozen=True)
class TrainingSummary:
    """What a call of :func:`train` did.

    Attributes
    ----------
    stage
        ``"score"``, ``"prior"`` or ``"confidence"``.
    steps, epochs
        Optimiser steps and passes over the training set at the end (counting resumed ones).
    stop_reason
        ``"max_steps"``, ``"max_epochs"`` or ``"time_budget"``.
    wall_seconds
        Duration of this call.
    last_losses
        Loss components averaged over the last logging window.
    last_validation
        Metrics of the last validation (empty if none ran).
    best_metric
        Best-so-far value of the stage's validation metric (``None`` if none ran).
    checkpoint, weights
        Paths of the resume checkpoint and the weights file.
    """

    stage: str
    steps: int
    epochs: float
    stop_reason: str
    wall_seconds: float
    last_losses: dict[str, float]
    last_validation: dict[str, float]
    best_metric: float | None
    checkpoint: str
    weights: str


def train(
    config: ExperimentConfig | str | Path,
    resume: str | Path | None = None,
    device: str | torch.device | None = None,
    init_from: str | Path | None = None,
) -> TrainingSummary:
    """Run (or resume) one training stage.

    Parameters
    ----------
    config
        The experiment, or the path of its YAML file.
    resume
        A ``last.pt`` resume checkpoint of the same experiment to continue from. ``max_steps`` and
        ``max_epochs`` count from the start of the original run; the wall-time budget from this call.
    device
        Device of a single-process run (default CUDA if available); see :func:`start_processes`.
    init_from
        Instead of ``resume``: a network folder (:func:`~discodock.training.checkpoint.save_network_folder`,
        e.g. the committed ``checkpoints/disco_small``) to warm-start from. Networks, EMA, step and epoch
        count continue; optimiser, scheduler, data order and random streams start afresh (so this is not
        an exact continuation, unlike ``resume``).

    Returns
    -------
    TrainingSummary
        On every process (process 0's paths are the ones written).
    """
    started = time.perf_counter()
    experiment = config if isinstance(config, ExperimentConfig) else load_experiment(config)
    group, initialised_here = start_processes(device)
    try:
        return _Run(experiment, group, started).run(resume, init_from)
    finally:
        if initialised_here:
            dist.destroy_process_group()


class _Run:
    """State of one :func:`train` call: stage, optimiser, scheduler, data order, generators, log."""

    def __init__(self, experiment: ExperimentConfig, group: ProcessGroup, started: float) -> None:
        settings = experiment.train
        if settings.batch_size % group.world_size or settings.batch_size // group.world_size < 2:
            raise ValueError(
                f"batch_size {settings.batch_size} must be a multiple of the {group.world_size} processes "
                "with at least 2 complexes per process (batch norm)"
            )
        self.experiment, self.settings, self.group, self.started = experiment, settings, group, started
        if group.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = settings.allow_tf32
            torch.backends.cudnn.allow_tf32 = settings.allow_tf32
        seed_globals(settings.seed)  # identical initial weights on every process
        self.train_cache = ComplexCache.load(settings.train_cache, group.device)
        self.val_cache = ComplexCache.load(settings.val_cache, group.device) if settings.val_cache else None
        self.stage: TrainingStage = STAGE_BUILDERS[settings.stage](
            experiment, group, self.train_cache, self.val_cache
        )
        if settings.compile_tensor_products:
            for network in self.stage.export().values():
                compile_tensor_products(network)
        seed_globals(process_seed(settings.seed, group.rank))  # dropout differs between processes
        self.noise_generator = torch.Generator(group.device).manual_seed(
            process_seed(settings.seed, group.rank, 1)
        )
        self.order = DataOrder(len(self.train_cache), settings.seed)
        self.optimizer, self.scheduler = self._optimizer()
        self.step = 0
        self.best_metric: float | None = None
        self.last_validation: dict[str, float] = {}
        self.last_losses: dict[str, float] = {}
        checkpoint_dir = Path(settings.checkpoint_dir)
        self.checkpoint_path = checkpoint_dir / "last.pt"
        self.weights_path = checkpoint_dir / "weights.pt"
        self.best_networks_path = checkpoint_dir / "best_networks"
        self.networks_path = checkpoint_dir / "networks"
        self.log = JsonLinesLog(settings.log_path, group.is_main)
        self.step_seconds = 0.0
        self.validation_seconds = 0.0
        self.checkpoint_seconds = 0.0

    def _optimizer(self) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.ReduceLROnPlateau]:
        settings = self.settings
        optimizer = torch.optim.Adam(
            self.stage.trainable_parameters(),
            lr=settings.lr,
            weight_decay=settings.weight_decay,
            decoupled_weight_decay=True,
        )
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode=self.stage.metric_mode,
            factor=settings.scheduler_factor,
            patience=settings.scheduler_patience,
            min_lr=settings.lr * settings.scheduler_min_lr_fraction,
        )
        return optimizer, scheduler

    # ---- checkpoints

    def _restore(self, path: str | Path) -> None:
        payload = load_payload(path)
        if payload.get("format") != CHECKPOINT_FORMAT or payload.get("version") != CHECKPOINT_FORMAT_VERSION:
            raise InputError(path, "not a discodock resume checkpoint")
        if payload["config"]["train"]["stage"] != self.settings.stage:
            raise InputError(
                path, f"checkpoint of stage {payload['config']['train']['stage']}, not {self.settings.stage}"
            )
        self.stage.load_state_dict(payload["stage"])
        self.optimizer, self.scheduler = self._optimizer()  # the trainable set may have changed
        self.optimizer.load_state_dict(payload["optimizer"])
        for group in self.optimizer.param_groups:  # the config's weight decay, also for older checkpoints
            group.update(weight_decay=self.settings.weight_decay, decoupled_weight_decay=True)
        self.scheduler.load_state_dict(payload["scheduler"])
        self.order.load_state_dict(payload["data_order"])
        self.step = int(payload["step"])
        self.best_metric = payload["best_metric"]
        self.last_validation = dict(payload["last_validation"])
        states = payload["rng"]
        if len(states) == self.group.world_size:
            restore_rng_state(states[self.group.rank]["global"], self.group.device)
            self.noise_generator.set_state(states[self.group.rank]["noise"])
        else:  # another number of processes: fresh, step-dependent streams (not an exact continuation)
            seed_globals(process_seed(self.settings.seed, self.group.rank, self.step))
            self.noise_generator.manual_seed(process_seed(self.settings.seed, self.group.rank, 1, self.step))

    def _save(self) -> None:
        begun = time.perf_counter()
        states = self.group.gather(
            {"global": capture_rng_state(self.group.device), "noise": self.noise_generator.get_state()}
        )
        if self.group.is_main:
            config = self.experiment.to_dict()
            payload = {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_FORMAT_VERSION,
                "config": config,
                "step": self.step,
                "stage": self.stage.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "data_order": self.order.state_dict(),
                "best_metric": self.best_metric,
                "last_validation": self.last_validation,
                "rng": states,
            }
            save_atomic(payload, self.checkpoint_path)
            save_weights(self.weights_path, config, self.stage.export())
            save_network_folder(self.networks_path, config, self.stage.export(), self._training_state())
            self.log.write({"event": "checkpoint", "step": self.step, "path": str(self.checkpoint_path)})
        self.checkpoint_seconds = time.perf_counter() - begun

    def _training_state(self) -> dict[str, Any]:
        """The training state written beside the networks (:func:`save_network_folder`)."""
        return {
            "stage": self.settings.stage,
            "steps": self.step,
            "epochs": self.order.epochs,
            "metric": self.stage.metric,
            "best_metric": self.best_metric,
            "last_validation": self.last_validation,
        }

    # ---- loop

    def _elapsed(self) -> float:
        return time.perf_counter() - self.started

    def _stop_reason(self) -> str | None:
        settings = self.settings
        if settings.max_steps and self.step >= settings.max_steps:
            return "max_steps"
        if settings.max_epochs and self.order.epochs >= settings.max_epochs:
            return "max_epochs"
        if settings.max_wall_minutes:
            validation_due = self._validation_due(self.step + 1)
            needed = (
                self.step_seconds
                + self.checkpoint_seconds
                + (self.validation_seconds if validation_due else 0.0)
            )
            if self.group.any(self._elapsed() + 1.5 * needed > 60.0 * settings.max_wall_minutes):
                return "time_budget"
        return None

    def _validation_due(self, step: int) -> bool:
        every = self.settings.validation.every_steps
        return self.val_cache is not None and every > 0 and step % every == 0

    def _train_step(self) -> dict[str, torch.Tensor]:
        settings, group = self.settings, self.group
        if self.stage.set_epoch(self.order.epochs):
            self.optimizer, self.scheduler = self._optimizer()
            self.log.write(
                {"event": "trainable_parameters_changed", "step": self.step, "epoch": self.order.epochs}
            )
        indices = group.shard(self.order.next(settings.batch_size))
        batch, complexes = training_batches(
            self.train_cache, indices, settings, self.experiment.model.score, self.noise_generator
        )
        losses = self.stage.loss(batch, self.noise_generator, complexes)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        average_gradients(self.stage.trainable_parameters(), group)
        self.optimizer.step()
        self.stage.after_step()
        self.step += 1
        return losses

    def _validate(self) -> None:
        begun = time.perf_counter()
        generator = torch.Generator(self.group.device).manual_seed(
            process_seed(self.settings.seed, self.group.rank, 2, self.step)
        )
        metrics = self.stage.validate(generator)
        value = metrics[self.stage.metric]
        better = self.best_metric is None or (
            value > self.best_metric if self.stage.metric_mode == "max" else value < self.best_metric
        )
        if better:
            self.best_metric = value
        self.scheduler.step(self.best_metric)
        self.last_validation = metrics
        if better and self.group.is_main:
            save_network_folder(
                self.best_networks_path,
                self.experiment.to_dict(),
                self.stage.export(),
                self._training_state(),
            )
        self.validation_seconds = time.perf_counter() - begun
        self.log.write(
            {
                "event": "validation",
                "step": self.step,
                "epoch": self.order.epochs,
                **metrics,
                f"best_{self.stage.metric}": self.best_metric,
                "seconds": self.validation_seconds,
            }
        )

    def _warm_start(self, folder: str | Path) -> None:
        state = load_training_state(folder, self.settings.stage)
        if state["stage"] != self.settings.stage:
            raise InputError(folder, f"networks of stage {state['stage']}, not {self.settings.stage}")
        _, state_dicts = load_weights(folder)
        self.stage.load_networks(state_dicts, int(state["steps"]))
        self.step = int(state["steps"])
        self.order.consumed = round(float(state["epochs"]) * self.order.size)
        # A state without "metric" predates it and was selected by the stage's default metric.
        same_metric = state.get("metric", type(self.stage).metric) == self.stage.metric
        keeps_best = self.stage.warm_start_keeps_best and same_metric
        self.best_metric = state.get("best_metric") if keeps_best else None

    def run(self, resume: str | Path | None, init_from: str | Path | None = None) -> TrainingSummary:
        settings = self.settings
        if resume is not None and init_from is not None:
            raise ValueError("give either resume or init_from, not both")
        if resume is not None:
            self._restore(resume)
        if init_from is not None:
            self._warm_start(init_from)
        self.log.write(
            {
                "event": "start",
                "step": self.step,
                "resumed_from": None if resume is None else str(resume),
                "warm_started_from": None if init_from is None else str(init_from),
                "world_size": self.group.world_size,
                "device": str(self.group.device),
                "train_complexes": len(self.train_cache),
                "config": self.experiment.to_dict(),
            }
        )
        window = LossWindow()
        saved_at = self.step
        stop_reason = self._stop_reason()
        while stop_reason is None:
            step_begun = time.perf_counter()
            losses = self._train_step()
            self.step_seconds = time.perf_counter() - step_begun
            window.add(losses, self.step_seconds)
            if self.step % settings.log_every_steps == 0:
                self._log_window(window)
                window = LossWindow()
            if self._validation_due(self.step):
                self._validate()
            if settings.checkpoint_every_steps and self.step % settings.checkpoint_every_steps == 0:
                self._save()
                saved_at = self.step
            stop_reason = self._stop_reason()
        if window.steps:
            self._log_window(window)
        if saved_at != self.step:
            self._save()
        self.log.write(
            {"event": "stop", "step": self.step, "reason": stop_reason, "wall_seconds": self._elapsed()}
        )
        return TrainingSummary(
            stage=settings.stage,
            steps=self.step,
            epochs=self.order.epochs,
            stop_reason=stop_reason,
            wall_seconds=self._elapsed(),
            last_losses=self.last_losses,
            last_validation=self.last_validation,
            best_metric=self.best_metric,
            checkpoint=str(self.checkpoint_path),
            weights=str(self.weights_path),
        )

    def _peak_memory(self) -> dict[str, float]:
        """``{"peak_gpu_gib": ...}``: this process's peak allocated GPU memory so far (empty on a CPU)."""
        device = self.group.device
        if device.type != "cuda":
            return {}
        return {"peak_gpu_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)}

    def _log_window(self, window: LossWindow) -> None:
        self.last_losses = window.means(self.group)
        self.log.write(
            {
                "event": "train",
                "step": self.step,
                "epoch": self.order.epochs,
                **self.last_losses,
                "lr": self.optimizer.param_groups[0]["lr"],
                "complexes_per_s": window.steps * self.settings.batch_size / max(window.seconds, 1e-9),
                **self._peak_memory(),
                "elapsed_s": self._elapsed(),
            }
        )
