"""``discodock predict``: dock a list of complexes into an output folder, skipping finished ones.

The inputs are :class:`PredictItem` s, from a DiffDock-style CSV (:func:`read_items_csv`, columns
``complex_name,protein_path,ligand_description``) or from one receptor and a ligand source
(:func:`single_items`). :func:`predict` goes through them in order:

* an item whose folder ``OUT/<name>/`` already holds ``rank1.sdf`` is **skipped** (unless ``override``);
* the others are prepared one by one (receptors read and featurized once, cached by the model) and
  collected until their samples fill a device batch; the chunk is then docked in one
  :meth:`~discodock.inference.docking.DockingModel.run` and its files written
  (:func:`~discodock.inference.outputs.write_poses`);
* a bad item (unreadable file, invalid SMILES, failed conformer, …) is recorded with its one-line reason and
  the run goes on; if sampling a chunk fails, its complexes are retried one by one so that only the
  culprit fails.

Every item gets a row of ``OUT/results.csv`` as soon as it is done (so rows follow the order in which
complexes finish), and a progress bar counts complexes.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem
from tqdm import tqdm

from discodock.data.layout import safe_name
from discodock.data.ligand import read_ligand, read_ligands
from discodock.data.protein import Protein, read_protein
from discodock.errors import InputError
from discodock.inference.docking import DockingJob, DockingModel, DockingResult, SamplingOptions
from discodock.inference.outputs import ResultsTable, finished_confidence, write_poses

CSV_COLUMNS = ("complex_name", "protein_path", "ligand_description")
"""Required columns of a batch CSV (DiffDock's; a ``protein_sequence`` column is ignored)."""


@dataclass(frozen=True)
class PredictItem:
    """One complex to dock.

    Attributes
    ----------
    name
        Name of the complex and of its output folder.
    protein
        Receptor file, or the receptor already read.
    ligand
        Ligand file holding one molecule or a SMILES string (read when the item is prepared), or an
        already read heavy-atom molecule.
    """

    name: str
    protein: str | Path | Protein
    ligand: str | Path | Chem.Mol


@dataclass(frozen=True)
class PredictOutputs:
    """What to write for every docked complex.

    Attributes
    ----------
    out_dir
        Output folder: ``OUT/<name>/`` per complex and ``OUT/results.csv``.
    hydrogens
        Add hydrogens with 3D coordinates to the written poses.
    complex_pdb
        Also write ``complex.pdb`` (receptor + rank-1 pose).
    override
        Dock items that are already finished instead of skipping them.
    """

    out_dir: Path
    hydrogens: bool = False
    complex_pdb: bool = False
    override: bool = False


@dataclass
class PredictSummary:
    """Outcome of :func:`predict`.

    Attributes
    ----------
    docked, skipped
        Names of the complexes docked in this run and of those skipped as already finished.
    failures
        ``(name, one-line reason)`` of the complexes that failed.
    errors
        The exception of each failed complex, by name.
    """

    docked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    errors: dict[str, Exception] = field(default_factory=dict)


def read_items_csv(path: str | Path) -> list[PredictItem]:
    """Items of a batch CSV with the columns :data:`CSV_COLUMNS` (DiffDock's ``--protein_ligand_csv``).

    An empty ``complex_name`` becomes ``complex_<row>`` (rows counted from 1); names are made folder-safe
    (:func:`safe_name`). Paths are taken as given (relative to the working directory).

    Raises
    ------
    InputError
        Missing or unreadable file, missing columns, no rows, a row without protein or ligand, or two rows
        with the same name.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"not a readable CSV file ({error})") from None
    missing = [column for column in CSV_COLUMNS if column not in columns]
    if missing:
        raise InputError(path, f"missing column {missing[0]} (expected {', '.join(CSV_COLUMNS)})")
    if not rows:
        raise InputError(path, "no complexes (only a header)")
    items: list[PredictItem] = []
    first_row: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        name = safe_name(row["complex_name"] or f"complex_{number}")
        protein, ligand = ((row[column] or "").strip() for column in CSV_COLUMNS[1:])
        if not protein or not ligand:
            raise InputError(path, f"row {number} ({name}): protein_path and ligand_description are required")
        if name in first_row:
            raise InputError(path, f"complex name {name} appears in rows {first_row[name]} and {number}")
        first_row[name] = number
        items.append(PredictItem(name, protein, ligand))
    return items


def single_items(protein: str | Path, ligand: str | Path, name: str | None = None) -> list[PredictItem]:
    """Items of one receptor and one ligand source (``-r``/``-l``).

    Both are read at once, so that bad input is reported before any network is loaded. One molecule
    gives one item named ``name`` (default ``<protein stem>_<ligand stem>``, or ``<protein stem>_ligand``
    for a SMILES); several molecules give one item each, named after the molecules when they all have
    distinct names, else ``<name>_<k>``.

    Raises
    ------
    InputError
        If the receptor or the ligand source cannot be read.
    """
    receptor = read_protein(protein)
    molecules = read_ligands(ligand)
    base = safe_name(name or f"{_stem(Path(protein))}_{_ligand_stem(ligand)}")
    if len(molecules) == 1:
        return [PredictItem(base, receptor, molecules[0])]
    titles = [safe_name(mol.GetProp("_Name")) if mol.HasProp("_Name") else "" for mol in molecules]
    if all(titles) and len(set(titles)) == len(titles):
        names = titles
    else:
        names = [f"{base}_{k}" for k in range(1, len(molecules) + 1)]
    return [PredictItem(n, receptor, mol) for n, mol in zip(names, molecules, strict=True)]


def predict(
    model: DockingModel,
    items: Sequence[PredictItem],
    options: SamplingOptions,
    outputs: PredictOutputs,
    *,
    pocket_center: np.ndarray | None = None,
    pocket_radius: float | None = None,
    progress: bool = True,
) -> PredictSummary:
    """Dock ``items`` into ``outputs.out_dir`` (see the module docstring).

    Parameters
    ----------
    model
        The docking networks.
    items
        Complexes, with unique names.
    options
        Sampling options (samples, steps, seed, …).
    outputs
        Output folder and what to write.
    pocket_center
        ``(x, y, z)`` in the input frame for every complex (default blind docking).
    pocket_radius
        Å; the receptor graph keeps the residues within this distance of ``pocket_center`` (default
        :data:`~discodock.inference.networks.DEFAULT_POCKET_MARGIN` + the ligand's conformer radius).
    progress
        Show a progress bar over complexes (when there are several).

    Returns
    -------
    PredictSummary
    """
    with (
        ResultsTable(outputs.out_dir) as table,
        tqdm(total=len(items), desc="predict", unit="complex", disable=not progress or len(items) < 2) as bar,
    ):
        run = _Run(model, options, outputs, pocket_center, pocket_radius, table, bar)
        for item in items:
            run.add(item)
        run.dock_pending()
    return run.summary


@dataclass
class _Run:
    """State of one :func:`predict` call: prepared complexes waiting for a device batch, and the tallies."""

    model: DockingModel
    options: SamplingOptions
    outputs: PredictOutputs
    pocket_center: np.ndarray | None
    pocket_radius: float | None
    table: ResultsTable
    bar: tqdm
    summary: PredictSummary = field(default_factory=PredictSummary)
    pending: list[tuple[DockingJob, float]] = field(default_factory=list)

    def add(self, item: PredictItem) -> None:
        """Skip, prepare (or fail) one item; dock the pending ones once they fill a device batch."""
        if not self.outputs.override:
            confidence = finished_confidence(self.outputs.out_dir / item.name)
            if confidence is not None:
                self.summary.skipped.append(item.name)
                self.table.add(item.name, "skipped", confidence, 0.0)
                self.bar.update()
                return
        start = time.perf_counter()
        try:
            job = _prepare(self.model, item, self.pocket_center, self.pocket_radius, self.options.seed)
        except Exception as error:  # one bad item must not stop the others
            self.fail(item.name, error, time.perf_counter() - start)
            return
        self.pending.append((job, time.perf_counter() - start))
        jobs = [job for job, _ in self.pending]
        if len(jobs) * self.options.samples >= self.model.graphs_per_batch(jobs, self.options):
            self.dock_pending()

    def dock_pending(self) -> None:
        """Dock the prepared complexes in one run and write their files."""
        if not self.pending:
            return
        jobs = [job for job, _ in self.pending]
        outcomes = _dock_chunk(self.model, jobs, self.options)
        for (job, prepare_seconds), (result, dock_seconds) in zip(self.pending, outcomes, strict=True):
            seconds = prepare_seconds + dock_seconds
            if isinstance(result, Exception):
                self.fail(job.name, result, seconds)
                continue
            folder = self.outputs.out_dir / job.name
            try:
                write_poses(
                    result, folder, hydrogens=self.outputs.hydrogens, complex_pdb=self.outputs.complex_pdb
                )
            except OSError as error:
                self.fail(job.name, InputError(folder, f"cannot write ({error.strerror or error})"), seconds)
                continue
            self.summary.docked.append(job.name)
            self.table.add(job.name, "ok", result.best.confidence, seconds)
            self.bar.update()
        self.pending.clear()

    def fail(self, name: str, error: Exception, seconds: float) -> None:
        """Record a failed item."""
        reason = _reason(error)
        self.summary.failures.append((name, reason))
        self.summary.errors[name] = error
        self.table.add(name, "failed", None, seconds, reason)
        self.bar.update()


def _prepare(
    model: DockingModel,
    item: PredictItem,
    pocket_center: np.ndarray | None,
    pocket_radius: float | None,
    seed: int,
) -> DockingJob:
    """Read the item's ligand if needed and featurize it against its (cached) receptor (or pocket)."""
    ligand = item.ligand if isinstance(item.ligand, Chem.Mol) else read_ligand(item.ligand)
    return model.prepare(
        item.protein,
        ligand,
        name=item.name,
        pocket_center=pocket_center,
        pocket_radius=pocket_radius,
        seed=seed,
    )


def _dock_chunk(
    model: DockingModel, jobs: list[DockingJob], options: SamplingOptions
) -> list[tuple[DockingResult | Exception, float]]:
    """Dock ``jobs`` together: ``(result or exception, seconds)`` per job, the time shared equally.

    If the chunk fails, each job is docked alone, so that one failing complex does not fail the others.
    """
    start = time.perf_counter()
    try:
        results = model.run(jobs, options)
    except Exception as error:  # isolate the complex that broke the batch
        if len(jobs) == 1:
            return [(error, time.perf_counter() - start)]
        return [outcome for job in jobs for outcome in _dock_chunk(model, [job], options)]
    seconds = (time.perf_counter() - start) / len(jobs)
    return [(result, seconds) for result in results]


def _reason(error: Exception) -> str:
    """One line: an :class:`InputError` as ``<file>: <problem>``, others as ``unexpected <type>: …``."""
    if isinstance(error, InputError):
        return str(error)
    return f"unexpected {type(error).__name__}: {' '.join(str(error).split())}"


def _stem(path: Path) -> str:
    """File name without ``.gz`` and the format suffix."""
    return Path(path.name.removesuffix(".gz")).stem


def _ligand_stem(ligand: str | Path) -> str:
    """The ligand file's stem, or ``ligand`` for a SMILES string."""
    path = Path(str(ligand))
    return _stem(path) if path.is_file() else "ligand"
