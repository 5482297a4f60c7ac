"""Docking new ligands with trained networks: the Python API (method.md §1.6, §3.8).

:class:`DockingModel` holds the networks of a checkpoint folder and docks ligands into receptors:

1. **Preparation** (:meth:`DockingModel.prepare`): the receptor is read and featurized once per protein
   (cached by path or object, :func:`~discodock.data.complex.featurize_receptor`), each ligand gets an
   ETKDG conformer against those shared arrays (:func:`~discodock.data.complex.featurize_with_receptor`).
   With a pocket centre, the receptor graph is cropped to the residues whose C-alpha lies within the pocket
   radius of it (:func:`~discodock.data.complex.crop_receptor`, default radius
   :data:`DEFAULT_POCKET_MARGIN` + the ligand's conformer radius, cached per protein, centre and radius);
   the frame origin stays the whole protein's.
2. **Sampling** (:meth:`DockingModel.run`): all complexes × ``samples`` copies form one flat list of graphs
   ``g = c · S + s``, cut into device batches of ``graphs_per_batch`` graphs (many complexes per batch).
   In each batch, every graph's ``K`` latent tokens are drawn from the autoregressive prior (logits ×
   ``logit_multiplier``), then the ``N``-step reverse SDE runs conditioned on them
   (:func:`~discodock.diffusion.sampler.sample_poses`). Without a prior, or with ``latents="null"``, the
   denoiser runs unconditionally (null tokens); a model with ``K = 0`` runs the same code without tokens.
   The translation prior is ``N(c, σ_tr,max² I)`` with ``c`` the protein centre, or the pocket centre when
   one is given.
3. **Ranking**: the confidence model scores every final pose (a logit, higher is better) and the poses
   of a complex are sorted by it; without a confidence model they stay in sampling order with
   confidence ``nan``.

Poses are returned as RDKit molecules (heavy atoms, the input ligand's atom order) in the **input frame**
(the frame origin added back). A CUDA out-of-memory error halves the batch and retries it.

Reproducibility: the batch of graphs ``[g₀, g₁)`` draws all its noise from a generator seeded by
``(seed, g₀, names of its complexes)``, so a run repeats exactly on the same device with the same batch
size (pin it with ``graphs_per_batch``; by default it follows the free GPU memory, in powers of two).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from rdkit import Chem
from torch import nn

from discodock.data.batch import ComplexBatch
from discodock.data.cache import COUNT_COLUMNS, ComplexCache
from discodock.data.complex import (
    ComplexData,
    ReceptorFeatures,
    crop_receptor,
    featurize_receptor,
    featurize_with_receptor,
)
from discodock.data.ligand import as_ligand, read_ligands
from discodock.data.protein import Protein, read_protein
from discodock.diffusion.sampler import (
    DIFFDOCK_S_TEMPERATURES,
    DISCO_DIFFDOCK_S_TEMPERATURES,
    LatentSource,
    SamplingTemperatures,
    prior_latents,
    sample_poses,
)
from discodock.errors import InputError
from discodock.model.confidence import ConfidenceModel
from discodock.model.config import ModelConfig
from discodock.model.latents import LatentAssignment
from discodock.model.prior import AutoregressivePrior
from discodock.model.score_model import ScoreModel
from discodock.training.checkpoint import load_network
from discodock.training.trainer import batch_of

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "disco_small"
"""The checkpoint folder shipped in the repository."""

CPU_GRAPHS_PER_BATCH = 64
"""Graphs per batch on a CPU (memory is not the limit there; larger batches gain little)."""

MAX_GRAPHS_PER_BATCH = 1024
"""Upper bound of the automatic batch size on a GPU."""

BYTES_PER_EDGE = 16 * 1024
"""Rough peak GPU memory of one graph edge in a no-grad forward pass of a DiffDock-S-sized network (the
measured e3nn forward peak is ≈14 kB per edge, gpu-notes.md); too high an estimate costs speed, too low
an out-of-memory retry."""

DEFAULT_POCKET_MARGIN = 20.0
"""Å; the default pocket radius is this plus the ligand's conformer radius (largest atom distance from its
centroid), so that a ligand centred anywhere near the pocket centre has every residue within DiffDock's
``t = 0`` ligand–residue cutoff (20 Å) in the graph."""

TEMPERATURE_PRESETS: dict[str, SamplingTemperatures] = {
    "none": SamplingTemperatures(),
    "diffdock-s": DIFFDOCK_S_TEMPERATURES,
    "disco-diffdock-s": DISCO_DIFFDOCK_S_TEMPERATURES,
}
"""Named sampling temperatures: none (the plain reverse SDE, the default until tuned for these networks)
and the released DiffDock-S and DisCo-DiffDock-S values."""

ProteinSource = str | Path | Protein
LigandSource = str | Path | Chem.Mol
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
        Low-temperature sampling (method.md §1.6); default none (the plain reverse SDE).
    graphs_per_batch
        Graphs (complex copies) per device batch; default from the free GPU memory, 64 on a CPU.
    """

    samples: int = 40
    steps: int = 20
    seed: int = 0
    latents: Literal["prior", "null"] = "prior"
    logit_multiplier: float | None = None
    temperatures: SamplingTemperatures = field(default_factory=SamplingTemperatures)
    graphs_per_batch: int | None = None

    def __post_init__(self) -> None:
        if self.samples < 1 or self.steps < 1:
            raise ValueError(f"need samples ≥ 1 and steps ≥ 1, got {self.samples} and {self.steps}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.latents not in ("prior", "null"):
            raise ValueError(f"latents must be 'prior' or 'null', got {self.latents!r}")
        if self.graphs_per_batch is not None and self.graphs_per_batch < 1:
            raise ValueError(f"graphs_per_batch must be ≥ 1, got {self.graphs_per_batch}")


@dataclass(frozen=True)
class TokenTarget:
    """The node one latent token of a pose points at.

    Attributes
    ----------
    kind
        ``"atom"`` (a ligand atom), ``"residue"`` (a receptor residue) or ``"null"`` (unconditional).
    index
        Ligand atom index (0-based, the ligand's atom order) or residue index (0-based, in the order of
        :class:`~discodock.data.protein.Protein`); −1 for a null token.
    residue_id
        ``chain:number[insertion]:name`` of a residue, e.g. ``A:41:HIS``; empty otherwise.
    """

    kind: Literal["atom", "residue", "null"]
    index: int = -1
    residue_id: str = ""

    def __str__(self) -> str:
        """``atom:<index>``, ``residue:<residue_id>`` or ``null``."""
        if self.kind == "atom":
            return f"atom:{self.index}"
        return f"residue:{self.residue_id}" if self.kind == "residue" else "null"


@dataclass(frozen=True)
class DockedPose:
    """One sampled pose.

    Attributes
    ----------
    mol
        Heavy-atom copy of the input ligand with this pose as its only conformer (input frame, Å), and
        the properties ``confidence``, ``rank``, ``sample_index`` and ``latent_tokens``.
    confidence
        Confidence logit (higher is better); ``nan`` without a confidence model.
    tokens
        The ``K`` latent tokens the pose was sampled with.
    sample_index
        Position among the samples of its complex, in sampling order.
    """

    mol: Chem.Mol
    confidence: float
    tokens: tuple[TokenTarget, ...]
    sample_index: int


@dataclass(frozen=True)
class DockingResult:
    """The poses of one ligand in one receptor, best first.

    Attributes
    ----------
    name
        Name of the complex.
    protein
        The receptor.
    ligand
        The input ligand (heavy atoms).
    poses
        Poses sorted by decreasing confidence (sampling order when unranked).
    """

    name: str
    protein: Protein
    ligand: Chem.Mol
    poses: tuple[DockedPose, ...]

    @property
    def best(self) -> DockedPose:
        """The top-ranked pose."""
        return self.poses[0]

    @property
    def ranked(self) -> bool:
        """Whether the poses were ranked by a confidence model."""
        return not math.isnan(self.best.confidence)


@dataclass(frozen=True)
class DockingJob:
    """One ligand prepared for docking into one receptor.

    Attributes
    ----------
    name
        Name of the complex.
    protein
        The receptor.
    ligand
        Heavy-atom ligand; poses keep its atom order.
    features
        The featurized complex in the protein-centred frame (no crystal pose).
    prior_center
        ``float32[3]``: centre of the translation prior in that frame (0: the protein centre).
    residue_index
        ``int64[R]``: row in ``protein`` of each residue of ``features`` (a subset with a pocket).
    """

    name: str
    protein: Protein
    ligand: Chem.Mol
    features: ComplexData
    prior_center: np.ndarray
    residue_index: np.ndarray


@dataclass(frozen=True)
class _SampledBatch:
    """Outputs of one device batch of ``b`` graphs: poses ``float[A_b, 3]`` (frame), confidences
    ``float[b]`` and token nodes ``int64[b, K]`` (:meth:`LatentAssignment.token_nodes`), on the CPU."""

    poses: torch.Tensor
    confidences: torch.Tensor
    token_nodes: torch.Tensor


class DockingModel:
    """Trained networks ready to dock; reusable across calls without reloading anything.

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
    receptor_cache_size
        Receptors whose featurization is kept between calls.

    Examples
    --------
    >>> model = DockingModel.load()  # doctest: +SKIP
    >>> results = model.dock("protein.pdb", "ligands.sdf", samples=10, seed=1)  # doctest: +SKIP
    >>> results[0].best.mol, results[0].best.confidence  # doctest: +SKIP
    """

    def __init__(
        self,
        score_model: ScoreModel,
        prior: AutoregressivePrior | None = None,
        confidence: ConfidenceFunction | None = None,
        *,
        device: str | torch.device | None = None,
        receptor_cache_size: int = 8,
    ) -> None:
        self.device = resolve_device(device)
        self.score_model = score_model.to(self.device).eval()
        self.prior = None if prior is None else prior.to(self.device).eval()
        self.confidence = (
            confidence.to(self.device).eval() if isinstance(confidence, nn.Module) else confidence
        )
        self.receptor_cache_size = receptor_cache_size
        self._receptors: OrderedDict[object, tuple[Protein, ReceptorFeatures]] = OrderedDict()
        self._graphs_after_out_of_memory: int | None = None

    @property
    def num_tokens(self) -> int:
        """``K``, latent tokens per pose (0 for a model without latents)."""
        return self.score_model.config.latent_tokens

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device | None = None) -> DockingModel:
        """Load the networks of a checkpoint folder.

        The folder holds ``score_model_ema.pt`` (required), ``prior.pt`` and ``confidence.pt``, each
        written by :func:`~discodock.training.checkpoint.save_network`. A missing prior means
        unconditional sampling, a missing confidence model no ranking; each is warned about once.

        Parameters
        ----------
        path
            The folder; default :data:`DEFAULT_CHECKPOINT`.
        device
            ``"cuda"``, ``"cuda:1"``, ``"cpu"`` (default CUDA when available).

        Raises
        ------
        InputError
            If the folder or its denoiser is missing or unreadable, or the device is unavailable.
        """
        folder = Path(DEFAULT_CHECKPOINT if path is None else path)
        if not folder.is_dir():
            raise InputError(folder, "checkpoint folder not found")
        score_model = _read_network(folder / "score_model_ema.pt", lambda config: ScoreModel(config.score))
        prior = None
        if score_model.config.latent_tokens > 0:
            prior = _optional_network(
                folder / "prior.pt",
                lambda config: AutoregressivePrior(score_model, config.prior),
                "no prior in the checkpoint; sampling unconditionally (null tokens)",
            )
        confidence = _optional_network(
            folder / "confidence.pt",
            lambda config: ConfidenceModel(config.confidence),
            "no confidence model in the checkpoint; poses are not ranked",
        )
        return cls(score_model, prior, confidence, device=device)

    def receptor(
        self, protein: ProteinSource, pocket: tuple[np.ndarray, float] | None = None
    ) -> tuple[Protein, ReceptorFeatures]:
        """The parsed and featurized receptor, or its pocket, from the cache when seen before.

        A path is keyed by its resolved name, modification time and size; a :class:`Protein` by identity;
        a pocket also by its centre and radius.

        Parameters
        ----------
        protein
            Receptor file or parsed :class:`Protein`.
        pocket
            ``(centre, radius)``: ``float[3]`` in the input frame and Å. Only the residues whose C-alpha
            lies within ``radius`` of the centre are kept (:func:`~discodock.data.complex.crop_receptor`;
            same frame origin as the whole receptor).

        Raises
        ------
        InputError
            Unreadable receptor, or no residue in the pocket.
        """
        if isinstance(protein, Protein):
            key: object = ("object", id(protein))
        else:
            path = Path(protein).expanduser().resolve()
            stat = path.stat() if path.is_file() else None
            key = ("path", str(path), stat and (stat.st_mtime_ns, stat.st_size))
        if pocket is not None:
            key = (key, *map(float, pocket[0]), float(pocket[1]))
        if key in self._receptors:
            self._receptors.move_to_end(key)
            return self._receptors[key]
        if pocket is None:
            parsed = protein if isinstance(protein, Protein) else read_protein(protein)
            entry = (parsed, featurize_receptor(parsed))
        else:
            parsed, whole = self.receptor(protein)
            entry = (parsed, _pocket_receptor(parsed, whole, *pocket))
        self._receptors[key] = entry
        while len(self._receptors) > self.receptor_cache_size:
            self._receptors.popitem(last=False)
        return entry

    def prepare(
        self,
        protein: ProteinSource,
        ligand: Chem.Mol,
        *,
        name: str,
        pocket_center: Sequence[float] | np.ndarray | None = None,
        pocket_radius: float | None = None,
        seed: int = 0,
    ) -> DockingJob:
        """Featurize one ligand against a (cached) receptor.

        Parameters
        ----------
        protein
            Receptor file (PDB, PDBQT, mmCIF, optionally gzipped) or parsed :class:`Protein`.
        ligand
            Heavy-atom ligand as returned by :func:`~discodock.data.ligand.read_ligands` (or
            :func:`as_ligand`).
        name
            Name of the complex.
        pocket_center
            ``(x, y, z)`` in the input frame: centre of the translation prior (default the protein centre)
            and of the pocket the receptor graph is cropped to.
        pocket_radius
            Å; radius of that pocket (default :data:`DEFAULT_POCKET_MARGIN` + the conformer radius).
        seed
            Seed of the ligand's ETKDG conformer.

        Raises
        ------
        InputError
            Unreadable receptor, a ligand without a 3D conformer, a bad pocket centre or radius, an empty
            pocket.
        """
        parsed, receptor = self.receptor(protein)
        features = featurize_with_receptor(name, receptor, ligand, seed=seed, use_ligand_pose=False)
        prior_center = np.zeros(3, dtype=np.float32)
        if pocket_center is not None:
            center = _point(pocket_center)
            if pocket_radius is None:
                conformer_radius = np.linalg.norm(features.conformer_pos, axis=1).max()
                pocket_radius = DEFAULT_POCKET_MARGIN + float(conformer_radius)
            _, receptor = self.receptor(protein, (center, pocket_radius))
            features = replace(
                features,
                residue_types=receptor.residue_types,
                residue_pos=receptor.residue_pos,
                residue_frame=receptor.residue_frame,
            )
            prior_center = (center - features.center).astype(np.float32)
        elif pocket_radius is not None:
            raise InputError(str(pocket_radius), "a pocket radius needs a pocket centre")
        return DockingJob(name, parsed, ligand, features, prior_center, receptor.residue_index)

    def dock(
        self,
        protein: ProteinSource,
        ligands: LigandSource | Sequence[LigandSource],
        *,
        samples: int = 40,
        steps: int = 20,
        seed: int = 0,
        pocket_center: Sequence[float] | np.ndarray | None = None,
        pocket_radius: float | None = None,
        latents: Literal["prior", "null"] = "prior",
        logit_multiplier: float | None = None,
        temperatures: SamplingTemperatures | None = None,
        graphs_per_batch: int | None = None,
    ) -> list[DockingResult]:
        """Dock one or many ligands into one receptor, all in shared device batches.

        Parameters
        ----------
        protein
            Receptor file or parsed :class:`Protein` (featurized once, then cached).
        ligands
            A ligand file (every molecule in it), a SMILES string, an RDKit ``Mol``, or a sequence of these.
        samples, steps, seed, latents, logit_multiplier, temperatures, graphs_per_batch
            See :class:`SamplingOptions`.
        pocket_center, pocket_radius
            ``(x, y, z)`` in the input frame and Å, to restrict the translation prior and the receptor
            graph to a site (see :meth:`prepare`).

        Returns
        -------
        list of DockingResult
            One per ligand, in input order, named after the molecule (``_Name``) or ``ligand<i>``.

        Raises
        ------
        InputError
            On any bad input (the first one found).
        """
        options = SamplingOptions(
            samples=samples,
            steps=steps,
            seed=seed,
            latents=latents,
            logit_multiplier=logit_multiplier,
            temperatures=temperatures or SamplingTemperatures(),
            graphs_per_batch=graphs_per_batch,
        )
        molecules = [mol for source in _ligand_sources(ligands) for mol in _ligand_molecules(source)]
        jobs = [
            self.prepare(
                protein,
                mol,
                name=_molecule_name(mol, number),
                pocket_center=pocket_center,
                pocket_radius=pocket_radius,
                seed=seed,
            )
            for number, mol in enumerate(molecules, start=1)
        ]
        return self.run(jobs, options)

    def graphs_per_batch(self, jobs: Sequence[DockingJob], options: SamplingOptions) -> int:
        """Graphs per device batch for ``jobs``.

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
            graphs = self._graphs_fitting_in_memory(jobs)
        if self._graphs_after_out_of_memory is not None:
            graphs = min(graphs, self._graphs_after_out_of_memory)
        return graphs

    def _graphs_fitting_in_memory(self, jobs: Sequence[DockingJob]) -> int:
        """The automatic GPU batch size of :meth:`graphs_per_batch`."""
        free_bytes, _ = torch.cuda.mem_get_info(self.device)
        neighbours = self.score_model.config.receptor_max_neighbors
        edges = max(
            job.features.num_residues * (neighbours + job.features.num_atoms) + 16 * job.features.num_atoms
            for job in jobs
        )
        fitting = max(1, int(0.8 * free_bytes / (edges * BYTES_PER_EDGE)))
        return min(2 ** int(math.log2(fitting)), MAX_GRAPHS_PER_BATCH)

    def run(self, jobs: Sequence[DockingJob], options: SamplingOptions) -> list[DockingResult]:
        """Sample, score and rank the poses of prepared complexes, many complexes per device batch.

        Parameters
        ----------
        jobs
            Complexes from :meth:`prepare` (any receptors).
        options
            Sampling options.

        Returns
        -------
        list of DockingResult
            One per job, in order.
        """
        if not jobs:
            return []
        cache = ComplexCache.from_complexes([job.features for job in jobs]).to(self.device)
        prior_centers = torch.as_tensor(np.stack([job.prior_center for job in jobs]), device=self.device)
        samples = options.samples
        graph_complex = torch.arange(len(jobs), device=self.device).repeat_interleave(samples)
        batches = []
        start = 0
        while start < len(graph_complex):
            size = min(self.graphs_per_batch(jobs, options), len(graph_complex) - start)
            index = graph_complex[start : start + size]
            names = [jobs[c].name for c in sorted(set(index.tolist()))]
            try:
                batches.append(self._sample_batch(cache, index, prior_centers[index], options, start, names))
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
        atoms_per_graph = cache.counts[graph_complex, COUNT_COLUMNS.index("atoms")].cpu()
        poses = torch.cat([b.poses for b in batches]).split(atoms_per_graph.tolist())
        confidences = torch.cat([b.confidences for b in batches])
        token_nodes = torch.cat([b.token_nodes for b in batches])
        return [
            _ranked_result(
                job,
                poses[c * samples : (c + 1) * samples],
                confidences[c * samples : (c + 1) * samples],
                token_nodes[c * samples : (c + 1) * samples],
            )
            for c, job in enumerate(jobs)
        ]

    @torch.no_grad()
    def _sample_batch(
        self,
        cache: ComplexCache,
        index: torch.Tensor,
        prior_center: torch.Tensor,
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
            self.score_model,
            batch,
            self.score_model.config.schedule,
            num_steps=options.steps,
            latent_source=self._latent_source(options, drawn),
            temperatures=options.temperatures,
            prior_center=prior_center,
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


def ligand_centroid(source: str | Path) -> np.ndarray:
    """Heavy-atom centroid of every molecule in a reference ligand file (``--autobox-ligand``).

    Returns
    -------
    numpy.ndarray
        ``float64[3]`` in the file's frame.

    Raises
    ------
    InputError
        If the file cannot be read or has no 3D coordinates.
    """
    molecules = read_ligands(source)
    if any(mol.GetNumConformers() == 0 for mol in molecules):
        raise InputError(source, "has no 3D coordinates, so it cannot define a pocket")
    return np.concatenate([mol.GetConformer().GetPositions() for mol in molecules]).mean(axis=0)


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


def _ligand_sources(ligands: LigandSource | Sequence[LigandSource]) -> list[LigandSource]:
    """``ligands`` as a list of single sources."""
    if isinstance(ligands, (str, Path, Chem.Mol)):
        return [ligands]
    return list(ligands)


def _ligand_molecules(source: LigandSource) -> list[Chem.Mol]:
    """Every molecule of one source, read and checked."""
    if isinstance(source, Chem.Mol):
        name = source.GetProp("_Name").strip() if source.HasProp("_Name") else ""
        return [as_ligand(source, name or "RDKit molecule")]
    return read_ligands(source)


def _molecule_name(mol: Chem.Mol, number: int) -> str:
    """The molecule's ``_Name`` or ``ligand<number>``."""
    name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
    return name or f"ligand{number}"


