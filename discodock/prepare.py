"""``discodock prepare``: featurize a folder of complexes into one cache file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from rdkit import Chem
from tqdm import tqdm

from discodock.data.cache import ComplexCache
from discodock.data.complex import ComplexData, featurize_complex
from discodock.data.layout import ComplexFiles, find_complexes, read_split
from discodock.data.ligand import read_ligand
from discodock.data.protein import read_protein
from discodock.errors import InputError


@dataclass
class PrepareReport:
    """Outcome of :func:`prepare_folder`."""

    prepared: list[ComplexData] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.prepared) + len(self.failures)


def read_first_readable_ligand(paths: tuple[Path, ...]) -> Chem.Mol:
    """The ligand of the first file RDKit can read; the first file's error if none can be read."""
    errors = []
    for path in paths:
        try:
            return read_ligand(path)
        except InputError as error:
            errors.append(error)
    raise errors[0]


def prepare_complex(files: ComplexFiles, seed: int = 0) -> ComplexData:
    """Read and featurize one complex (crystal ligand pose, torsion-matched conformer)."""
    protein = read_protein(files.protein_path)
    return featurize_complex(files.name, protein, read_first_readable_ligand(files.ligand_paths), seed=seed)


def _prepare_or_reason(files: ComplexFiles, seed: int) -> ComplexData | tuple[str, str]:
    """Worker: a featurized complex, or ``(name, one-line reason)``."""
    import torch

    torch.set_num_threads(1)
    try:
        return prepare_complex(files, seed)
    except InputError as error:
        return files.name, str(error)
    except Exception as error:  # a failure in one complex must not stop the others
        return files.name, f"unexpected {type(error).__name__}: {' '.join(str(error).split())}"


def _run(files: list[ComplexFiles], seed: int, workers: int) -> Iterator[ComplexData | tuple[str, str]]:
    if workers <= 1:
        yield from (_prepare_or_reason(f, seed) for f in files)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_prepare_or_reason, f, seed) for f in files]
        yield from (future.result() for future in as_completed(futures))


def prepare_folder(
    data_dir: str | Path,
    split_file: str | Path | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> PrepareReport:
    """Featurize every complex of ``data_dir`` (restricted to ``split_file`` if given).

    Parameters
    ----------
    data_dir
        Folder in one of the layouts of :mod:`discodock.data.layout`.
    split_file
        Optional file of IDs, one per line.
    seed
        Seed of conformer generation and torsion fitting.
    workers
        Worker processes (default: all CPU cores).
    progress
        Show a progress bar.

    Returns
    -------
    PrepareReport
        Prepared complexes sorted by name, and ``(name, reason)`` for the others.
    """
    split = read_split(split_file) if split_file is not None else None
    usable, unusable = find_complexes(data_dir, split)
    report = PrepareReport(failures=list(unusable))
    workers = workers or os.cpu_count() or 1
    results = _run(usable, seed, min(workers, max(len(usable), 1)))
    for result in tqdm(results, total=len(usable), desc="prepare", unit="complex", disable=not progress):
        if isinstance(result, ComplexData):
            report.prepared.append(result)
        else:
            report.failures.append(result)
    report.prepared.sort(key=lambda c: c.name)
    report.failures.sort()
    return report


def write_cache(report: PrepareReport, out: str | Path) -> ComplexCache:
    """Save the prepared complexes of ``report`` (with its failure list) as one cache file."""
    if not report.prepared:
        raise InputError(out, "no complex could be prepared, so no cache was written")
    cache = ComplexCache.from_complexes(report.prepared, report.failures)
    cache.save(out)
    return cache
