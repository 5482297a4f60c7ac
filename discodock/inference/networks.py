"""The trained networks of a checkpoint folder and the batched sampling of featurized complexes.

This module needs neither RDKit, Biopython nor spyrmsd (only torch, numpy and the networks), so that poses
can be sampled on a machine without them from a :class:`~discodock.data.cache.ComplexCache` of featurized
complexes (e.g. ``python -m discodock.benchmark.sample_inputs`` on a GPU machine).
:class:`~discodock.inference.docking.DockingModel` prepares complexes, samples through
:class:`DockingNetworks` and ranks the poses.

Sampling (:meth:`DockingNetworks.sample`): all ``C`` complexes × ``S`` samples form one flat list of graphs
``g = c · S + s``, cut into device batches of :meth:`~DockingNetworks.graphs_per_batch` graphs (many
complexes per batch). In each batch, every graph's ``K`` latent tokens are drawn from the autoregressive
prior (logits × ``logit_multiplier``), then the ``N``-step reverse SDE runs conditioned on them
(:func:`~discodock.diffusion.sampler.sample_poses`), and the confidence model scores the final poses.
Without a prior, or with ``latents="null"``, the denoiser runs unconditionally (null tokens); a model with
``K = 0`` runs the same code without tokens. The translation prior is ``N(c, σ_tr,max² I)`` with ``c`` the
complex's prior centre. A CUDA out-of-memory error halves the batch and retries it.

Temperatures: a checkpoint folder may hold ``sampling.json`` (:data:`SAMPLING_FILE`), the low-temperature
sampling parameters tuned for its networks on the validation set (``benchmarks/tune_temperatures.py``);
they are the default (``SamplingOptions.temperatures = None``), the plain reverse SDE where it has none.

Reproducibility: the batch of graphs ``[g₀, g₁)`` draws all its noise from a generator seeded by
``(seed, g₀, names of its complexes)``, so a run repeats exactly on the same device with the same batch
size (pin it with ``graphs_per_batch``; by default it follows the free GPU memory, in powers of two).
"""

from __future__ import annotations

import json
import logging
import math
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from discodock.data.batch import ComplexBatch, copied_rows
from discodock.data.cache import COUNT_COLUMNS, ComplexCache
from discodock.diffusion.sampler import (
    DIFFDOCK_S_TEMPERATURES,
    DISCO_DIFFDOCK_S_TEMPERATURES,
    LatentSource,
    SamplingTemperatures,
    prior_latents,
    sample_poses,
)
from discodock.errors import InputError
from discodock.inference.ranking import DEFAULT_CONSENSUS_WEIGHT
from discodock.model.confidence import ConfidenceModel
from discodock.model.config import ModelConfig
from discodock.model.latents import LatentAssignment
from discodock.model.prior import AutoregressivePrior
from discodock.model.score_model import ScoreModel
from discodock.training.checkpoint import load_network
from discodock.training.trainer import batch_of

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "disco_small"
"""The checkpoint folder shipped in the repository (used when :data:`CHECKPOINT_VARIABLE` is unset)."""

CHECKPOINT_VARIABLE = "DISCODOCK_CHECKPOINT"
"""Environment variable naming the default checkpoint folder instead of :data:`DEFAULT_CHECKPOINT`."""

DEFAULT_POCKET_MARGIN = 20.0
"""Å; the default pocket radius is this plus the ligand's conformer radius (largest atom distance from its
centroid), so that a ligand centred anywhere near the pocket centre has every residue within DiffDock's
``t = 0`` ligand–residue cutoff (20 Å) in the graph."""

DEFAULT_POCKET_SIGMA = 5.0
"""Å; spread of the translation prior around a given pocket centre (``SamplingOptions.pocket_sigma``):
the ligand starts within a few Å of the centre, and its translation follows the reverse SDE only once
``σ_tr(t)`` has fallen below this (:func:`~discodock.diffusion.sampler.translation_step_shares`). Chosen
on the validation set (``benchmarks/results/tuning/README.md``); blind docking keeps ``σ_tr,max``."""

