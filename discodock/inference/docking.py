"""Docking new ligands with trained networks: the Python API (method.md §1.6, §3.8).

:class:`DockingModel` holds the networks of a checkpoint folder and docks ligands into receptors:

1. **Preparation** (:meth:`DockingModel.prepare`): the receptor is read and featurized once per protein
   (cached by path or object, :func:`~discodock.data.complex.featurize_receptor`), each ligand gets an
   ETKDG conformer against those shared arrays (:func:`~discodock.data.complex.featurize_with_receptor`).
   With a pocket centre, the receptor graph is cropped to the residues whose C-alpha lies within the pocket
   radius of it (:func:`~discodock.data.complex.crop_receptor`, default radius
   :data:`DEFAULT_POCKET_MARGIN` + the ligand's conformer radius, cached per protein, centre and radius);
   the frame origin stays the whole protein's.
2. **Sampling** (:meth:`DockingModel.run`): all complexes × ``samples`` copies are sampled in shared device
   batches by the networks (:meth:`~discodock.inference.networks.DockingNetworks.sample`, which needs no
   RDKit: tokens from the autoregressive prior, the reverse SDE conditioned on them, the confidence of every
   final pose). The translation prior is centred on the protein centre, or on the pocket centre when one
   is given.
3. **Ranking** (:func:`ranked_results`): the poses of a complex are sorted by their rank score, the
   confidence logit plus the samples' consensus (:mod:`discodock.inference.ranking`; higher is better;
   ``SamplingOptions.consensus_weight = 0``: the confidence alone); without a confidence model the
   consensus ranks alone, or, with weight 0, the poses stay in sampling order with confidence ``nan``.

Poses are returned as RDKit molecules (heavy atoms, the input ligand's atom order) in the **input frame**
(the frame origin added back). Batching, out-of-memory retries and the seeding that makes a run repeat
exactly are those of :mod:`discodock.inference.networks`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from rdkit import Chem

from discodock.data.cache import ComplexCache
from discodock.data.complex import (
    ComplexData,
    ReceptorFeatures,
    crop_receptor,
    featurize_receptor,
    featurize_with_receptor,
)
from discodock.data.ligand import as_ligand, read_ligands
from discodock.data.protein import Protein, read_protein
from discodock.diffusion.sampler import SamplingTemperatures
from discodock.errors import InputError
from discodock.inference.networks import (
    DEFAULT_CHECKPOINT,
    DEFAULT_POCKET_MARGIN,
    DEFAULT_POCKET_SIGMA,
    TEMPERATURE_PRESETS,
    ConfidenceFunction,
    DockingNetworks,
    SampledPoses,
    SamplingOptions,
    resolve_device,
)
from discodock.inference.ranking import DEFAULT_CONSENSUS_WEIGHT, neighbour_counts, rank_scores
from discodock.model.prior import AutoregressivePrior
from discodock.model.score_model import ScoreModel

__all__ = [
    "DEFAULT_CHECKPOINT",
    "DEFAULT_POCKET_MARGIN",
    "DEFAULT_POCKET_SIGMA",
    "TEMPERATURE_PRESETS",
    "ComplexPreparer",
    "DockedPose",
    "DockingJob",
    "DockingModel",
    "DockingResult",
    "SamplingOptions",
    "TokenTarget",
    "as_ligand",
    "ligand_centroid",
    "ranked_results",
    "resolve_device",
]

ProteinSource = str | Path | Protein
LigandSource = str | Path | Chem.Mol


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
        the properties ``confidence``, ``consensus_neighbours`` (other samples within 2 Å),
        ``rank_score`` (:mod:`discodock.inference.ranking`), ``rank``, ``sample_index`` and
        ``latent_tokens``.
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
    in_pocket
        Whether ``prior_center`` is a given pocket centre (translation prior of spread
        ``SamplingOptions.pocket_sigma``) rather than the protein centre.
    """

    name: str
    protein: Protein
    ligand: Chem.Mol
    features: ComplexData
    prior_center: np.ndarray
    residue_index: np.ndarray
    in_pocket: bool = False


class ComplexPreparer:
    """Featurizes ligands against receptors, each receptor (and pocket) read and featurized once.

    Needs no networks: the featurized complexes do not depend on them.

    Parameters
    ----------
    receptor_cache_size
        Receptors whose featurization is kept between calls.
    """

    def __init__(self, receptor_cache_size: int = 8) -> None:
        self.receptor_cache_size = receptor_cache_size
        self._receptors: OrderedDict[object, tuple[Protein, ReceptorFeatures]] = OrderedDict()

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
        return DockingJob(
            name, parsed, ligand, features, prior_center, receptor.residue_index, pocket_center is not None
        )


