"""Scoring the poses of every method against the crystal ligands, and writing the report.

Per complex and method (:func:`evaluate_run`), with the ``P`` poses in rank order:

* ``RMSD_p``: symmetry-corrected heavy-atom RMSD of pose ``p`` to the **crystal** ligand, in place (no
  alignment; :func:`~discodock.metrics.symmetry_rmsd`);
* top-1 RMSD = ``RMSD_1`` (the highest-confidence pose; the first sample for an unranked method, the best
  Vina score for Vina); top-5 RMSD = ``min_{p ≤ 5} RMSD_p``;
* PB-valid: the top-1 pose passes every check of ``PoseBusters(config="dock")`` against the complex's
  cleaned receptor (:mod:`discodock.benchmark.complexes`). PoseBusters' internal-energy check embeds an
  ensemble of 50 conformers once per ligand (cached by InChI within the process), which dominates its cost;
  it can be left out (``posebusters=False``), the PB metrics are then ``None``.

Per method and set of complexes ``C`` (:func:`summarize`; failures count as misses, RMSD = ∞):
``top-1 % < 2 Å = 100 · |{c : RMSD_1(c) < 2}| / |C|``, likewise top-5 and ``< 5 Å``, the median top-1 RMSD,
the PB-valid share of top-1 poses and the share that is both ``< 2 Å`` and PB-valid. The sets are all usable
complexes, the unseen-receptor ones, and Vina's subset when Vina ran on one; a method is scored on a set only
if it was run on every complex of it.

Per pair of methods, on the largest set both were scored on (:func:`paired_comparison`): the complexes that
only one of the two docks below 2 Å (top-1), and the exact McNemar test of equal success rates on them.

:func:`write_report` writes into the output folder ``results.json``, ``report.md``, ``complexes.csv`` (one
row per method and complex), ``rmsd_cdf.png`` (cumulative distribution of top-1 RMSDs) and the ranked poses
``poses/<method>/<complex>.sdf`` (crystal ligand graph, properties ``rank`` and the method's score) with
the method's record ``poses/<method>/run.json``, from which :func:`read_run_poses` rebuilds the method, so
that a later report can score it again or next to other methods (e.g. GPU runs and a CPU Vina run). The
published numbers of DiffDock, DiffDock-S and DisCo-DiffDock-S are kept apart from measured rows.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import tempfile
from collections.abc import Collection, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.stats
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from posebusters import PoseBusters
from rdkit import Chem
from tqdm import tqdm

from discodock.benchmark.complexes import BenchmarkComplex, BenchmarkSet, MethodRun
from discodock.errors import InputError
from discodock.inference.outputs import sdf_block
from discodock.inference.predict import safe_name
from discodock.metrics import molecular_graph, success_rate, symmetry_rmsd

RMSD_THRESHOLD = 2.0
"""Å; a pose is correct below this RMSD."""

LOOSE_RMSD_THRESHOLD = 5.0
"""Å; the coarser threshold (right pocket, roughly right placement)."""

TOP_K = 5
"""Poses of the top-k success rate."""

POSEBUSTERS_RECEPTOR_MARGIN = 10.0
"""Å; PoseBusters checks a pose against the receptor residues with an atom this close to it."""

RUN_FILE = "run.json"
"""A method's record beside its pose files."""

CSV_COLUMNS = (
    "method",
    "complex",
    "unseen",
    "status",
    "reason",
    "poses",
    "top1_rmsd",
    "top5_rmsd",
    "best_rmsd",
    "top1_score",
    "top1_pb_valid",
    "pb_failed_checks",
    "seconds",
    "notes",
)
"""Columns of ``complexes.csv``."""


@dataclass(frozen=True)
class PublishedAnchor:
    """Published PDBBind time-split results (363 complexes, blind, 40 samples; not measured here).

    Attributes
    ----------
    method
        Method name.
    top1_all, top1_unseen
        Top-1 % RMSD < 2 Å on all complexes and on those with receptors unseen in training.
    seconds_per_complex
        Runtime on one GPU, preprocessing excluded.
    source
        Where the numbers are from.
    """

    method: str
    top1_all: float
    top1_unseen: float
    seconds_per_complex: float
    source: str


