"""The AutoDock Vina baseline, run as ``shared/docs/vina-notes.md`` prescribes.

Per complex (:func:`dock_complex`; one process and one CPU core each, complexes in parallel processes):

1. **Search box** (:func:`pocket_box`, :func:`blind_box`). Pocket: centred on the crystal ligand's heavy-atom
   centroid, size per axis ``max(extent + 2 · 4 Å, 15 Å)``; blind: the whole protein, centred on the
   bounding box of the receptor's heavy atoms, size per axis ``extent + 2 · 4 Å``.
2. **Receptor PDBQT** from the cleaned receptor (:mod:`discodock.benchmark.complexes`: amino-acid heavy atoms,
   one altloc) by Meeko, ``mk_prepare_receptor.py --read_pdb rec.pdb -o rec -p --box_center X Y Z --box_size
   SX SY SZ`` (numbers as plain decimals); if that fails (residues without a template), the same with
   ``--delete_bad_res_from_box_radius 8``; if that fails too, Open Babel ``obabel rec.pdb -xr -p 7.4 -O
   rec.pdbqt`` (polar hydrogens at pH 7.4). The route taken is recorded per complex
   (:data:`RECEPTOR_ROUTES`).
3. **Ligand** without the crystal pose: canonical SMILES of the crystal ligand → ``AddHs`` → one ETKDGv3
   conformer (seeded) → Meeko ``MoleculePreparation`` → ``PDBQTWriterLegacy.write_string``.
4. **Docking**: ``Vina(sf_name='vina', cpu=1, seed=42)``, ``compute_vina_maps``, ``dock(exhaustiveness=8,
   n_poses=9)``; the CPU time of the maps and the search is recorded.
5. **Poses back** with Meeko (``PDBQTMolecule``, ``RDKitMolCreate.from_pdbqt_mol``), hydrogens removed, heavy
   atoms mapped onto the crystal ligand's atom order by a substructure match (any automorphism will do: the
   RMSD is symmetry-corrected). Poses stay in Vina's order (best score first).

Files of each complex stay in ``<work_dir>/<name>/`` (receptor and ligand PDBQT, Vina's output poses).
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Literal

import numpy as np
from meeko import MoleculePreparation, PDBQTMolecule, PDBQTWriterLegacy, RDKitMolCreate
from rdkit import Chem
from rdkit.Chem import AllChem
from tqdm import tqdm
from vina import Vina

from discodock.benchmark.complexes import BenchmarkComplex, MethodRun
from discodock.errors import InputError, failure_reason
from discodock.inference.predict import safe_name

VINA_SEED = 42
"""Seed of Vina's search."""

EXHAUSTIVENESS = 8
"""Vina's exhaustiveness."""

NUM_POSES = 9
"""Poses Vina returns."""

BOX_PADDING = 4.0
"""Å added on each side of the ligand (pocket box) or the protein (blind box)."""

MIN_BOX_SIZE = 15.0
"""Å; smallest edge of a pocket box."""

BAD_RESIDUE_RADIUS = 8.0
"""Å; Meeko's fall-back deletes residues without a template only this far from the box (Vina's cutoff)."""

RECEPTOR_ROUTES = (
    "meeko",
    "meeko, residues without a template deleted beyond 8 Å of the box",
    "openbabel -p 7.4",
)
"""How a receptor PDBQT was made, in the order they are tried."""

BoxMode = Literal["pocket", "blind"]


@dataclass(frozen=True)
class SearchBox:
    """Vina's search box.

    Attributes
    ----------
    center
        ``float64[3]`` (Å).
    size
        ``float64[3]`` edge lengths (Å).
    """

    center: np.ndarray
    size: np.ndarray


@dataclass(frozen=True)
class VinaOutcome:
    """What Vina did on one complex.

    Attributes
    ----------
    name
        The complex.
    positions
        ``float64[P, N, 3]`` poses in the crystal ligand's atom order, best score first; ``None`` if failed.
    energies
        ``float64[P]`` Vina scores (kcal/mol); ``None`` if failed.
    receptor_route
        Entry of :data:`RECEPTOR_ROUTES`, or empty if no receptor was made.
    preparation_seconds
        Wall time of the receptor and ligand PDBQT files.
    docking_cpu_seconds
        CPU time of ``compute_vina_maps`` and ``dock``.
    reason
        Why it failed; empty on success.
    """

    name: str
    positions: np.ndarray | None
    energies: np.ndarray | None
    receptor_route: str
    preparation_seconds: float
    docking_cpu_seconds: float
    reason: str = ""