CPU_GRAPHS_PER_BATCH = 64
"""Graphs per batch on a CPU (memory is not the limit there; larger batches gain little)."""

MAX_GRAPHS_PER_BATCH = 1024
"""Upper bound of the automatic batch size on a GPU."""

BYTES_PER_EDGE = 16 * 1024
"""Rough peak GPU memory of one graph edge in a no-grad forward pass of a DiffDock-S-sized network (the
measured e3nn forward peak is ≈14 kB per edge, gpu-notes.md); too high an estimate costs speed, too low
an out-of-memory retry."""

TEMPERATURE_PRESETS: dict[str, SamplingTemperatures | None] = {
    "tuned": None,
    "none": SamplingTemperatures(),
    "diffdock-s": DIFFDOCK_S_TEMPERATURES,
    "disco-diffdock-s": DISCO_DIFFDOCK_S_TEMPERATURES,
}
"""Named sampling temperatures: tuned (the checkpoint's ``sampling.json``, the default; plain without one),
none (the plain reverse SDE) and the released DiffDock-S and DisCo-DiffDock-S values."""

SAMPLING_FILE = "sampling.json"
"""File of a checkpoint folder with the temperatures tuned for its networks, ``{"temperatures": {"tr":
{"sampling": T, "psi": ψ, "sigma_data": τ_d}, "rot": ..., "tor": ...}, ...}`` (more keys say how)."""