PUBLISHED_ANCHORS = (
    PublishedAnchor("DiffDock", 38.2, 20.8, 40.0, "DiffDock, arXiv 2210.01776, Tables 1 and 7"),
    PublishedAnchor("DisCo-DiffDock-S", 35.4, 18.5, 9.1, "DisCo-Diff, arXiv 2407.03300, Table 4"),
    PublishedAnchor("DiffDock-S", 32.9, 13.9, 8.1, "DisCo-Diff, arXiv 2407.03300, Table 4"),
)
"""The published anchors of the report's separate block."""


@dataclass(frozen=True)
class ComplexOutcome:
    """How one method did on one complex.

    Attributes
    ----------
    name
        The complex.
    reason
        Why it failed; empty when docked.
    rmsds
        ``float64[P]`` RMSDs of the poses in rank order (empty when failed).
    top1_score
        Ranking score of the top-1 pose (``nan`` when failed or unranked).
    pb_valid
        Whether the top-1 pose passes every PoseBusters ``dock`` check (``False`` when failed, ``None`` when
        not checked).
    pb_failed_checks
        Names of the checks it fails (or ``error: ...`` when PoseBusters could not run).
    seconds
        Seconds for this complex where measured one by one (Vina), else ``None``.
    note
        The method's remark on this complex (e.g. Vina's receptor route), or empty.
    """

    name: str
    reason: str
    rmsds: np.ndarray
    top1_score: float
    pb_valid: bool | None
    pb_failed_checks: tuple[str, ...]
    seconds: float | None
    note: str = ""

    @property
    def docked(self) -> bool:
        return not self.reason

    @property
    def top1_rmsd(self) -> float:
        """RMSD of the top-ranked pose (∞ when failed)."""
        return float(self.rmsds[0]) if self.docked else math.inf

    @property
    def top5_rmsd(self) -> float:
        """Lowest RMSD among the :data:`TOP_K` top-ranked poses (∞ when failed)."""
        return float(self.rmsds[:TOP_K].min()) if self.docked else math.inf

    @property
    def best_rmsd(self) -> float:
        """Lowest RMSD of all poses (∞ when failed)."""
        return float(self.rmsds.min()) if self.docked else math.inf


def pose_rmsds(complex_: BenchmarkComplex, positions: np.ndarray) -> np.ndarray:
    """Symmetry-corrected RMSDs of poses to the crystal ligand, no alignment.

    Parameters
    ----------
    complex_
        The complex (crystal ligand).
    positions
        ``float[P, N, 3]`` poses in the crystal ligand's atom order.

    Returns
    -------
    numpy.ndarray
        ``float64[P]`` in Å.
    """
    atomic_numbers, adjacency = molecular_graph(complex_.crystal_ligand)
    return symmetry_rmsd(complex_.crystal_positions, positions, atomic_numbers, adjacency)


def receptor_near_pose(
    receptor_pdb: Path, pose: Chem.Mol, margin: float = POSEBUSTERS_RECEPTOR_MARGIN
) -> str:
    """PDB text of the residues of ``receptor_pdb`` with an atom within ``margin`` Å of an atom of ``pose``.

    Residues are kept whole (chain, number, insertion code and name alike). If no residue is that close,
    the residue of the receptor atom nearest to the pose is kept: it alone decides PoseBusters' minimum
    distance to the protein, and nothing overlaps with a pose that far.
    """
    lines = receptor_pdb.read_text().splitlines()
    atom_lines = [line for line in lines if line.startswith(("ATOM", "HETATM"))]
    coordinates = np.array(
        [[float(line[30:38]), float(line[38:46]), float(line[46:54])] for line in atom_lines]
    )
    ligand = pose.GetConformer().GetPositions()
    nearest = np.full(len(atom_lines), np.inf)
    for start in range(0, len(atom_lines), 4096):
        block = coordinates[start : start + 4096]
        nearest[start : start + 4096] = np.linalg.norm(block[:, None] - ligand[None], axis=-1).min(axis=1)
    near_residues = {
        line[17:27] for line, distance in zip(atom_lines, nearest, strict=True) if distance <= margin
    }
    if not near_residues:
        near_residues = {atom_lines[int(np.argmin(nearest))][17:27]}
    kept = [line for line in atom_lines if line[17:27] in near_residues]
    return "\n".join([*kept, "END"]) + "\n"