def _point(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """A finite ``float64[3]``, or :class:`InputError`."""
    point = np.asarray(values, dtype=np.float64)
    if point.shape != (3,) or not np.isfinite(point).all():
        raise InputError(
            str(list(np.ravel(point))), "a pocket centre needs three finite coordinates (x, y, z)"
        )
    return point


def _pocket_receptor(
    protein: Protein, receptor: ReceptorFeatures, center: np.ndarray, radius: float
) -> ReceptorFeatures:
    """The residues of ``receptor`` within ``radius`` Å of ``center`` (input frame), or :class:`InputError`
    for a radius that is not a positive number or a pocket without residues."""
    if not 0 < radius < math.inf:
        raise InputError(str(radius), "a pocket radius must be a positive number of Å")
    pocket = crop_receptor(receptor, center - receptor.frame_origin, radius)
    if len(pocket.residue_index) == 0:
        where = ", ".join(f"{x:.2f}" for x in center)
        raise InputError(protein.path, f"no residue within {radius:.1f} Å of the pocket centre ({where})")
    return pocket


def _ranked_result(
    job: DockingJob,
    poses: Sequence[torch.Tensor],
    confidences: torch.Tensor,
    token_nodes: torch.Tensor,
) -> DockingResult:
    """The ``S`` samples of one complex as ranked poses in the input frame.

    Parameters
    ----------
    job
        The complex.
    poses
        ``S`` tensors ``float[A, 3]`` in the protein-centred frame.
    confidences
        ``float[S]`` logits (``nan`` when unranked); poses are sorted by decreasing confidence, ``nan``
        last, ties in sampling order.
    token_nodes
        ``int64[S, K]`` nodes of :meth:`~discodock.model.latents.LatentAssignment.token_nodes`.
    """
    order = sorted(
        range(len(poses)), key=lambda s: -confidences[s].item() if confidences[s].isfinite() else math.inf
    )
    center = job.features.center.astype(np.float64)
    docked = []
    for rank, sample in enumerate(order, start=1):
        tokens = tuple(_token_target(int(node), job) for node in token_nodes[sample])
        confidence = float(confidences[sample])
        mol = _pose_molecule(job, poses[sample].double().numpy() + center)
        mol.SetDoubleProp("confidence", confidence)
        mol.SetIntProp("rank", rank)
        mol.SetIntProp("sample_index", sample)
        mol.SetProp("latent_tokens", " ".join(str(token) for token in tokens))
        docked.append(DockedPose(mol, confidence, tokens, sample))
    return DockingResult(job.name, job.protein, job.ligand, tuple(docked))


def _token_target(node: int, job: DockingJob) -> TokenTarget:
    """The node ``node`` of :meth:`LatentAssignment.token_nodes` (ligand atoms first, then residues)."""
    if node < 0:
        return TokenTarget("null")
    num_atoms = job.features.num_atoms
    if node < num_atoms:
        return TokenTarget("atom", node)
    residue = int(job.residue_index[node - num_atoms])
    protein = job.protein
    residue_id = (
        f"{protein.chain_ids[residue]}:{protein.residue_numbers[residue]}{protein.insertion_codes[residue]}:"
        f"{protein.residue_names[residue]}"
    )
    return TokenTarget("residue", residue, residue_id)


def _pose_molecule(job: DockingJob, positions: np.ndarray) -> Chem.Mol:
    """Copy of the job's ligand with ``positions`` (``float64[A, 3]``, input frame) as its one conformer."""
    mol = Chem.Mol(job.ligand)
    mol.RemoveAllConformers()
    conformer = Chem.Conformer(mol.GetNumAtoms())
    conformer.SetPositions(positions)
    conformer.Set3D(True)
    mol.AddConformer(conformer, assignId=True)
    mol.SetProp("_Name", job.name)
    return mol