def pocket_box(crystal_positions: np.ndarray) -> SearchBox:
    """Box around the crystal ligand: centre ``c = mean_i x_i``, size ``max(max_i x_i − min_i x_i + 8, 15)``.

    Parameters
    ----------
    crystal_positions
        ``float[N, 3]`` heavy-atom positions of the crystal ligand (Å).
    """
    positions = np.asarray(crystal_positions, dtype=np.float64)
    extent = positions.max(axis=0) - positions.min(axis=0)
    return SearchBox(positions.mean(axis=0), np.maximum(extent + 2 * BOX_PADDING, MIN_BOX_SIZE))


def blind_box(receptor_positions: np.ndarray) -> SearchBox:
    """Box over the whole protein: its heavy atoms' bounding box, padded by 4 Å on each side.

    Parameters
    ----------
    receptor_positions
        ``float[M, 3]`` heavy-atom positions of the receptor (Å).
    """
    positions = np.asarray(receptor_positions, dtype=np.float64)
    low, high = positions.min(axis=0), positions.max(axis=0)
    return SearchBox((low + high) / 2, high - low + 2 * BOX_PADDING)


def receptor_pdbqt(receptor_pdb: Path, box: SearchBox, out_stem: Path) -> tuple[Path, str]:
    """Make the receptor PDBQT by the first route of :data:`RECEPTOR_ROUTES` that works.

    Parameters
    ----------
    receptor_pdb
        Cleaned receptor (amino-acid heavy atoms).
    box
        The search box (Meeko's fall-back deletes bad residues only far from it).
    out_stem
        Output path without suffix; ``<out_stem>.pdbqt`` is written.

    Returns
    -------
    tuple
        The PDBQT file and the route taken.

    Raises
    ------
    InputError
        If every route fails (with the last tool's message).
    """
    out = out_stem.with_suffix(".pdbqt")
    meeko = [
        sys.executable,
        str(_program("mk_prepare_receptor.py")),
        "--read_pdb",
        str(receptor_pdb),
        "-o",
        str(out_stem),
        "-p",
        "--box_center",
        *(f"{value:.3f}" for value in box.center),
        "--box_size",
        *(f"{value:.3f}" for value in box.size),
    ]
    commands = [
        meeko,
        [*meeko, "--delete_bad_res_from_box_radius", f"{BAD_RESIDUE_RADIUS:.1f}"],
        [str(_program("obabel")), str(receptor_pdb), "-xr", "-p", "7.4", "-O", str(out)],
    ]
    message = ""
    for route, command in zip(RECEPTOR_ROUTES, commands, strict=True):
        out.unlink(missing_ok=True)
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        if finished.returncode == 0 and out.is_file() and "ATOM" in out.read_text():
            return out, route
        message = " ".join((finished.stderr or finished.stdout).split())[-300:]
    raise InputError(receptor_pdb, f"no receptor PDBQT by Meeko or Open Babel ({message})")


def ligand_pdbqt(crystal_ligand: Chem.Mol, seed: int) -> str:
    """PDBQT of the ligand from its SMILES alone: ``AddHs`` → seeded ETKDGv3 → Meeko.

    Raises
    ------
    InputError
        If RDKit cannot embed the molecule or Meeko cannot write it.
    """
    smiles = Chem.MolToSmiles(crystal_ligand)
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    parameters = AllChem.ETKDGv3()
    parameters.randomSeed = seed
    if AllChem.EmbedMolecule(mol, parameters) != 0:
        raise InputError(smiles, "RDKit could not embed a conformer (ETKDGv3)")
    setups = MoleculePreparation().prepare(mol)
    text, ok, error = PDBQTWriterLegacy.write_string(setups[0])
    if not ok:
        raise InputError(smiles, f"Meeko could not write a PDBQT ({' '.join(error.split())})")
    return text