def posebusters_failures(buster: PoseBusters, pose: Chem.Mol, receptor_pdb: Path) -> tuple[str, ...]:
    """Names of the PoseBusters checks that ``pose`` fails against ``receptor_pdb`` (empty: PB-valid).

    PoseBusters sees the residues near the pose (:func:`receptor_near_pose`): its protein checks (minimum
    distance, volume overlap) only look a few Å far, and on a large receptor this makes them several
    times faster. A check whose result is missing counts as failed; if PoseBusters raises, the one entry
    is ``error: ...``.
    """
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".pdb") as near:
            near.write(receptor_near_pose(receptor_pdb, pose))
            near.flush()
            table = buster.bust(pose, None, near.name)
    except Exception as error:  # PoseBusters refusing a pose makes the pose invalid, not the benchmark fail
        return (f"error: {type(error).__name__}: {' '.join(str(error).split())}",)
    row = table.iloc[0]
    return tuple(
        str(check) for check, passed in row.items() if not (isinstance(passed, bool | np.bool_) and passed)
    )


@functools.cache
def _worker_buster() -> PoseBusters:
    """This process's ``PoseBusters(config="dock")`` (built once per worker process)."""
    return PoseBusters(config="dock")


def _worker_failures(task: tuple[Chem.Mol, Path]) -> tuple[str, ...]:
    """:func:`posebusters_failures` of ``(pose, receptor_pdb)`` in a worker process."""
    return posebusters_failures(_worker_buster(), *task)


def checked_failures(
    run: MethodRun,
    complexes: dict[str, BenchmarkComplex],
    buster: PoseBusters,
    names: Sequence[str],
    workers: int = 1,
    progress: bool = True,
) -> dict[str, tuple[str, ...]]:
    """:func:`posebusters_failures` of the top-1 pose of each of ``names``, in ``workers`` processes.

    With ``workers > 1`` each worker process checks with its own ``PoseBusters(config="dock")``
    (``buster`` then only says which checks; it must be that configuration).
    """
    tasks = [(complexes[name].pose(run.positions[name][0]), complexes[name].receptor_pdb) for name in names]
    bar = {"desc": f"PoseBusters {run.name}", "unit": "pose", "total": len(tasks), "disable": not progress}
    if workers <= 1 or len(tasks) <= 1:
        checked = tqdm(zip(names, tasks, strict=True), **bar)
        return {name: posebusters_failures(buster, *task) for name, task in checked}
    with ProcessPoolExecutor(max_workers=workers) as executor:
        return dict(zip(names, tqdm(executor.map(_worker_failures, tasks), **bar), strict=True))


def evaluate_run(
    run: MethodRun,
    complexes: dict[str, BenchmarkComplex],
    buster: PoseBusters | None,
    progress: bool = True,
    checked_names: Collection[str] | None = None,
    posebusters_workers: int = 1,
) -> dict[str, ComplexOutcome]:
    """RMSDs of every pose and the PoseBusters checks of every top-1 pose of one method.

    ``buster`` ``None`` leaves the PoseBusters checks out (``pb_valid`` ``None`` for docked complexes);
    ``checked_names`` limits them to those complexes (``None``: all); ``posebusters_workers`` processes
    run the checks (:func:`checked_failures`).

    Returns
    -------
    dict
        Outcome per attempted complex, in the order of ``run.attempted``.
    """
    failures: dict[str, tuple[str, ...]] = {}
    if buster is not None:
        names = [
            n for n in run.attempted if n in run.positions and (checked_names is None or n in checked_names)
        ]
        failures = checked_failures(run, complexes, buster, names, posebusters_workers, progress)
    outcomes = {}
    for name in tqdm(run.attempted, desc=f"evaluate {run.name}", unit="complex", disable=not progress):
        seconds = run.complex_seconds.get(name)
        note = run.complex_notes.get(name, "")
        if name not in run.positions:
            reason = run.failures.get(name, "no poses")
            outcomes[name] = ComplexOutcome(name, reason, np.empty(0), math.nan, False, (), seconds, note)
            continue
        complex_ = complexes[name]
        positions = run.positions[name]
        failed_checks = failures.get(name)
        outcomes[name] = ComplexOutcome(
            name,
            "",
            pose_rmsds(complex_, positions),
            float(run.scores[name][0]),
            None if failed_checks is None else not failed_checks,
            failed_checks or (),
            seconds,
            note,
        )
    return outcomes


