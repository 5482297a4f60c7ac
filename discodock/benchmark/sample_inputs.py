"""Sampling the networks' poses of a benchmark on a machine without RDKit (the GPU phase), and its files.

The networks' part of ``discodock benchmark`` can run in three phases, so that the docking runs on a GPU
machine that has neither RDKit, Biopython nor spyrmsd (nor room for the raw data):

1. ``discodock benchmark ... --export-inputs FILE`` (CPU machine) featurizes the set exactly as the direct
   run does and writes the **inputs file** (:func:`write_inputs`): per variant (``blind``, and ``pocket``
   with ``--pocket``) the featurized complexes as a :class:`~discodock.data.cache.ComplexCache` payload
   (float32 kept, so nothing is rounded), the translation prior centres ``float32[C, 3]`` and the
   featurization seconds, plus the sampling options.
2. ``python -m discodock.benchmark.sample_inputs --inputs FILE --checkpoint DIR [...] --out OUTDIR``
   (:func:`main`, GPU machine; this module imports nothing that needs RDKit, Biopython or spyrmsd) samples
   every complex of each variant with each checkpoint in one batched run
   (:meth:`~discodock.inference.networks.DockingNetworks.sample`; if it raises, complex by complex so that
   only the culprit fails), timed as the direct run is (:func:`timed`), and writes one **samples file**
   ``OUTDIR/<method>.samples.pt`` per method (:func:`write_samples`), named as the direct run names its
   methods (:func:`method_names`; ``<name>`` blind, ``<name>-pocket``).
3. ``discodock benchmark ... --import-samples OUTDIR`` (CPU machine) featurizes the set again (same seeds,
   same complexes), checks that the samples belong to them, ranks the poses and writes the usual report
   (:func:`discodock.benchmark.run.import_samples`).

For the same seed, device and batch size the poses are those of the direct run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from discodock.data.cache import COUNT_COLUMNS, ComplexCache
from discodock.data.layout import safe_name
from discodock.errors import InputError, failure_reason
from discodock.inference.networks import (
    DEFAULT_CHECKPOINT,
    TEMPERATURE_PRESETS,
    DockingNetworks,
    SampledPoses,
    SamplingOptions,
    describe_temperatures,
)

logger = logging.getLogger(__name__)

Result = TypeVar("Result")

INPUTS_FORMAT = "discodock benchmark inputs"
SAMPLES_FORMAT = "discodock benchmark samples"
FORMAT_VERSION = 1

SAMPLES_SUFFIX = ".samples.pt"
"""File name ending of a samples file (after the method name)."""

VARIANT_SUFFIXES = {"blind": "", "pocket": "-pocket"}
"""Variant of the featurization → suffix of the method name."""


@dataclass(frozen=True)
class VariantInputs:
    """The featurized complexes of one variant.

    Attributes
    ----------
    cache
        ``C`` featurized complexes (no crystal pose), named as the benchmark complexes.
    prior_centers
        ``float32[C, 3]``: centre of each complex's translation prior in its frame.
    seconds
        Wall time of their featurization.
    """

    cache: ComplexCache
    prior_centers: torch.Tensor
    seconds: float


@dataclass(frozen=True)
class BenchmarkInputs:
    """What the GPU phase samples.

    Attributes
    ----------
    options
        Sampling options of the benchmark run.
    variants
        ``blind`` and, with ``--pocket``, ``pocket``.
    """

    options: SamplingOptions
    variants: dict[str, VariantInputs]


@dataclass(frozen=True)
class Timing:
    """How long a batched run took, and where.

    Attributes
    ----------
    seconds
        Wall time (CUDA synchronised before and after).
    hardware
        E.g. ``cuda:0 (NVIDIA H200)`` or ``cpu (2 threads)``.
    peak_gpu_memory_bytes
        Peak allocated CUDA memory during the run; ``None`` off the GPU.
    """

    seconds: float
    hardware: str
    peak_gpu_memory_bytes: int | None


@dataclass(frozen=True)
class MethodSamples:
    """The sampled poses of one method (one checkpoint, one variant).

    Attributes
    ----------
    method
        Method name (:func:`method_names` and the variant's suffix).
    position
        Place of the method in the run (the order of the report).
    variant
        ``blind`` or ``pocket``.
    checkpoint
        The checkpoint folder as given.
    description
        The method's line in the report (:func:`method_description`).
    options
        The sampling options used.
    complexes
        Names of the ``C`` complexes given to the networks, in order.
    atoms, residues
        ``int64[C]``: ligand atoms and receptor-graph residues of each of them.
    sampled
        Names of the complexes that were sampled, in order.
    poses
        Their samples.
    failures
        One-line reason per complex whose sampling failed.
    timing
        The batched run's time.
    """

    method: str
    position: int
    variant: str
    checkpoint: str
    description: str
    options: SamplingOptions
    complexes: tuple[str, ...]
    atoms: torch.Tensor
    residues: torch.Tensor
    sampled: tuple[str, ...]
    poses: SampledPoses
    failures: dict[str, str]
    timing: Timing


def variants_of(pocket: bool) -> list[str]:
    """The variants of a run: ``blind``, and ``pocket`` if ``pocket``."""
    return ["blind", "pocket"] if pocket else ["blind"]


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


def method_description(checkpoint: Path | None, options: SamplingOptions, variant: str) -> str:
    """One line: checkpoint folder, samples, steps, temperatures and where the translation prior centres."""
    folder = Path(DEFAULT_CHECKPOINT if checkpoint is None else checkpoint)
    where = (
        f"pocket centre at the crystal ligand centroid (prior spread {options.pocket_sigma:g} Å)"
        if variant == "pocket"
        else "blind (whole protein)"
    )
    return (
        f"checkpoint {folder}, {options.samples} samples, {options.steps} steps, "
        f"temperatures {describe_temperatures(options.temperatures)}, {where}"
    )


def hardware_name(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def timed(device: torch.device, work: Callable[[], Result]) -> tuple[Result, Timing]:
    """``work()``, timed with CUDA synchronised before and after and the peak CUDA memory recorded."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return result, Timing(seconds, hardware_name(device), peak)


def isolating_failures(
    work: Callable[[list[int]], list[Result]], names: Sequence[str]
) -> tuple[dict[str, Result], dict[str, str]]:
    """``work`` on all items ``0..C−1`` at once; if it raises, on each item alone, so that only the
    failing items fail.

    Parameters
    ----------
    work
        Maps item indices to one result per index, in order.
    names
        The ``C`` item names.

    Returns
    -------
    results
        Result per item that succeeded, by name, in item order.
    failures
        One-line reason (:func:`~discodock.errors.failure_reason`) per item that failed.
    """
    results: dict[str, Result] = {}
    failures: dict[str, str] = {}

    def attempt(indices: list[int]) -> None:
        try:
            done = work(indices)
        except Exception as error:  # isolate the item that broke the batch
            if len(indices) == 1:
                failures[names[indices[0]]] = failure_reason(error)
                return
            logger.warning(
                "batched docking failed (%s); docking one complex at a time", failure_reason(error)
            )
            for index in indices:
                attempt([index])
            return
        results.update(zip((names[i] for i in indices), done, strict=True))

    attempt(list(range(len(names))))
    return results, failures


def sample_variant(
    networks: DockingNetworks,
    inputs: VariantInputs,
    options: SamplingOptions,
    *,
    method: str,
    position: int,
    variant: str,
    checkpoint: Path | None,
) -> MethodSamples:
    """Sample every complex of ``inputs`` in one timed batched run (complex by complex if it raises)."""
    cache = inputs.cache
    options = networks.resolved(options)

    def sample(indices: list[int]) -> list[SampledPoses]:
        subset = cache.subset(indices)
        pocket = torch.full((len(indices),), variant == "pocket")
        return networks.sample(subset, inputs.prior_centers[indices], options, pocket).per_complex()

    (done, failures), timing = timed(networks.device, lambda: isolating_failures(sample, cache.names))
    counts = cache.counts.cpu()
    return MethodSamples(
        method=method,
        position=position,
        variant=variant,
        checkpoint=str(DEFAULT_CHECKPOINT if checkpoint is None else checkpoint),
        description=method_description(checkpoint, options, variant),
        options=options,
        complexes=tuple(cache.names),
        atoms=counts[:, COUNT_COLUMNS.index("atoms")],
        residues=counts[:, COUNT_COLUMNS.index("residues")],
        sampled=tuple(done),
        poses=SampledPoses.concatenate(list(done.values()), options.samples, networks.num_tokens),
        failures=failures,
        timing=timing,
    )


def write_inputs(inputs: BenchmarkInputs, path: str | Path) -> None:
    """Write the inputs file (one ``torch.save`` of plain tensors, lists and dicts; see the module)."""
    payload = {
        "format": INPUTS_FORMAT,
        "version": FORMAT_VERSION,
        "options": dataclasses.asdict(inputs.options),
        "variants": {
            variant: {
                "cache": variant_inputs.cache.payload(exact=True),
                "prior_centers": variant_inputs.prior_centers.float().cpu(),
                "seconds": variant_inputs.seconds,
            }
            for variant, variant_inputs in inputs.variants.items()
        },
    }
    _save(payload, Path(path))


def read_inputs(path: str | Path) -> BenchmarkInputs:
    """The inputs file of :func:`write_inputs`.

    Raises
    ------
    InputError
        If the file is missing or not an inputs file of this format version.
    """
    path = Path(path)
    payload = _load(path, INPUTS_FORMAT)
    variants = {
        variant: VariantInputs(
            ComplexCache.from_payload(record["cache"], path), record["prior_centers"], record["seconds"]
        )
        for variant, record in payload["variants"].items()
    }
    return BenchmarkInputs(SamplingOptions.from_dict(payload["options"]), variants)


def write_samples(samples: MethodSamples, folder: str | Path) -> Path:
    """Write ``folder/<method>.samples.pt`` (plain tensors, lists and dicts) and return its path."""
    poses = samples.poses
    payload = {
        "format": SAMPLES_FORMAT,
        "version": FORMAT_VERSION,
        **{
            key: getattr(samples, key)
            for key in ("method", "position", "variant", "checkpoint", "description", "failures")
        },
        "options": dataclasses.asdict(samples.options),
        "complexes": list(samples.complexes),
        "atoms": samples.atoms,
        "residues": samples.residues,
        "sampled": list(samples.sampled),
        "poses": {
            "poses": poses.poses,
            "atoms": poses.atoms,
            "confidences": poses.confidences,
            "token_nodes": poses.token_nodes,
            "samples": poses.samples,
        },
        "timing": dataclasses.asdict(samples.timing),
    }
    path = Path(folder) / f"{samples.method}{SAMPLES_SUFFIX}"
    _save(payload, path)
    return path


def read_samples(path: str | Path) -> MethodSamples:
    """The samples file of :func:`write_samples`.

    Raises
    ------
    InputError
        If the file is missing or not a samples file of this format version.
    """
    payload = _load(Path(path), SAMPLES_FORMAT)
    return MethodSamples(
        **{
            key: payload[key]
            for key in ("method", "position", "variant", "checkpoint", "description", "failures")
        },
        options=SamplingOptions.from_dict(payload["options"]),
        complexes=tuple(payload["complexes"]),
        atoms=payload["atoms"],
        residues=payload["residues"],
        sampled=tuple(payload["sampled"]),
        poses=SampledPoses(**payload["poses"]),
        timing=Timing(**payload["timing"]),
    )


def read_samples_folder(folder: str | Path) -> list[tuple[Path, MethodSamples]]:
    """Every samples file of ``folder`` with its path, in the order of the run that wrote them.

    Raises
    ------
    InputError
        If the folder has no samples file, or one is unreadable.
    """
    folder = Path(folder)
    paths = sorted(folder.glob(f"*{SAMPLES_SUFFIX}")) if folder.is_dir() else []
    if not paths:
        raise InputError(folder, f"no samples files (*{SAMPLES_SUFFIX}) in this folder")
    files = [(path, read_samples(path)) for path in paths]
    return sorted(files, key=lambda file: file[1].position)


def _save(payload: dict[str, Any], path: Path) -> None:
    """``torch.save`` to ``path`` atomically (temporary file, then rename), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)


def _load(path: Path, kind: str) -> dict[str, Any]:
    """The payload of a file of format ``kind`` written by :func:`_save`, or :class:`InputError`."""
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file
        raise InputError(path, f"not a {kind} file ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != kind:
        raise InputError(path, f"not a {kind} file")
    if payload.get("version") != FORMAT_VERSION:
        raise InputError(path, f"{kind} of format version {payload.get('version')}, not {FORMAT_VERSION}")
    return payload


def main(argv: Sequence[str] | None = None) -> None:
    """Sample an inputs file with each checkpoint and write one samples file per method (see the module).

    Prints one line per method; bad input is one ``error: ...`` line on standard error and exit status 1.
    """
    parser = argparse.ArgumentParser(
        prog="python -m discodock.benchmark.sample_inputs",
        description="Sample the complexes of a benchmark inputs file (discodock benchmark --export-inputs) "
        "with one or more checkpoints; no RDKit needed.",
    )
    parser.add_argument("--inputs", required=True, type=Path, help="Inputs file of --export-inputs.")
    parser.add_argument(
        "--checkpoint",
        dest="checkpoints",
        action="append",
        type=Path,
        help="Checkpoint folder, one method each; repeat for several [default: the shipped one].",
    )
    parser.add_argument("--out", required=True, type=Path, help="Folder of the samples files.")
    parser.add_argument("--device", help="cuda, cuda:1 or cpu [default: cuda if available].")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="Graphs per device batch [default: the inputs file's, else from free GPU memory].",
    )
    parser.add_argument(
        "--variant",
        dest="variants",
        action="append",
        choices=tuple(VARIANT_SUFFIXES),
        help="Sample only this variant (repeatable; e.g. to split the work over two calls) [default: all "
        "of the inputs file].",
    )
    parser.add_argument(
        "--temperatures",
        choices=tuple(TEMPERATURE_PRESETS),
        help="Sampling temperatures (tuned: each checkpoint's sampling.json) [default: the inputs file's].",
    )
    parser.add_argument(
        "--pocket-sigma",
        type=float,
        help="Å, spread of the pocket variant's translation prior [default: the inputs file's].",
    )
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.pocket_sigma is not None and not args.pocket_sigma > 0:
        parser.error("--pocket-sigma must be a positive number of Å")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    checkpoints: list[Path | None] = args.checkpoints or [None]
    try:
        inputs = read_inputs(args.inputs)
        options = inputs.options
        if args.batch_size is not None:
            options = dataclasses.replace(options, graphs_per_batch=args.batch_size)
        if args.temperatures is not None:
            options = dataclasses.replace(options, temperatures=TEMPERATURE_PRESETS[args.temperatures])
        if args.pocket_sigma is not None:
            options = dataclasses.replace(options, pocket_sigma=args.pocket_sigma)
        missing = sorted(set(args.variants or ()) - set(inputs.variants))
        if missing:
            present = ", ".join(inputs.variants)
            raise InputError(args.inputs, f"has no {missing[0]} variant (it has {present})")
        position = -1
        for checkpoint, name in zip(checkpoints, method_names(checkpoints), strict=True):
            networks = DockingNetworks.load(checkpoint, device=args.device)
            for variant, variant_inputs in inputs.variants.items():
                position += 1  # as if every variant were sampled, so that split runs merge in order
                if args.variants and variant not in args.variants:
                    continue
                method = name + VARIANT_SUFFIXES[variant]
                samples = sample_variant(
                    networks,
                    variant_inputs,
                    options,
                    method=method,
                    position=position,
                    variant=variant,
                    checkpoint=checkpoint,
                )
                path = write_samples(samples, args.out)
                timing = samples.timing
                memory = timing.peak_gpu_memory_bytes
                print(
                    f"{method}: {len(samples.sampled)}/{len(samples.complexes)} complexes × "
                    f"{options.samples} samples in {timing.seconds:.1f} s "
                    f"({timing.seconds / len(samples.complexes):.3f} s/complex) on {timing.hardware}"
                    + ("" if memory is None else f", peak {memory / 2**30:.2f} GiB")
                    + f"; {path}",
                    flush=True,
                )
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