def crystal_order_positions(docked_pdbqt: str, crystal_ligand: Chem.Mol) -> np.ndarray:
    """Heavy-atom poses of Vina's output in the crystal ligand's atom order.

    Returns
    -------
    numpy.ndarray
        ``float64[P, N, 3]``, poses in Vina's order.

    Raises
    ------
    InputError
        If Meeko cannot rebuild the molecule or its heavy-atom graph does not match the crystal ligand's.
    """
    molecules = RDKitMolCreate.from_pdbqt_mol(PDBQTMolecule(docked_pdbqt, skip_typing=True))
    if not molecules or molecules[0] is None:
        raise InputError(Chem.MolToSmiles(crystal_ligand), "Meeko could not rebuild Vina's poses")
    docked = Chem.RemoveHs(molecules[0])
    match = docked.GetSubstructMatch(crystal_ligand)
    if len(match) != crystal_ligand.GetNumAtoms() or docked.GetNumAtoms() != len(match):
        raise InputError(
            Chem.MolToSmiles(crystal_ligand), "Vina's poses do not match the crystal ligand graph"
        )
    index = list(match)
    return np.stack([conformer.GetPositions()[index] for conformer in docked.GetConformers()])


def dock_complex(complex_: BenchmarkComplex, mode: BoxMode, work_dir: Path, seed: int) -> VinaOutcome:
    """Dock one complex with Vina (steps 1-5 of the module docstring); never raises.

    Parameters
    ----------
    complex_
        The complex.
    mode
        ``pocket`` or ``blind`` box.
    work_dir
        Folder of this complex's files (created).
    seed
        Seed of the ligand's ETKDG conformer (Vina's own seed is :data:`VINA_SEED`).
    """
    route = ""
    preparation_seconds = docking_seconds = 0.0
    start = time.perf_counter()
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        if mode == "pocket":
            box = pocket_box(complex_.crystal_positions)
        else:
            box = blind_box(_pdb_positions(complex_.receptor_pdb))
        receptor, route = receptor_pdbqt(complex_.receptor_pdb, box, work_dir / "receptor")
        ligand = ligand_pdbqt(complex_.crystal_ligand, seed)
        (work_dir / "ligand.pdbqt").write_text(ligand)
        preparation_seconds = time.perf_counter() - start
        vina = Vina(sf_name="vina", cpu=1, seed=VINA_SEED, verbosity=0)
        vina.set_receptor(str(receptor))
        vina.set_ligand_from_string(ligand)
        cpu_start = time.process_time()
        vina.compute_vina_maps(center=box.center.tolist(), box_size=box.size.tolist())
        vina.dock(exhaustiveness=EXHAUSTIVENESS, n_poses=NUM_POSES)
        docking_seconds = time.process_time() - cpu_start
        poses = vina.poses(n_poses=NUM_POSES)
        (work_dir / "vina_poses.pdbqt").write_text(poses)
        energies = np.asarray(vina.energies(n_poses=NUM_POSES), dtype=np.float64)[:, 0]
        positions = crystal_order_positions(poses, complex_.crystal_ligand)
    except Exception as error:  # one failing complex must not stop the baseline
        preparation_seconds = preparation_seconds or time.perf_counter() - start
        reason = failure_reason(error)
        return VinaOutcome(complex_.name, None, None, route, preparation_seconds, docking_seconds, reason)
    return VinaOutcome(complex_.name, positions, energies, route, preparation_seconds, docking_seconds)