def summarize(outcomes: Sequence[ComplexOutcome]) -> dict[str, float | int | None]:
    """Success rates of one method on one set of complexes (see the module docstring).

    Returns
    -------
    dict
        ``complexes``, ``docked``, ``failed``, ``top1_below_2A``, ``top5_below_2A``, ``top1_below_5A`` (%),
        ``median_top1_rmsd`` (Å; ``None`` when infinite, i.e. more than half failed), ``top1_pb_valid`` and
        ``top1_below_2A_and_pb_valid`` (%; ``None`` when the poses were not checked).
    """
    top1 = np.array([outcome.top1_rmsd for outcome in outcomes])
    top5 = np.array([outcome.top5_rmsd for outcome in outcomes])
    checked = all(outcome.pb_valid is not None for outcome in outcomes)
    pb_valid = np.array([bool(outcome.pb_valid) for outcome in outcomes])
    median = float(np.median(top1))
    return {
        "complexes": len(outcomes),
        "docked": sum(outcome.docked for outcome in outcomes),
        "failed": sum(not outcome.docked for outcome in outcomes),
        "top1_below_2A": success_rate(top1, RMSD_THRESHOLD),
        "top5_below_2A": success_rate(top5, RMSD_THRESHOLD),
        "top1_below_5A": success_rate(top1, LOOSE_RMSD_THRESHOLD),
        "median_top1_rmsd": median if math.isfinite(median) else None,
        "top1_pb_valid": float(100.0 * pb_valid.mean()) if checked else None,
        "top1_below_2A_and_pb_valid": (
            float(100.0 * np.mean(pb_valid & (top1 < RMSD_THRESHOLD))) if checked else None
        ),
    }


def paired_comparison(
    first: Sequence[ComplexOutcome], second: Sequence[ComplexOutcome]
) -> dict[str, float | int]:
    """Two methods on the same complexes, complex by complex: which docks each one below 2 Å (top-1).

    With ``b`` the complexes only the first method docks below 2 Å and ``c`` those only the second docks,
    the exact McNemar test of equal success rates asks how likely so lopsided a split of the ``n = b + c``
    discordant complexes is when each goes either way with probability 1/2:
    ``p = P(|B − n/2| ≥ |b − n/2|)``, ``B ~ Binomial(n, 1/2)`` (two-sided; 1 when ``n = 0``). Unlike the
    difference of two rates, it uses the pairing: complexes both dock, or both miss, carry no evidence.

    Parameters
    ----------
    first, second
        The two methods' outcomes on the same complexes, in the same order (failures count as misses).

    Returns
    -------
    dict
        ``complexes``, ``both``, ``only_first``, ``only_second`` (counts) and ``p_value``.
    """
    if [outcome.name for outcome in first] != [outcome.name for outcome in second]:
        raise ValueError("paired_comparison needs the outcomes of the same complexes in the same order")
    hits_first = np.array([outcome.top1_rmsd < RMSD_THRESHOLD for outcome in first], dtype=bool)
    hits_second = np.array([outcome.top1_rmsd < RMSD_THRESHOLD for outcome in second], dtype=bool)
    only_first = int((hits_first & ~hits_second).sum())
    only_second = int((hits_second & ~hits_first).sum())
    discordant = only_first + only_second
    p_value = scipy.stats.binomtest(only_first, discordant).pvalue if discordant else 1.0
    return {
        "complexes": len(first),
        "both": int((hits_first & hits_second).sum()),
        "only_first": only_first,
        "only_second": only_second,
        "p_value": float(p_value),
    }


