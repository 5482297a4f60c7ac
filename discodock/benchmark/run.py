"""Docking a benchmark set with trained networks, and the whole benchmark run (``discodock benchmark``).

Networks (:func:`run_models`): every usable complex is featurized once
(:meth:`~discodock.inference.docking.ComplexPreparer.prepare`, the crystal ligand's graph with a fresh
seeded ETKDG conformer, so the crystal pose never reaches the network), then **all** complexes × ``samples``
are docked in one :meth:`~discodock.inference.docking.DockingModel.run` (many complexes per device batch).
With ``pocket``, every complex is featurized a second time with ``pocket_center`` at the crystal ligand's
heavy-atom centroid (the information Vina's pocket box gets) and docked again as a separate method. The
featurized complexes are shared by all checkpoints (featurization does not depend on the networks).

Timing: featurization is timed on its own (CPU, wall clock); docking is the wall time of the batched run,
with the CUDA device synchronised before and after, and the peak allocated CUDA memory is recorded. If the
batched run raises, the complexes are docked one by one so that only the culprit fails (the time then
includes the failed attempt).

On a GPU machine without RDKit, Biopython and spyrmsd the networks run in three phases instead
(:mod:`discodock.benchmark.sample_inputs`), with the same featurization, sampling, timing and method names:

1. :func:`export_benchmark_inputs` (``--export-inputs FILE``, CPU machine): featurize, write the inputs file;
2. ``python -m discodock.benchmark.sample_inputs`` (GPU machine): sample, write one samples file per method;
3. :func:`import_samples` (``--import-samples DIR``, CPU machine): featurize again, check that the samples
   belong to these complexes, rank the poses (:func:`~discodock.inference.docking.ranked_results`) and
   report them with the GPU run's docking times and this run's featurization times.

For example (the PDBBind time split, from the repository root)::

    discodock benchmark --data-dir ../shared/data/dsdp_pdbbind_timesplit_test \
        --split ../shared/data/splits/timesplit_test --pocket --export-inputs .gpu/bench_inputs.pt
    # on the GPU machine:
    python3 -m discodock.benchmark.sample_inputs --inputs .gpu/bench_inputs.pt \
        --checkpoint checkpoints/disco_small --checkpoint checkpoints/nolatent_small --out $OUT
    # back on the CPU machine, with the samples files of $OUT in DIR:
    discodock benchmark --data-dir ../shared/data/dsdp_pdbbind_timesplit_test \
        --split ../shared/data/splits/timesplit_test --pocket --import-samples DIR \
        --vina pocket --vina-subset 40 --out benchmarks/results/pdbbind

The benchmark (:func:`run_benchmark`) loads the set
(:func:`~discodock.benchmark.complexes.load_benchmark_set`), runs the networks or imports their samples,
reads back methods of earlier runs (:func:`~discodock.benchmark.report.read_run_poses`), optionally runs the
Vina baseline (:mod:`discodock.benchmark.vina`) on a fixed seeded subset, and writes the report
(:func:`~discodock.benchmark.report.write_report`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from discodock.benchmark.complexes import (
    BenchmarkComplex,
    MethodRun,
    load_benchmark_set,
    seeded_subset,
)
from discodock.benchmark.sample_inputs import (
    VARIANT_SUFFIXES,
    BenchmarkInputs,
    MethodSamples,
    Timing,
    VariantInputs,
    isolating_failures,
    method_description,
    method_names,
    read_samples_folder,
    timed,
    variants_of,
    write_inputs,
)
from discodock.data.cache import ComplexCache
from discodock.data.layout import read_split
from discodock.errors import InputError, failure_reason
from discodock.inference.docking import (
    DEFAULT_CHECKPOINT,
    ComplexPreparer,
    DockingJob,
    DockingModel,
    DockingResult,
    SamplingOptions,
    ranked_results,
)

logger = logging.getLogger(__name__)

VinaMode = Literal["none", "pocket", "blind"]

BENCHMARK_PACKAGES = ("posebusters", "matplotlib")
"""Modules every benchmark run needs (the ``benchmark`` extra)."""

VINA_PACKAGES = ("vina", "meeko", "gemmi", "openbabel")
"""Modules the Vina baseline needs as well."""


@dataclass(frozen=True)
class BenchmarkSettings:
    """What one benchmark run does.

    Attributes
    ----------
    data_dir
        Folder of complexes (a layout of :mod:`discodock.data.layout`).
    split_file
        IDs of the complexes to dock.
    unseen_split_file
        IDs of the complexes whose receptors are unseen in training (metrics are also given on them).
    out_dir
        Output folder of the report, poses and cleaned receptors.
    checkpoints
        Checkpoint folders, one method each (``None``: the shipped checkpoint); empty for Vina only.
    options
        Sampling options of the networks (samples, steps, seed, ...).
    pocket
        Also dock with the pocket centre at the crystal ligand's centroid, as separate methods.
    vina
        Vina baseline: ``none``, ``pocket`` (box around the crystal ligand) or ``blind`` (whole protein).
    vina_subset
        Run Vina on this many complexes, drawn with ``options.seed`` (:func:`seeded_subset`); all if ``None``.
        Also defines the report's subset set when Vina's poses come from an earlier run (``earlier_runs``).
    posebusters_subset_only
        Run the PoseBusters checks only on the ``vina_subset`` complexes.
    vina_time_limit
        Seconds (wall clock) after which Vina is stopped on a complex, which then counts as failed.
    vina_workers
        Parallel Vina processes (one CPU core each); default all cores.
    device
        Device of the networks (default CUDA when available).
    earlier_runs
        Pose folders ``<results>/poses/<method>`` of earlier runs, scored again as methods of this one.
    posebusters
        Run the PoseBusters checks of the top-1 poses.
    posebusters_workers
        Processes that run them (one CPU core each; PoseBusters takes seconds per pose).
    imported_samples
        Folder of samples files (:mod:`discodock.benchmark.sample_inputs`) whose methods join this run.
    """

    data_dir: Path
    split_file: Path
    unseen_split_file: Path | None
    out_dir: Path
    checkpoints: tuple[Path | None, ...] = (None,)
    options: SamplingOptions = dataclasses.field(default_factory=SamplingOptions)
    pocket: bool = False
    vina: VinaMode = "none"
    vina_subset: int | None = None
    posebusters_subset_only: bool = False
    vina_time_limit: float | None = None
    vina_workers: int | None = None
    device: str | None = None
    earlier_runs: tuple[Path, ...] = ()
    posebusters: bool = True
    posebusters_workers: int = 1
    imported_samples: Path | None = None


@dataclass(frozen=True)
class PreparedComplexes:
    """Featurized complexes of one variant (blind or pocket).

    Attributes
    ----------
    jobs
        One per complex that featurized.
    failures
        One-line reason per complex that did not.
    seconds
        Wall time of the featurization of all complexes.
    """

    jobs: tuple[DockingJob, ...]
    failures: dict[str, str]
    seconds: float


def missing_packages(vina: VinaMode) -> list[str]:
    """The modules of :data:`BENCHMARK_PACKAGES` (and :data:`VINA_PACKAGES` with Vina) not installed."""
    wanted = BENCHMARK_PACKAGES + (VINA_PACKAGES if vina != "none" else ())
    return [module for module in wanted if importlib.util.find_spec(module) is None]


def prepare_complexes(
    preparer: ComplexPreparer,
    complexes: Sequence[BenchmarkComplex],
    *,
    pocket: bool,
    seed: int,
    progress: bool = True,
) -> PreparedComplexes:
    """Featurize every complex (crystal ligand graph, seeded ETKDG conformer), timing the whole.

    Parameters
    ----------
    preparer
        Featurizes (and caches receptors), e.g. a :class:`~discodock.inference.docking.DockingModel`.
    complexes
        The benchmark complexes.
    pocket
        Centre the translation prior (and the receptor pocket) on the crystal ligand's centroid.
    seed
        Seed of the conformers.
    progress
        Show a progress bar.
    """
    jobs = []
    failures = {}
    start = time.perf_counter()
    label = "featurize (pocket)" if pocket else "featurize"
    for complex_ in tqdm(complexes, desc=label, unit="complex", disable=not progress):
        try:
            jobs.append(
                preparer.prepare(
                    complex_.protein_path,
                    complex_.crystal_ligand,
                    name=complex_.name,
                    pocket_center=complex_.pocket_center if pocket else None,
                    seed=seed,
                )
            )
        except Exception as error:  # one bad complex must not stop the benchmark
            failures[complex_.name] = failure_reason(error)
    return PreparedComplexes(tuple(jobs), failures, time.perf_counter() - start)


def prepare_variants(
    complexes: Sequence[BenchmarkComplex], *, pocket: bool, seed: int, progress: bool = True
) -> dict[str, PreparedComplexes]:
    """The complexes featurized blind, and with ``pocket`` also with the pocket centre given (by variant)."""
    preparer = ComplexPreparer()
    return {
        variant: prepare_complexes(
            preparer, complexes, pocket=variant == "pocket", seed=seed, progress=progress
        )
        for variant in variants_of(pocket)
    }


def dock_prepared(
    model: DockingModel,
    name: str,
    description: str,
    complexes: Sequence[BenchmarkComplex],
    prepared: PreparedComplexes,
    options: SamplingOptions,
) -> MethodRun:
    """Dock prepared complexes in one batched run and collect the ranked poses.

    Returns
    -------
    MethodRun
        Poses ``float64[S, N, 3]`` (confidence order; sampling order when unranked) and confidences.
    """
    jobs = list(prepared.jobs)
    (results, failures), timing = timed(
        model.device,
        lambda: isolating_failures(
            lambda indices: model.run([jobs[i] for i in indices], options), [job.name for job in jobs]
        ),
    )
    return method_run(
        name, description, complexes, prepared, list(results.values()), failures, timing, options
    )


def ranking_description(consensus_weight: float) -> str:
    """How the networks' poses are ranked, for the report (:mod:`discodock.inference.ranking`)."""
    if consensus_weight == 0:
        return "confidence"
    return f"confidence + {consensus_weight:g} × consensus of the samples (z-scores; neighbours within 2 Å)"