def run_vina(
    complexes: Sequence[BenchmarkComplex],
    mode: BoxMode,
    work_dir: str | Path,
    *,
    seed: int = 0,
    workers: int | None = None,
    time_limit: float | None = None,
    progress: bool = True,
) -> MethodRun:
    """Dock every complex with Vina, ``workers`` complexes at a time (one CPU core each).

    ``time_limit``: seconds (wall clock) after which a complex is stopped and counted as a failure
    (``None``: no limit); Vina can take hours on large flexible ligands.

    Returns
    -------
    MethodRun
        ``vina-<mode>``: poses best score first, scores in kcal/mol; per-complex seconds (preparation wall
        time + docking CPU time) and receptor routes.
    """
    work_dir = Path(work_dir) / mode
    workers = max(1, min(workers or os.cpu_count() or 1, len(complexes)))
    start = time.perf_counter()
    outcomes = {
        outcome.name: outcome
        for outcome in tqdm(
            _outcomes(complexes, mode, work_dir, seed, workers, time_limit),
            total=len(complexes),
            desc=f"vina ({mode})",
            unit="complex",
            disable=not progress,
        )
    }
    wall_seconds = time.perf_counter() - start
    docked = {name: outcome for name, outcome in outcomes.items() if outcome.positions is not None}
    routes = Counter(outcome.receptor_route or "none" for outcome in outcomes.values())
    box = (
        f"pocket box (crystal ligand centroid, extent + 2×{BOX_PADDING:g} Å, at least {MIN_BOX_SIZE:g} Å)"
        if mode == "pocket"
        else f"blind box (receptor bounding box + 2×{BOX_PADDING:g} Å)"
    )
    return MethodRun(
        name=f"vina-{mode}",
        description=(
            f"AutoDock Vina {_vina_version()}, {box}, exhaustiveness {EXHAUSTIVENESS}, {NUM_POSES} poses, "
            f"seed {VINA_SEED}; ligand from SMILES (ETKDGv3, seed {seed}) via Meeko"
            + ("" if time_limit is None else f"; stopped after {time_limit:g} s per complex (a failure)")
        ),
        attempted=tuple(complex_.name for complex_ in complexes),
        positions={name: outcome.positions for name, outcome in docked.items()},
        scores={name: outcome.energies for name, outcome in docked.items()},
        score_name="vina_kcal_per_mol",
        ranked=True,
        failures={name: outcome.reason for name, outcome in outcomes.items() if outcome.reason},
        preparation_seconds=sum(outcome.preparation_seconds for outcome in outcomes.values()),
        docking_seconds=sum(outcome.docking_cpu_seconds for outcome in outcomes.values()),
        hardware=f"CPU, 1 core per complex ({workers} in parallel)",
        complex_seconds={
            name: outcome.preparation_seconds + outcome.docking_cpu_seconds
            for name, outcome in outcomes.items()
        },
        complex_notes={
            name: f"receptor: {outcome.receptor_route or 'none'}" for name, outcome in outcomes.items()
        },
        details={"receptor routes": dict(routes), "wall seconds": round(wall_seconds, 1)},
    )


def _outcomes(
    complexes: Sequence[BenchmarkComplex],
    mode: BoxMode,
    work_dir: Path,
    seed: int,
    workers: int,
    time_limit: float | None = None,
) -> Iterator[VinaOutcome]:
    """:func:`dock_complex` of every complex, each in its own process, ``workers`` at a time.

    A complex still running after ``time_limit`` seconds (wall clock) is stopped and reported as failed,
    as is one whose process dies without a result. Outcomes come in the order they finish.
    """
    context = get_context("spawn")
    results = context.Queue()
    pending = list(complexes)
    running: dict[str, tuple[BaseProcess, float]] = {}
    while pending or running:
        while pending and len(running) < workers:
            complex_ = pending.pop(0)
            process = context.Process(
                target=_dock_into_queue,
                args=(results, complex_, mode, work_dir / safe_name(complex_.name), seed),
                daemon=True,
            )
            process.start()
            running[complex_.name] = (process, time.monotonic())
        try:
            outcome = results.get(timeout=1.0)
        except queue.Empty:
            outcome = None
        if outcome is not None:
            running.pop(outcome.name)[0].join()
            yield outcome
        for name, (process, started) in list(running.items()):
            elapsed = time.monotonic() - started
            if time_limit is not None and elapsed > time_limit:
                reason = f"stopped: Vina took longer than the time limit of {time_limit:g} s"
            elif not process.is_alive() and process.exitcode not in (0, None):
                reason = f"the Vina process died (exit code {process.exitcode})"
            else:
                continue
            process.kill()
            process.join()
            del running[name]
            yield VinaOutcome(name, None, None, "", 0.0, elapsed, reason)


def _dock_into_queue(
    results: Queue, complex_: BenchmarkComplex, mode: BoxMode, work_dir: Path, seed: int
) -> None:
    """Worker process of :func:`_outcomes`: :func:`dock_complex`, put on ``results``."""
    results.put(dock_complex(complex_, mode, work_dir, seed))


def _program(name: str) -> Path:
    """An executable installed beside this Python (the virtual environment's ``bin``), else on ``PATH``."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found is None:
        raise InputError(name, "not found; install the benchmark extra (pip install 'discodock[benchmark]')")
    return Path(found)


def _pdb_positions(path: Path) -> np.ndarray:
    """``float64[M, 3]`` coordinates of the ATOM/HETATM records of a PDB file."""
    rows = [
        (float(line[30:38]), float(line[38:46]), float(line[46:54]))
        for line in path.read_text().splitlines()
        if line.startswith(("ATOM", "HETATM"))
    ]
    return np.asarray(rows, dtype=np.float64)


def _vina_version() -> str:
    """The installed Vina's version."""
    return version("vina")