def write_report(
    benchmark: BenchmarkSet,
    runs: Sequence[MethodRun],
    out_dir: str | Path,
    *,
    settings: dict[str, object],
    unseen: Sequence[str] | None = None,
    subset: Sequence[str] | None = None,
    posebusters: bool = True,
    posebusters_subset_only: bool = False,
    posebusters_workers: int = 1,
    progress: bool = True,
) -> dict[str, object]:
    """Score every method and write the report files (see the module docstring).

    Parameters
    ----------
    benchmark
        The benchmark set.
    runs
        The methods' poses.
    out_dir
        Output folder.
    settings
        The run's settings as :func:`~discodock.benchmark.run.settings_record` gives them.
    unseen
        Names of the complexes with receptors unseen in training (``None``: no such set).
    subset
        Names of the fixed seeded subset that Vina ran on (``None``: Vina ran on all, or not at all).
    posebusters
        Run the PoseBusters checks (otherwise the PB metrics are ``None``).
    posebusters_subset_only
        Check only the top-1 poses of ``subset`` (PoseBusters takes seconds per pose on a CPU); the PB
        metrics are then given for that set only (``None`` for the others).
    posebusters_workers
        Processes that run the PoseBusters checks.
    progress
        Show progress bars.

    Returns
    -------
    dict
        The content of ``results.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    complexes = {complex_.name: complex_ for complex_ in benchmark.complexes}
    buster = PoseBusters(config="dock") if posebusters else None
    sets = {"all": benchmark.names}
    if unseen:
        sets["unseen"] = list(unseen)
    if subset:
        sets["vina_subset"] = list(subset)
    outcomes = {}
    methods = {}
    for run in runs:
        write_run_poses(run, complexes, out_dir / "poses" / run.name)
        checked = set(subset) if posebusters_subset_only and subset else None
        outcomes[run.name] = evaluate_run(run, complexes, buster, progress, checked, posebusters_workers)
        methods[run.name] = _method_record(run, outcomes[run.name], sets)
    results: dict[str, object] = {
        "settings": settings,
        "benchmark": {
            "usable": len(benchmark.complexes),
            "unusable": [{"name": name, "reason": reason} for name, reason in benchmark.unusable],
            "sets": {name: {"complexes": len(names), "names": names} for name, names in sets.items()},
        },
        "metric_definitions": {
            "rmsd": "symmetry-corrected heavy-atom RMSD to the crystal ligand, in place (no alignment)",
            "top1": "top-ranked pose (highest confidence; first sample when unranked; best Vina score)",
            "top5": f"lowest RMSD among the {TOP_K} top-ranked poses",
            "failures": "count as misses (RMSD = infinity) in every rate and in the median",
            "pb_valid": "top-1 pose passes every PoseBusters 'dock' check against the cleaned receptor "
            "(amino-acid heavy atoms; no cofactors, ions or waters); null when not checked",
            "rates": "percent of the complexes of the set",
        },
        "methods": methods,
        "paired": _paired_records(outcomes, methods, sets),
        "published_anchors": {
            "note": "published PDBBind time-split numbers (363 complexes, blind, 40 samples, one GPU, "
            "preprocessing excluded); not measured here",
            "rows": [dataclasses.asdict(anchor) for anchor in PUBLISHED_ANCHORS],
        },
    }
    (out_dir / "results.json").write_text(json.dumps(_json_ready(results), indent=2) + "\n")
    _write_csv(out_dir / "complexes.csv", outcomes, set(unseen or ()))
    _plot_rmsd_cdf(out_dir / "rmsd_cdf.png", runs, outcomes)
    (out_dir / "report.md").write_text(markdown_report(results))
    return results


def write_run_poses(run: MethodRun, complexes: dict[str, BenchmarkComplex], folder: Path) -> None:
    """Write ``folder/<complex>.sdf`` per docked complex (its poses in rank order, with ``rank`` and the
    score; the name made file-safe) and ``folder/run.json`` (everything else of ``run``).

    Pose files of an earlier run in ``folder`` are removed first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.sdf"):
        stale.unlink()
    for name, positions in run.positions.items():
        records = []
        for rank, (pose_positions, score) in enumerate(
            zip(positions, run.scores[name], strict=True), start=1
        ):
            mol = complexes[name].pose(pose_positions)
            mol.SetIntProp("rank", rank)
            mol.SetDoubleProp(run.score_name, float(score))
            records.append(sdf_block(mol))
        (folder / f"{safe_name(name)}.sdf").write_text("".join(records))
    record = {
        field.name: getattr(run, field.name)
        for field in dataclasses.fields(run)
        if field.name not in ("positions", "scores")
    }
    (folder / RUN_FILE).write_text(json.dumps(_json_ready(record), indent=1) + "\n")