def method_run(
    name: str,
    description: str,
    complexes: Sequence[BenchmarkComplex],
    prepared: PreparedComplexes,
    results: Sequence[DockingResult],
    failures: dict[str, str],
    timing: Timing,
    options: SamplingOptions,
) -> MethodRun:
    """The method of ranked results: poses ``float64[S, N, 3]`` and confidences per docked complex.

    Parameters
    ----------
    name, description
        The method's name and line in the report.
    complexes
        Every complex of the benchmark (all attempted).
    prepared
        Their featurization (its failures and time).
    results
        The docked complexes.
    failures
        One-line reason per complex whose docking failed.
    timing
        The docking run's time, hardware and peak GPU memory.
    options
        The options the results were ranked with (``consensus_weight``).
    """
    positions = {
        result.name: np.stack([pose.mol.GetConformer().GetPositions() for pose in result.poses])
        for result in results
    }
    scores = {result.name: np.array([pose.confidence for pose in result.poses]) for result in results}
    return MethodRun(
        name=name,
        description=description,
        attempted=tuple(complex_.name for complex_ in complexes),
        positions=positions,
        scores=scores,
        score_name="confidence",
        ranked=bool(results) and all(result.ranked for result in results),
        ranked_by=ranking_description(options.consensus_weight),
        failures={**prepared.failures, **failures},
        preparation_seconds=prepared.seconds,
        docking_seconds=timing.seconds,
        hardware=timing.hardware,
        peak_gpu_memory_bytes=timing.peak_gpu_memory_bytes,
    )


