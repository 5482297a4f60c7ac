"""Docking a benchmark set with trained networks, and the whole benchmark run (``discodock benchmark``).

Networks (:func:`run_models`): every usable complex is featurized once
(:meth:`~discodock.inference.docking.DockingModel.prepare`, the crystal ligand's graph with a fresh seeded
ETKDG conformer, so the crystal pose never reaches the network), then **all** complexes × ``samples`` are
docked in one :meth:`~discodock.inference.docking.DockingModel.run` (many complexes per device batch). With
``pocket``, every complex is featurized a second time with ``pocket_center`` at the crystal ligand's
heavy-atom centroid (the information Vina's pocket box gets) and docked again as a separate method. The
featurized complexes are shared by all checkpoints (featurization does not depend on the networks).

Timing: featurization is timed on its own (CPU, wall clock); docking is the wall time of the batched run,
with the CUDA device synchronised before and after, and the peak allocated CUDA memory is recorded. If the
batched run raises, the complexes are docked one by one so that only the culprit fails (the time then
includes the failed attempt).

The benchmark (:func:`run_benchmark`) loads the set
(:func:`~discodock.benchmark.complexes.load_benchmark_set`), runs the networks, reads back methods of earlier
runs (:func:`~discodock.benchmark.report.read_run_poses`), optionally runs the Vina baseline
(:mod:`discodock.benchmark.vina`) on a fixed seeded subset, and writes the report
(:func:`~discodock.benchmark.report.write_report`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
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
    failure_reason,
    load_benchmark_set,
    seeded_subset,
)
from discodock.data.layout import read_split
from discodock.errors import InputError
from discodock.inference.docking import (
    DEFAULT_CHECKPOINT,
    DockingJob,
    DockingModel,
    DockingResult,
    SamplingOptions,
)
from discodock.inference.predict import safe_name

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
    vina_workers
        Parallel Vina processes (one CPU core each); default all cores.
    device
        Device of the networks (default CUDA when available).
    earlier_runs
        Pose folders ``<results>/poses/<method>`` of earlier runs, scored again as methods of this one.
    posebusters
        Run the PoseBusters checks of the top-1 poses.
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
    vina_workers: int | None = None
    device: str | None = None
    earlier_runs: tuple[Path, ...] = ()
    posebusters: bool = True


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


def method_names(checkpoints: Sequence[Path | None]) -> list[str]:
    """A unique, folder-safe method name per checkpoint: its folder name, ``-2``, ``-3`` ... on repeats."""
    names: list[str] = []
    for checkpoint in checkpoints:
        base = safe_name(Path(DEFAULT_CHECKPOINT if checkpoint is None else checkpoint).resolve().name)
        name, copy = base, 1
        while name in names:
            copy += 1
            name = f"{base}-{copy}"
        names.append(name)
    return names


def prepare_complexes(
    model: DockingModel,
    complexes: Sequence[BenchmarkComplex],
    *,
    pocket: bool,
    seed: int,
    progress: bool = True,
) -> PreparedComplexes:
    """Featurize every complex (crystal ligand graph, seeded ETKDG conformer), timing the whole.

    Parameters
    ----------
    model
        Featurizes (and caches receptors); the result does not depend on its networks.
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
                model.prepare(
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
    device = model.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    results, failures = _dock_isolating_failures(model, list(prepared.jobs), options)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
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
        failures={**prepared.failures, **failures},
        preparation_seconds=prepared.seconds,
        docking_seconds=seconds,
        hardware=_hardware(device),
        peak_gpu_memory_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
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
    variants = {
        "": prepare_complexes(models[0], complexes, pocket=False, seed=options.seed, progress=progress)
    }
    if pocket:
        variants["-pocket"] = prepare_complexes(
            models[0], complexes, pocket=True, seed=options.seed, progress=progress
        )
    runs = []
    for model, checkpoint, name in zip(models, checkpoints, method_names(checkpoints), strict=True):
        folder = Path(DEFAULT_CHECKPOINT if checkpoint is None else checkpoint)
        for suffix, prepared in variants.items():
            where = "pocket centre at the crystal ligand centroid" if suffix else "blind (whole protein)"
            description = f"checkpoint {folder}, {options.samples} samples, {options.steps} steps, {where}"
            logger.info("docking %d complexes with %s%s", len(prepared.jobs), name, suffix)
            runs.append(dock_prepared(model, name + suffix, description, complexes, prepared, options))
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
    complexes = {complex_.name: complex_ for complex_ in benchmark.complexes}
    runs += [read_run_poses(folder, complexes) for folder in settings.earlier_runs]
    vina_subset = None
    if settings.vina != "none":
        from discodock.benchmark.vina import run_vina

        vina_names = seeded_subset(benchmark.names, settings.vina_subset, settings.options.seed)
        if len(vina_names) < len(benchmark.names):
            vina_subset = vina_names
        chosen = set(vina_names)
        runs.append(
            run_vina(
                [complex_ for complex_ in benchmark.complexes if complex_.name in chosen],
                settings.vina,
                settings.out_dir / "vina",
                seed=settings.options.seed,
                workers=settings.vina_workers,
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
        progress=progress,
    )


def _dock_isolating_failures(
    model: DockingModel, jobs: list[DockingJob], options: SamplingOptions
) -> tuple[list[DockingResult], dict[str, str]]:
    """``model.run(jobs)``; if it raises, each job alone, so that only the failing complexes fail."""
    try:
        return model.run(jobs, options), {}
    except Exception as error:  # isolate the complex that broke the batch
        if len(jobs) == 1:
            return [], {jobs[0].name: failure_reason(error)}
        logger.warning("batched docking failed (%s); docking one complex at a time", failure_reason(error))
    results: list[DockingResult] = []
    failures: dict[str, str] = {}
    for job in jobs:
        docked, failed = _dock_isolating_failures(model, [job], options)
        results += docked
        failures.update(failed)
    return results, failures


def _hardware(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


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
    }
    return {**record, **dataclasses.asdict(settings.options)}