def read_run_poses(folder: str | Path, complexes: dict[str, BenchmarkComplex]) -> MethodRun:
    """The method written by :func:`write_run_poses` into ``folder``, poses read back from its SDF files.

    Parameters
    ----------
    folder
        ``<results>/poses/<method>`` of an earlier benchmark run.
    complexes
        The benchmark complexes by name; every complex the method attempted must be among them.

    Raises
    ------
    InputError
        If ``run.json`` or a pose file is missing or unreadable, or a complex is not in ``complexes`` or its
        poses do not have the crystal ligand's atoms.
    """
    folder = Path(folder)
    try:
        record = json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError) as error:
        raise InputError(folder / RUN_FILE, f"not a method record of a benchmark run ({error})") from None
    positions = {}
    scores = {}
    for name in record["attempted"]:
        if name not in complexes:
            raise InputError(folder, f"complex {name} is not in this benchmark set")
        if name in record["failures"]:
            continue
        path = folder / f"{safe_name(name)}.sdf"
        poses = list(Chem.SDMolSupplier(str(path))) if path.is_file() else []
        atoms = complexes[name].crystal_ligand.GetNumAtoms()
        if not poses or any(pose is None or pose.GetNumAtoms() != atoms for pose in poses):
            raise InputError(
                path, f"missing, unreadable, or poses without the crystal ligand's {atoms} atoms"
            )
        positions[name] = np.stack([pose.GetConformer().GetPositions() for pose in poses])
        scores[name] = np.array([pose.GetDoubleProp(record["score_name"]) for pose in poses])
    return MethodRun(
        **{**record, "attempted": tuple(record["attempted"])},
        positions=positions,
        scores=scores,
    )