class DockingModel(ComplexPreparer):
    """Trained networks ready to dock; reusable across calls without reloading anything.

    Prepares complexes as :class:`ComplexPreparer` does, samples them with :class:`DockingNetworks` and
    ranks the poses (:func:`ranked_results`).

    Parameters
    ----------
    score_model, prior, confidence, device, tuned_temperatures
        As for :class:`DockingNetworks`.
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
        tuned_temperatures: SamplingTemperatures | None = None,
        receptor_cache_size: int = 8,
    ) -> None:
        super().__init__(receptor_cache_size)
        self.networks = DockingNetworks(
            score_model, prior, confidence, device=device, tuned_temperatures=tuned_temperatures
        )

    @property
    def device(self) -> torch.device:
        """Where the networks sample."""
        return self.networks.device

    @property
    def score_model(self) -> ScoreModel:
        """The denoiser."""
        return self.networks.score_model

    @property
    def prior(self) -> AutoregressivePrior | None:
        """The token prior, or ``None``."""
        return self.networks.prior

    @property
    def confidence(self) -> ConfidenceFunction | None:
        """The confidence function, or ``None``."""
        return self.networks.confidence

    @property
    def num_tokens(self) -> int:
        """``K``, latent tokens per pose (0 for a model without latents)."""
        return self.networks.num_tokens

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device | None = None) -> DockingModel:
        """Load the networks of a checkpoint folder (:meth:`DockingNetworks.load`).

        Parameters
        ----------
        path
            The folder; default ``$DISCODOCK_CHECKPOINT``, else
            :data:`~discodock.inference.networks.DEFAULT_CHECKPOINT`.
        device
            ``"cuda"``, ``"cuda:1"``, ``"cpu"`` (default CUDA when available).

        Raises
        ------
        InputError
            If the folder or its denoiser is missing or unreadable, or the device is unavailable.
        """
        networks = DockingNetworks.load(path, device)
        return cls(
            networks.score_model,
            networks.prior,
            networks.confidence,
            device=networks.device,
            tuned_temperatures=networks.tuned_temperatures,
        )

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
        pocket_sigma: float = DEFAULT_POCKET_SIGMA,
        consensus_weight: float = DEFAULT_CONSENSUS_WEIGHT,
    ) -> list[DockingResult]:
        """Dock one or many ligands into one receptor, all in shared device batches.

        Parameters
        ----------
        protein
            Receptor file or parsed :class:`Protein` (featurized once, then cached).
        ligands
            A ligand file (every molecule in it), a SMILES string, an RDKit ``Mol``, or a sequence of these.
        samples, steps, seed, latents, logit_multiplier, temperatures, graphs_per_batch, pocket_sigma, \
        consensus_weight
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
            temperatures=temperatures,
            graphs_per_batch=graphs_per_batch,
            pocket_sigma=pocket_sigma,
            consensus_weight=consensus_weight,
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
        """Graphs per device batch for ``jobs`` (:meth:`DockingNetworks.graphs_per_batch`)."""
        residues = torch.tensor([job.features.num_residues for job in jobs])
        atoms = torch.tensor([job.features.num_atoms for job in jobs])
        return self.networks.graphs_per_batch(residues, atoms, options)

    def run(self, jobs: Sequence[DockingJob], options: SamplingOptions) -> list[DockingResult]:
        """Sample, score and rank the poses of prepared complexes, many complexes per device batch.

        Parameters
        ----------
        jobs
            Complexes from :meth:`prepare` (any receptors; distinct names).
        options
            Sampling options.

        Returns
        -------
        list of DockingResult
            One per job, in order.
        """
        if not jobs:
            return []
        cache = ComplexCache.from_complexes([job.features for job in jobs])
        prior_centers = torch.as_tensor(np.stack([job.prior_center for job in jobs]))
        pocket = torch.tensor([job.in_pocket for job in jobs])
        sampled = self.networks.sample(cache, prior_centers, options, pocket)
        return ranked_results(jobs, sampled, options.consensus_weight)


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


def ranked_results(
    jobs: Sequence[DockingJob],
    sampled: SampledPoses,
    consensus_weight: float = DEFAULT_CONSENSUS_WEIGHT,
) -> list[DockingResult]:
    """The sampled poses of prepared complexes as ranked results in the input frame.

    Parameters
    ----------
    jobs
        ``C`` complexes.
    sampled
        Their samples (:meth:`DockingNetworks.sample` of their features, in the same order).
    consensus_weight
        Weight of the samples' consensus in the rank score (:func:`~discodock.inference.ranking.rank_scores`).

    Returns
    -------
    list of DockingResult
        One per job, in order.
    """
    return [
        _ranked_result(job, part.graph_poses(), part.confidences, part.token_nodes, consensus_weight)
        for job, part in zip(jobs, sampled.per_complex(), strict=True)
    ]


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
    consensus_weight: float,
) -> DockingResult:
    """The ``S`` samples of one complex as ranked poses in the input frame.

    Parameters
    ----------
    job
        The complex.
    poses
        ``S`` tensors ``float[A, 3]`` in the protein-centred frame.
    confidences
        ``float[S]`` logits (``nan`` without a confidence model).
    token_nodes
        ``int64[S, K]`` nodes of :meth:`~discodock.model.latents.LatentAssignment.token_nodes`.
    consensus_weight
        Poses are sorted by decreasing :func:`~discodock.inference.ranking.rank_scores` of this weight,
        ``nan`` last, ties in sampling order.
    """
    stacked = torch.stack(list(poses)).double()
    neighbours = neighbour_counts(stacked)
    scores = rank_scores(confidences, neighbours, consensus_weight)
    order = sorted(range(len(poses)), key=lambda s: -scores[s].item() if scores[s].isfinite() else math.inf)
    center = job.features.center.astype(np.float64)
    docked = []
    for rank, sample in enumerate(order, start=1):
        tokens = tuple(_token_target(int(node), job) for node in token_nodes[sample])
        confidence = float(confidences[sample])
        mol = _pose_molecule(job, poses[sample].double().numpy() + center)
        mol.SetDoubleProp("confidence", confidence)
        mol.SetIntProp("consensus_neighbours", int(neighbours[sample]))
        mol.SetDoubleProp("rank_score", float(scores[sample]))
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