def run_models(
    checkpoints: Sequence[Path | None],
    complexes: Sequence[BenchmarkComplex],
    options: SamplingOptions,
    *,
    pocket: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> list[MethodRun]:
    """Dock every complex with each checkpoint (and each with the pocket centre given, if ``pocket``).

    Returns
    -------
    list of MethodRun
        Per checkpoint the blind method ``<name>``, then ``<name>-pocket`` if ``pocket``.
    """
    models = [DockingModel.load(checkpoint, device=device) for checkpoint in checkpoints]
    variants = prepare_variants(complexes, pocket=pocket, seed=options.seed, progress=progress)
    runs = []
    for model, checkpoint, name in zip(models, checkpoints, method_names(checkpoints), strict=True):
        for variant, prepared in variants.items():
            method = name + VARIANT_SUFFIXES[variant]
            description = method_description(checkpoint, model.networks.resolved(options), variant)
            logger.info("docking %d complexes with %s", len(prepared.jobs), method)
            runs.append(dock_prepared(model, method, description, complexes, prepared, options))
    return runs


def variant_inputs(jobs: Sequence[DockingJob], seconds: float) -> VariantInputs:
    """The GPU phase's inputs of featurized jobs: their complexes, prior centres and featurization seconds."""
    return VariantInputs(
        ComplexCache.from_complexes([job.features for job in jobs]),
        torch.as_tensor(np.stack([job.prior_center for job in jobs])),
        seconds,
    )


def export_benchmark_inputs(
    data_dir: Path,
    split_file: Path,
    path: Path,
    options: SamplingOptions,
    *,
    pocket: bool = False,
    progress: bool = True,
) -> BenchmarkInputs:
    """Featurize the benchmark set as :func:`run_models` does and write the inputs file of the GPU phase.

    Parameters
    ----------
    data_dir, split_file
        The benchmark set (:func:`~discodock.benchmark.complexes.load_benchmark_set`).
    path
        The inputs file to write (:func:`~discodock.benchmark.sample_inputs.write_inputs`).
    options
        Sampling options (the seed featurizes; all are stored for the GPU phase).
    pocket
        Also the variant with the pocket centre given.
    progress
        Show progress bars.

    Raises
    ------
    InputError
        Missing data folder or split file, no usable complex, or a variant where no complex featurizes.
    """
    with tempfile.TemporaryDirectory() as receptors:  # cleaned receptors are for the report only
        benchmark = load_benchmark_set(data_dir, split_file, receptors)
        variants = prepare_variants(benchmark.complexes, pocket=pocket, seed=options.seed, progress=progress)
    exported = {}
    for variant, prepared in variants.items():
        if not prepared.jobs:
            raise InputError(split_file, f"no complex could be featurized ({variant})")
        exported[variant] = variant_inputs(prepared.jobs, prepared.seconds)
    inputs = BenchmarkInputs(options, exported)
    write_inputs(inputs, path)
    return inputs


def import_samples(
    folder: Path,
    complexes: Sequence[BenchmarkComplex],
    options: SamplingOptions,
    *,
    pocket: bool = False,
    progress: bool = True,
) -> list[MethodRun]:
    """The methods of the samples files in ``folder``, ranked against these complexes featurized again.

    The complexes are featurized as for :func:`export_benchmark_inputs` (same seed), and the poses ranked by
    :func:`~discodock.inference.docking.ranked_results`; docking times come from the samples files,
    featurization times from this run.

    Raises
    ------
    InputError
        No samples file, other variants than this run's (``pocket``), other sampling options (except the
        batch size), or samples of other complexes (names, ligand atoms, receptor-graph residues).
    """
    files = read_samples_folder(folder)
    expected = variants_of(pocket)
    found = sorted({samples.variant for _, samples in files})
    if found != sorted(expected):
        flag = "with" if pocket else "without"
        raise InputError(
            folder,
            f"has samples of the variants {', '.join(found)}; this run {flag} --pocket needs "
            f"{', '.join(expected)}",
        )
    variants = prepare_variants(complexes, pocket=pocket, seed=options.seed, progress=progress)
    runs = []
    for path, samples in files:
        prepared = variants[samples.variant]
        _check_samples(path, samples, prepared.jobs, options)
        jobs = {job.name: job for job in prepared.jobs}
        sampled_jobs = [jobs[name] for name in samples.sampled]
        results = ranked_results(sampled_jobs, samples.poses, options.consensus_weight)
        runs.append(
            method_run(
                samples.method,
                samples.description,
                complexes,
                prepared,
                results,
                samples.failures,
                samples.timing,
                options,
            )
        )
    return runs


def run_benchmark(settings: BenchmarkSettings, progress: bool = True) -> dict[str, object]:
    """Run the networks and the Vina baseline on the benchmark set and write the report.

    Returns
    -------
    dict
        The content of ``results.json`` (:func:`~discodock.benchmark.report.write_report`).

    Raises
    ------
    InputError
        Missing data folder or split files, no usable complex, unloadable checkpoint.
    """
    from discodock.benchmark.report import read_run_poses, write_report

    benchmark = load_benchmark_set(settings.data_dir, settings.split_file, settings.out_dir / "receptors")
    unseen = None
    if settings.unseen_split_file is not None:
        unseen_ids = {name.lower() for name in read_split(settings.unseen_split_file)}
        unseen = [name for name in benchmark.names if name.lower() in unseen_ids]
    runs: list[MethodRun] = []
    if settings.checkpoints:
        runs += run_models(
            settings.checkpoints,
            benchmark.complexes,
            settings.options,
            pocket=settings.pocket,
            device=settings.device,
            progress=progress,
        )
    if settings.imported_samples is not None:
        runs += import_samples(
            settings.imported_samples,
            benchmark.complexes,
            settings.options,
            pocket=settings.pocket,
            progress=progress,
        )
    complexes = {complex_.name: complex_ for complex_ in benchmark.complexes}
    runs += [read_run_poses(folder, complexes) for folder in settings.earlier_runs]
    vina_names = seeded_subset(benchmark.names, settings.vina_subset, settings.options.seed)
    vina_subset = vina_names if len(vina_names) < len(benchmark.names) else None
    if settings.vina != "none":
        from discodock.benchmark.vina import run_vina

        chosen = set(vina_names)
        runs.append(
            run_vina(
                [complex_ for complex_ in benchmark.complexes if complex_.name in chosen],
                settings.vina,
                settings.out_dir / "vina",
                seed=settings.options.seed,
                workers=settings.vina_workers,
                time_limit=settings.vina_time_limit,
                progress=progress,
            )
        )
    names = [run.name for run in runs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(settings.out_dir, f"two methods are named {', '.join(repeated)}")
    return write_report(
        benchmark,
        runs,
        settings.out_dir,
        settings=settings_record(settings),
        unseen=unseen,
        subset=vina_subset,
        posebusters=settings.posebusters,
        posebusters_subset_only=settings.posebusters_subset_only,
        posebusters_workers=settings.posebusters_workers,
        progress=progress,
    )


def _check_samples(
    path: Path, samples: MethodSamples, jobs: Sequence[DockingJob], options: SamplingOptions
) -> None:
    """Raise :class:`InputError` (one line) unless ``samples`` were sampled from ``jobs`` with ``options``.

    ``options.temperatures = None`` (each checkpoint's tuned ones) accepts the samples' temperatures; the
    batch size and the ranking (``consensus_weight``) do not matter.
    """
    ignored = {"graphs_per_batch": None, "consensus_weight": 0.0}
    sampled = dataclasses.asdict(dataclasses.replace(samples.options, **ignored))
    wanted = dataclasses.asdict(dataclasses.replace(options, **ignored))
    differing = [
        key
        for key in wanted
        if sampled[key] != wanted[key] and not (key == "temperatures" and wanted[key] is None)
    ]
    if differing:
        raise InputError(
            path,
            "sampled with "
            + ", ".join(f"{key}={sampled[key]}" for key in differing)
            + ", this run has "
            + ", ".join(f"{key}={wanted[key]}" for key in differing),
        )
    names = [job.name for job in jobs]
    if list(samples.complexes) != names:
        unknown = sorted(set(samples.complexes) ^ set(names))
        raise InputError(
            path,
            f"samples of {len(samples.complexes)} complexes, this run featurized {len(names)}; they differ "
            f"in {', '.join(unknown[:5]) or 'order'}{' ...' if len(unknown) > 5 else ''}",
        )
    for key, sizes in (
        ("atoms", [job.features.num_atoms for job in jobs]),
        ("residues", [job.features.num_residues for job in jobs]),
    ):
        differ = [
            name for name, a, b in zip(names, getattr(samples, key).tolist(), sizes, strict=True) if a != b
        ]
        if differ:
            raise InputError(
                path,
                f"{key} differ from this run's featurization in {len(differ)} complexes, e.g. {differ[0]}",
            )


def settings_record(settings: BenchmarkSettings) -> dict[str, object]:
    """The settings as JSON values (paths as strings, sampling options flattened)."""
    record = {
        "data_dir": str(settings.data_dir),
        "split_file": str(settings.split_file),
        "unseen_split_file": None if settings.unseen_split_file is None else str(settings.unseen_split_file),
        "checkpoints": [str(DEFAULT_CHECKPOINT if c is None else c) for c in settings.checkpoints],
        "pocket": settings.pocket,
        "vina": settings.vina,
        "vina_subset": settings.vina_subset,
        "device": settings.device,
        "earlier_runs": [str(folder) for folder in settings.earlier_runs],
        "posebusters": settings.posebusters,
        "posebusters_subset_only": settings.posebusters_subset_only,
        "vina_time_limit": settings.vina_time_limit,
        "imported_samples": None if settings.imported_samples is None else str(settings.imported_samples),
    }
    return {**record, **dataclasses.asdict(settings.options)}