def markdown_report(results: dict[str, object]) -> str:
    """``report.md`` from the content of ``results.json``."""
    settings = results["settings"]
    benchmark = results["benchmark"]
    methods = results["methods"]
    sets = benchmark["sets"]
    lines = [
        "# Docking benchmark",
        "",
        f"Data `{settings['data_dir']}`, split `{settings['split_file']}`: {benchmark['usable']} usable "
        f"complexes, {len(benchmark['unusable'])} unusable (listed below). Networks: {settings['samples']} "
        f"samples, {settings['steps']} steps, seed {settings['seed']}, latents `{settings['latents']}`.",
        "",
        "RMSD: symmetry-corrected heavy-atom RMSD to the crystal ligand, in place (no alignment). Top-1: the "
        "highest-confidence pose (the first sample for an unranked method, the best Vina score for Vina); "
        f"top-5: the best of the {TOP_K} top-ranked poses. Failed complexes count as misses. PB-valid: the "
        "top-1 pose passes every PoseBusters `dock` check against the receptor's amino-acid heavy atoms (no "
        "cofactors, ions or waters). Rates in % of the complexes of each set.",
    ]
    titles = {
        "all": f"All usable complexes ({sets['all']['complexes']})",
        "unseen": f"Receptors unseen in training ({sets.get('unseen', {}).get('complexes', 0)}; "
        f"`{settings['unseen_split_file']}`)",
        "vina_subset": f"Vina's subset ({sets.get('vina_subset', {}).get('complexes', 0)} of "
        f"{sets['all']['complexes']}, drawn with seed {settings['seed']})",
    }
    header = (
        "| method | docked | failed | top-1 < 2 Å | top-5 < 2 Å | top-1 < 5 Å | median top-1 (Å) "
        "| PB-valid | < 2 Å and PB-valid |"
    )
    for set_name in sets:
        rows = [
            (name, method["metrics"][set_name])
            for name, method in methods.items()
            if set_name in method["metrics"]
        ]
        if not rows:
            continue
        lines += ["", f"## Measured: {titles[set_name]}", "", header, "|---" * 9 + "|"]
        for name, m in rows:
            median, valid, both = (
                "–" if value is None else f"{value:.{digits}f}"
                for value, digits in (
                    (m["median_top1_rmsd"], 2),
                    (m["top1_pb_valid"], 1),
                    (m["top1_below_2A_and_pb_valid"], 1),
                )
            )
            lines.append(
                f"| {name} | {m['docked']} | {m['failed']} | {m['top1_below_2A']:.1f} "
                f"| {m['top5_below_2A']:.1f} | {m['top1_below_5A']:.1f} | {median} | {valid} | {both} |"
            )
    lines += [
        "",
        "## Measured: speed",
        "",
        "Preparation: featurization (networks; shared by all checkpoints) or receptor and ligand PDBQT files "
        "(Vina), wall time. Docking: wall time of the batched run (networks) or CPU time (Vina, one core per "
        "complex). Per complex = total / complexes attempted.",
        "",
        "| method | hardware | complexes | preparation s/complex | docking s/complex | total s/complex | "
        "peak GPU memory (GiB) |",
        "|---" * 7 + "|",
    ]
    for name, method in methods.items():
        timing = method["timing"]
        memory = timing["peak_gpu_memory_gib"]
        lines.append(
            f"| {name} | {timing['hardware']} | {len(method['attempted'])} | "
            f"{timing['preparation_s_per_complex']:.3f} | {timing['docking_s_per_complex']:.3f} | "
            f"{timing['total_s_per_complex']:.3f} | {'–' if memory is None else f'{memory:.2f}'} |"
        )
    lines += _paired_lines(results.get("paired", []))  # no "paired" before session 9
    anchors = results["published_anchors"]
    lines += [
        "",
        "## Published anchors (not measured here)",
        "",
        anchors["note"][0].upper() + anchors["note"][1:] + ".",
        "",
        "| method | top-1 < 2 Å, all | top-1 < 2 Å, unseen receptors | s/complex | source |",
        "|---" * 5 + "|",
    ]
    for row in anchors["rows"]:
        lines.append(
            f"| {row['method']} | {row['top1_all']:.1f} | {row['top1_unseen']:.1f} | "
            f"{row['seconds_per_complex']:g} | {row['source']} |"
        )
    lines += ["", "## Methods", ""]
    for name, method in methods.items():
        ranked_by = method.get("ranked_by") or method["score_name"]  # no ranked_by before session 8
        ranking = "ranked by " + ranked_by if method["ranked"] else "unranked (top-1 = first sample)"
        lines.append(f"- **{name}**: {method['description']}; {ranking}.")
        for key, value in method["details"].items():
            text = ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else value
            lines.append(f"  - {key}: {text}")
    lines += ["", f"## Unusable complexes ({len(benchmark['unusable'])})", ""]
    lines += [f"- {entry['name']}: {entry['reason']}" for entry in benchmark["unusable"]] or ["None."]
    failures = [(name, entry) for name, method in methods.items() for entry in method["failures"]]
    lines += ["", f"## Failures ({len(failures)})", ""]
    lines += [f"- {name}, {entry['name']}: {entry['reason']}" for name, entry in failures] or ["None."]
    return "\n".join(lines) + "\n"


def _paired_lines(paired: list[dict[str, object]]) -> list[str]:
    """The report's section on :func:`paired_comparison` (none without pairs)."""
    if not paired:
        return []
    lines = [
        "",
        "## Measured: paired comparisons (top-1 < 2 Å)",
        "",
        "Per pair of methods, on the largest set both ran on: the complexes both dock below 2 Å, those only "
        "one of them docks, and the exact McNemar test of equal success rates (two-sided p; the split of the "
        "complexes only one docks, against an even one).",
        "",
        "| first | second | set | complexes | both | only first | only second | p |",
        "|---" * 8 + "|",
    ]
    for row in paired:
        lines.append(
            f"| {row['first']} | {row['second']} | {row['set']} | {row['complexes']} | {row['both']} | "
            f"{row['only_first']} | {row['only_second']} | {row['p_value']:.2g} |"
        )
    return lines