def read_tuned_temperatures(path: str | Path) -> SamplingTemperatures:
    """The temperatures of a :data:`SAMPLING_FILE`.

    Raises
    ------
    InputError
        If the file is not JSON or lacks valid ``temperatures`` of tr, rot and tor.
    """
    try:
        record = json.loads(Path(path).read_text())
        return SamplingTemperatures.from_dict(
            {name: record["temperatures"][name] for name in ("tr", "rot", "tor")}
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(path, f"not a valid sampling file ({type(error).__name__}: {error})") from None


def describe_temperatures(temperatures: SamplingTemperatures | None) -> str:
    """``tuned`` (``None``), a preset's name, or the ``T`` of tr/rot/tor."""
    if temperatures is None:
        return "tuned"
    for name, preset in TEMPERATURE_PRESETS.items():
        if preset == temperatures:
            return name
    values = (temperatures.tr, temperatures.rot, temperatures.tor)
    return "T tr/rot/tor " + "/".join(f"{value.sampling:.3g}" for value in values)


NetworkBuilder = Callable[[ModelConfig], nn.Module]
ConfidenceFunction = Callable[[ComplexBatch], torch.Tensor]
"""Scores final poses: ``batch`` (with ``ligand_pos`` the poses) → ``float[B]`` logits, higher = better."""


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample poses.

    Attributes
    ----------
    samples
        Poses per complex (40 in the papers).
    steps
        Reverse-diffusion steps ``N`` (20).
    seed
        Seed of the conformers, the prior, the tokens and every step's noise.
    latents
        ``"prior"``: tokens drawn from the autoregressive prior; ``"null"``: the unconditional denoiser.
    logit_multiplier
        Factor on the prior's logits; default the checkpoint's ``exp(log_logit_multiplier)``.
    temperatures
        Low-temperature sampling (method.md §1.6); default ``None``: the checkpoint's tuned temperatures
        (:data:`SAMPLING_FILE`), the plain reverse SDE where it has none.
    graphs_per_batch
        Graphs (complex copies) per device batch; default from the free GPU memory, 64 on a CPU.
    pocket_sigma
        Å; spread of the translation prior around a pocket centre (:data:`DEFAULT_POCKET_SIGMA`); at
        least the schedule's ``σ_tr,max`` (19 Å) gives the plain prior.
    consensus_weight
        Ranking, not sampling: weight of the samples' consensus against the confidence logits
        (:mod:`discodock.inference.ranking`, :data:`~discodock.inference.ranking.DEFAULT_CONSENSUS_WEIGHT`);
        0 ranks by confidence alone.
    """

    samples: int = 40
    steps: int = 20
    seed: int = 0
    latents: Literal["prior", "null"] = "prior"
    logit_multiplier: float | None = None
    temperatures: SamplingTemperatures | None = None
    graphs_per_batch: int | None = None
    pocket_sigma: float = DEFAULT_POCKET_SIGMA
    consensus_weight: float = DEFAULT_CONSENSUS_WEIGHT

    def __post_init__(self) -> None:
        if self.samples < 1 or self.steps < 1:
            raise ValueError(f"need samples ≥ 1 and steps ≥ 1, got {self.samples} and {self.steps}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.latents not in ("prior", "null"):
            raise ValueError(f"latents must be 'prior' or 'null', got {self.latents!r}")
        if self.graphs_per_batch is not None and self.graphs_per_batch < 1:
            raise ValueError(f"graphs_per_batch must be ≥ 1, got {self.graphs_per_batch}")
        if not self.pocket_sigma > 0:
            raise ValueError(f"pocket_sigma must be a positive number of Å, got {self.pocket_sigma}")
        if not self.consensus_weight >= 0:
            raise ValueError(f"consensus_weight must be ≥ 0, got {self.consensus_weight}")

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SamplingOptions:
        """The options from ``dataclasses.asdict(options)`` (e.g. read back from a file)."""
        temperatures = record["temperatures"]
        if temperatures is not None:
            temperatures = SamplingTemperatures.from_dict(temperatures)
        return cls(**{**record, "temperatures": temperatures})


@dataclass(frozen=True)
class SampledPoses:
    """``S`` sampled poses of each of ``C`` complexes, graph ``g = c · S + s``, on the CPU.

    Attributes
    ----------
    poses
        ``float32[Σ_g A_g, 3]``: the final poses of all graphs, concatenated in graph order, in the
        protein-centred frame (``A_g`` the ligand atoms of graph ``g``).
    atoms
        ``int64[C]``: ligand atoms ``A_c`` of each complex.
    confidences
        ``float32[C · S]``: confidence logit of each pose (``nan`` without a confidence model).
    token_nodes
        ``int64[C · S, K]``: the node each latent token points at
        (:meth:`~discodock.model.latents.LatentAssignment.token_nodes`; −1 for null tokens).
    samples
        ``S``.
    """

    poses: torch.Tensor
    atoms: torch.Tensor
    confidences: torch.Tensor
    token_nodes: torch.Tensor
    samples: int

    def graph_poses(self) -> tuple[torch.Tensor, ...]:
        """The ``C · S`` poses ``float32[A_g, 3]``, one per graph."""
        return self.poses.split(self.atoms.repeat_interleave(self.samples).tolist())

    def per_complex(self) -> list[SampledPoses]:
        """One :class:`SampledPoses` per complex, in order."""
        samples = self.samples
        poses = self.poses.split((self.atoms * samples).tolist())
        return [
            SampledPoses(
                poses[c],
                self.atoms[c : c + 1],
                self.confidences[c * samples : (c + 1) * samples],
                self.token_nodes[c * samples : (c + 1) * samples],
                samples,
            )
            for c in range(len(poses))
        ]

    @classmethod
    def concatenate(cls, parts: list[SampledPoses], samples: int, num_tokens: int) -> SampledPoses:
        """The complexes of ``parts``, in order (``samples`` and ``num_tokens`` ``K`` for no parts)."""
        return cls(
            torch.cat([torch.empty(0, 3), *(part.poses for part in parts)]),
            torch.cat([torch.empty(0, dtype=torch.long), *(part.atoms for part in parts)]),
            torch.cat([torch.empty(0), *(part.confidences for part in parts)]),
            torch.cat([torch.empty(0, num_tokens, dtype=torch.long), *(part.token_nodes for part in parts)]),
            samples,
        )


@dataclass(frozen=True)
class _SampledBatch:
    """Outputs of one device batch of ``b`` graphs: poses ``float[A_b, 3]`` (frame), confidences
    ``float[b]`` and token nodes ``int64[b, K]`` (:meth:`LatentAssignment.token_nodes`), on the CPU."""

    poses: torch.Tensor
    confidences: torch.Tensor
    token_nodes: torch.Tensor


class DockingNetworks:
    """The trained networks of a checkpoint, sampling and scoring poses of featurized complexes.

    Parameters
    ----------
    score_model
        The denoiser (EMA weights).
    prior
        The autoregressive token prior, or ``None`` (unconditional sampling).
    confidence
        Scores final poses (e.g. a :class:`~discodock.model.confidence.ConfidenceModel`), or ``None`` (no
        ranking).
    device
        Where to sample (default CUDA when available).
    tuned_temperatures
        The temperatures of ``SamplingOptions(temperatures=None)``; default the plain reverse SDE.
    """

    def __init__(
        self,
        score_model: ScoreModel,
        prior: AutoregressivePrior | None = None,
        confidence: ConfidenceFunction | None = None,
        *,
        device: str | torch.device | None = None,
        tuned_temperatures: SamplingTemperatures | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.tuned_temperatures = tuned_temperatures or SamplingTemperatures()
        self.score_model = score_model.to(self.device).eval()
        self.prior = None if prior is None else prior.to(self.device).eval()
        self.confidence = (
            confidence.to(self.device).eval() if isinstance(confidence, nn.Module) else confidence
        )
        self._graphs_after_out_of_memory: int | None = None

    @property
    def num_tokens(self) -> int:
        """``K``, latent tokens per pose (0 for a model without latents)."""
        return self.score_model.config.latent_tokens

    @classmethod
    def load(
        cls, path: str | Path | None = None, device: str | torch.device | None = None
    ) -> DockingNetworks:
        """Load the networks of a checkpoint folder.

        The folder holds ``score_model_ema.pt`` (required), ``prior.pt`` and ``confidence.pt``, each
        written by :func:`~discodock.training.checkpoint.save_network`, and the tuned temperatures
        :data:`SAMPLING_FILE`. A missing prior means unconditional sampling, a missing confidence model no
        ranking; each is warned about once. Without a sampling file the temperatures are plain.

        Parameters
        ----------
        path
            The folder; default ``$DISCODOCK_CHECKPOINT``, else :data:`DEFAULT_CHECKPOINT`.
        device
            ``"cuda"``, ``"cuda:1"``, ``"cpu"`` (default CUDA when available).

        Raises
        ------
        InputError
            If the folder or its denoiser is missing or unreadable, or the device is unavailable.
        """
        if path is not None:
            folder = Path(path)
        else:
            folder = Path(os.environ.get(CHECKPOINT_VARIABLE) or DEFAULT_CHECKPOINT)
        if not folder.is_dir():
            if path is None and CHECKPOINT_VARIABLE not in os.environ:
                raise InputError(
                    folder,
                    "the shipped weights were not found: they live in the repository's checkpoints/ "
                    f"folder, so install discodock from a clone (pip install -e .), or name a checkpoint "
                    f"folder with --checkpoint or {CHECKPOINT_VARIABLE}",
                )
            raise InputError(folder, "checkpoint folder not found")
        score_model = _read_network(folder / "score_model_ema.pt", lambda config: ScoreModel(config.score))
        prior = None
        if score_model.config.latent_tokens > 0:
            prior = _optional_network(
                folder / "prior.pt",
                lambda config: AutoregressivePrior(config.prior, score_model.config.latent_tokens),
                "no prior in the checkpoint; sampling unconditionally (null tokens)",
            )
        confidence = _optional_network(
            folder / "confidence.pt",
            lambda config: ConfidenceModel(config.confidence),
            "no confidence model in the checkpoint; poses are not ranked",
        )
        sampling_file = folder / SAMPLING_FILE
        tuned = read_tuned_temperatures(sampling_file) if sampling_file.is_file() else None
        return cls(score_model, prior, confidence, device=device, tuned_temperatures=tuned)

    def resolved(self, options: SamplingOptions) -> SamplingOptions:
        """``options`` with ``temperatures=None`` replaced by these networks' tuned temperatures."""
        if options.temperatures is not None:
            return options
        return replace(options, temperatures=self.tuned_temperatures)

    def graphs_per_batch(self, residues: torch.Tensor, atoms: torch.Tensor, options: SamplingOptions) -> int:
        """Graphs per device batch for complexes of ``residues`` and ``atoms`` (``int64[C]`` each).

        ``options.graphs_per_batch`` if set; on a CPU :data:`CPU_GRAPHS_PER_BATCH`; on a GPU the largest
        power of two with ``graphs · E_max · BYTES_PER_EDGE ≤ 0.8 · free memory``, where
        ``E_max = max_c R_c·(24 + A_c) + 16·A_c`` bounds the receptor, cross (all pairs, as at ``t = 1``)
        and ligand edges of the largest complex; never above the size that last ran out of memory.
        """
        if options.graphs_per_batch is not None:
            graphs = options.graphs_per_batch
        elif self.device.type != "cuda":
            graphs = CPU_GRAPHS_PER_BATCH
        else:
            graphs = self._graphs_fitting_in_memory(residues, atoms)
        if self._graphs_after_out_of_memory is not None:
            graphs = min(graphs, self._graphs_after_out_of_memory)
        return graphs

    def _graphs_fitting_in_memory(self, residues: torch.Tensor, atoms: torch.Tensor) -> int:
        """The automatic GPU batch size of :meth:`graphs_per_batch`."""
        free_bytes, _ = torch.cuda.mem_get_info(self.device)
        neighbours = self.score_model.config.receptor_max_neighbors
        edges = int((residues * (neighbours + atoms) + 16 * atoms).max())
        fitting = max(1, int(0.8 * free_bytes / (edges * BYTES_PER_EDGE)))
        return min(2 ** int(math.log2(fitting)), MAX_GRAPHS_PER_BATCH)

    def sample(
        self,
        cache: ComplexCache,
        prior_centers: torch.Tensor,
        options: SamplingOptions,
        pocket: torch.Tensor | None = None,
    ) -> SampledPoses:
        """Sample and score ``options.samples`` poses of every complex of ``cache``, many per device batch.

        Parameters
        ----------
        cache
            ``C`` featurized complexes (any device; no crystal pose needed). Their names seed the batches.
        prior_centers
            ``float32[C, 3]``: centre of each complex's translation prior in its frame (0: protein centre).
        options
            Sampling options.
        pocket
            ``bool[C]``: whether that centre is a pocket centre (prior spread ``options.pocket_sigma``)
            rather than the protein centre (``σ_tr,max``); default all ``False``.

        Returns
        -------
        SampledPoses
            On the CPU.
        """
        options = self.resolved(options)
        counts = cache.counts.cpu()
        residues = counts[:, COUNT_COLUMNS.index("residues")]
        atoms = counts[:, COUNT_COLUMNS.index("atoms")]
        cache = cache.to(self.device)
        prior_centers = prior_centers.to(self.device)
        prior_sigmas = torch.full((len(cache),), math.inf, device=self.device)  # inf: the blind prior
        if pocket is not None:
            prior_sigmas[pocket.to(self.device)] = options.pocket_sigma  # sample_poses caps it at σ_max
        samples = options.samples
        graph_complex = torch.arange(len(cache), device=self.device).repeat_interleave(samples)
        batches = []
        start = 0
        while start < len(graph_complex):
            size = min(self.graphs_per_batch(residues, atoms, options), len(graph_complex) - start)
            index = graph_complex[start : start + size]
            names = [cache.names[c] for c in sorted(set(index.tolist()))]
            try:
                batches.append(
                    self._sample_batch(
                        cache, index, prior_centers[index], prior_sigmas[index], options, start, names
                    )
                )
            except torch.OutOfMemoryError:
                if size == 1:
                    raise
                self._graphs_after_out_of_memory = size // 2
                torch.cuda.empty_cache()
                logger.warning(
                    "out of device memory with %d graphs per batch; retrying with %d", size, size // 2
                )
                continue
            start += size
        return SampledPoses(
            torch.cat([b.poses for b in batches]),
            atoms,
            torch.cat([b.confidences for b in batches]),
            torch.cat([b.token_nodes for b in batches]),
            samples,
        )

    @torch.no_grad()
    def _sample_batch(
        self,
        cache: ComplexCache,
        index: torch.Tensor,
        prior_center: torch.Tensor,
        prior_sigma: torch.Tensor,
        options: SamplingOptions,
        first_graph: int,
        names: list[str],
    ) -> _SampledBatch:
        """Sample the graphs ``index`` (rows of ``cache``) with a generator seeded by the batch."""
        entropy = [options.seed, first_graph, *(zlib.crc32(name.encode()) for name in names)]
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]))
        batch = batch_of(cache, index, 1, self.score_model.config)
        drawn: list[LatentAssignment] = []
        poses = sample_poses(
            self.score_model.for_receptors(batch, self.receptor_encoding(cache, index)),
            batch,
            self.score_model.config.schedule,
            num_steps=options.steps,
            latent_source=self._latent_source(options, drawn),
            temperatures=options.temperatures,
            prior_center=prior_center,
            prior_sigma_tr=prior_sigma,
            generator=generator,
        )
        if self.confidence is None:
            confidences = torch.full((batch.num_graphs,), math.nan)
        else:
            confidences = self.confidence(batch.with_ligand_pos(poses)).float()
        if drawn:
            token_nodes = drawn[0].token_nodes(batch)
        else:
            token_nodes = torch.full((batch.num_graphs, self.num_tokens), -1, dtype=torch.long)
        return _SampledBatch(poses.cpu(), confidences.cpu(), token_nodes.cpu())

    def receptor_encoding(self, cache: ComplexCache, index: torch.Tensor) -> torch.Tensor:
        """Receptor encoding of the graphs ``index`` (rows of ``cache``, copies of a complex adjacent).

        Each complex's receptor is encoded once and its rows are copied to every graph of that complex,
        instead of encoding ``samples`` identical copies: ``float[R, D]`` in the order of
        ``batch_of(cache, index, 1, ...)``'s residues.
        """
        complexes, copy_of = torch.unique_consecutive(index, return_inverse=True)
        single = batch_of(cache, complexes, 1, self.score_model.config)
        rows = copied_rows(single.residue_graph, len(complexes), copy_of)
        return self.score_model.encode_receptor(single)[rows]

    def _latent_source(self, options: SamplingOptions, drawn: list[LatentAssignment]) -> LatentSource | None:
        """The prior's token sampler, recording what it draws in ``drawn``; ``None`` for null tokens."""
        if self.num_tokens == 0 or self.prior is None or options.latents == "null":
            return None
        draw = prior_latents(self.prior, options.logit_multiplier)

        def recorded(batch: ComplexBatch, generator: torch.Generator | None) -> LatentAssignment:
            drawn.append(draw(batch, generator))
            return drawn[-1]

        return recorded


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device``, or CUDA when available and the CPU otherwise.

    Raises
    ------
    InputError
        If a CUDA device is asked for on a machine without one, or the name is not a device.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InputError(str(device), "not a device (expected cuda, cuda:N or cpu)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(str(device), "CUDA is not available on this machine")
    return resolved


def _read_network(path: Path, build: NetworkBuilder) -> nn.Module:
    """A network file of :func:`~discodock.training.checkpoint.save_network`: the network that ``build``
    makes from the model config stored with the weights, with those weights loaded."""
    config, _, state_dict = load_network(path)
    try:
        network = build(ModelConfig.from_dict(config["model"]))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(path, f"invalid model config ({error})") from None
    try:
        network.load_state_dict(state_dict)
    except RuntimeError as error:
        reason = str(error).splitlines()[0]
        raise InputError(path, f"weights do not fit the network of its config ({reason})") from None
    return network


def _optional_network(path: Path, build: NetworkBuilder, missing: str) -> nn.Module | None:
    """:func:`_read_network`, or ``None`` with the warning ``missing`` when the file does not exist."""
    if not path.is_file():
        logger.warning("%s: %s", path, missing)
        return None
    return _read_network(path, build)