def _method_record(
    run: MethodRun, outcomes: dict[str, ComplexOutcome], sets: dict[str, list[str]]
) -> dict[str, object]:
    """The ``results.json`` entry of one method: metrics on each set it covers, timing, failures."""
    attempted = len(run.attempted)
    memory = run.peak_gpu_memory_bytes
    return {
        "description": run.description,
        "ranked": run.ranked,
        "score_name": run.score_name,
        "ranked_by": run.ranked_by,
        "attempted": list(run.attempted),
        "metrics": {
            set_name: summarize([outcomes[name] for name in names])
            for set_name, names in sets.items()
            if all(name in outcomes for name in names)
        },
        "timing": {
            "hardware": run.hardware,
            "preparation_s_total": run.preparation_seconds,
            "docking_s_total": run.docking_seconds,
            "preparation_s_per_complex": run.preparation_seconds / attempted,
            "docking_s_per_complex": run.docking_seconds / attempted,
            "total_s_per_complex": (run.preparation_seconds + run.docking_seconds) / attempted,
            "peak_gpu_memory_gib": None if memory is None else memory / 2**30,
        },
        "failures": [
            {"name": name, "reason": outcome.reason}
            for name, outcome in outcomes.items()
            if not outcome.docked
        ],
        "details": run.details,
    }


def _paired_records(
    outcomes: dict[str, dict[str, ComplexOutcome]],
    methods: dict[str, dict[str, object]],
    sets: dict[str, list[str]],
) -> list[dict[str, object]]:
    """The ``results.json`` entry ``paired``: :func:`paired_comparison` of every pair of methods, on the
    first set (in the order all, unseen, Vina's subset, i.e. the largest) that both were scored on."""
    records = []
    names = list(methods)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            shared = [
                name
                for name in sets
                if name in methods[first]["metrics"] and name in methods[second]["metrics"]
            ]
            if not shared:
                continue
            complexes = sets[shared[0]]
            comparison = paired_comparison(
                [outcomes[first][name] for name in complexes], [outcomes[second][name] for name in complexes]
            )
            records.append({"first": first, "second": second, "set": shared[0], **comparison})
    return records


def _write_csv(path: Path, outcomes: dict[str, dict[str, ComplexOutcome]], unseen: set[str]) -> None:
    """``complexes.csv``: one row per method and complex (columns :data:`CSV_COLUMNS`)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for method, by_name in outcomes.items():
            for name, outcome in by_name.items():
                docked = outcome.docked
                writer.writerow(
                    [
                        method,
                        name,
                        name in unseen,
                        "docked" if docked else "failed",
                        outcome.reason,
                        len(outcome.rmsds),
                        f"{outcome.top1_rmsd:.4f}" if docked else "",
                        f"{outcome.top5_rmsd:.4f}" if docked else "",
                        f"{outcome.best_rmsd:.4f}" if docked else "",
                        f"{outcome.top1_score:.4f}" if docked else "",
                        "" if outcome.pb_valid is None else outcome.pb_valid,
                        "; ".join(outcome.pb_failed_checks),
                        "" if outcome.seconds is None else f"{outcome.seconds:.2f}",
                        outcome.note,
                    ]
                )


def _plot_rmsd_cdf(
    path: Path, runs: Sequence[MethodRun], outcomes: dict[str, dict[str, ComplexOutcome]]
) -> None:
    """``rmsd_cdf.png``: % of complexes with top-1 RMSD ≤ x against x, one line per method."""
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    limit = 3 * LOOSE_RMSD_THRESHOLD
    for run in runs:
        top1 = np.array([outcome.top1_rmsd for outcome in outcomes[run.name].values()])
        shown = np.sort(top1[top1 <= limit])
        shares = 100.0 * np.arange(len(shown) + 1) / len(top1)
        x = np.concatenate([[0.0], shown, [limit]])
        axes.step(x, np.append(shares, shares[-1]), where="post", label=f"{run.name} (n={len(top1)})")
    axes.axvline(RMSD_THRESHOLD, color="grey", linestyle="--", linewidth=0.8)
    axes.set_xlim(0, limit)
    axes.set_ylim(0, 100)
    axes.set_xlabel("top-1 RMSD to the crystal ligand (Å)")
    axes.set_ylabel("complexes with top-1 RMSD ≤ x (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    figure.savefig(path, dpi=150)


def _json_ready(value: object) -> object:
    """``value`` with non-finite floats as ``None`` and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
