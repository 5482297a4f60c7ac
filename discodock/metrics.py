"""Pose-quality metrics: symmetry-corrected RMSD, centroid distance, success rate (method.md §6.3, §6.4).

Poses are compared in place, in the fixed protein frame, without any superposition: the protein does not
move, so a pose's error includes its placement in the pocket. Positions are heavy atoms only (``N`` atoms)
in the same atom order as the reference.

Symmetry correction follows DiffDock: spyrmsd's ``symmrmsd`` minimises the RMSD over the automorphisms of
the heavy-atom molecular graph (atoms matched by atomic number and bonds), so swapping the two oxygens of a
carboxylate or flipping a phenyl ring costs nothing. Enumerating automorphisms can blow up for very
symmetric molecules, so it runs under a time limit: on timeout, or on any spyrmsd error,
:func:`symmetry_rmsd` falls back to the plain RMSD of every pose and logs a warning saying so.

The time limit is enforced with ``SIGALRM`` (``signal.setitimer``), whose handler raises inside spyrmsd's
Python loops, so even a long isomorphism enumeration is interrupted. Only the main thread handles signals:
called from another thread (or on a platform without ``setitimer``), spyrmsd runs without a time limit and
a ``RuntimeWarning`` says so. The timer replaces any ``SIGALRM`` handler during the call and restores it
afterwards.
"""

from __future__ import annotations

import logging
import signal
import threading
import warnings
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

import numpy as np
from rdkit import Chem
from spyrmsd.rmsd import symmrmsd

logger = logging.getLogger(__name__)

_Result = TypeVar("_Result")


class SymmetryTimeout(Exception):
    """Raised inside spyrmsd by the alarm handler when the symmetry search outruns its time limit."""


def rmsd(ref_pos: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Plain RMSD of each pose to the reference, atoms matched by index, no superposition.

    RMSD_s = sqrt( (1/N) Σ_i ‖poses[s, i] − ref_pos[i]‖² ).

    Parameters
    ----------
    ref_pos
        ``float[N, 3]`` reference positions (Å).
    poses
        ``float[S, N, 3]`` poses, or ``float[N, 3]`` for one pose.

    Returns
    -------
    np.ndarray
        ``float64[S]`` RMSDs in Å.
    """
    ref_pos, poses = _as_reference_and_poses(ref_pos, poses)
    return np.sqrt(np.mean(np.sum((poses - ref_pos) ** 2, axis=-1), axis=-1))


def centroid_distance(ref_pos: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Distance between each pose's centroid and the reference centroid.

    d_s = ‖ (1/N) Σ_i poses[s, i] − (1/N) Σ_i ref_pos[i] ‖.

    Parameters
    ----------
    ref_pos
        ``float[N, 3]`` reference positions (Å).
    poses
        ``float[S, N, 3]`` poses, or ``float[N, 3]`` for one pose.

    Returns
    -------
    np.ndarray
        ``float64[S]`` distances in Å.
    """
    ref_pos, poses = _as_reference_and_poses(ref_pos, poses)
    return np.linalg.norm(poses.mean(axis=1) - ref_pos.mean(axis=0), axis=-1)


def molecular_graph(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and adjacency matrix of a heavy-atom RDKit molecule, for :func:`symmetry_rmsd`.

    Parameters
    ----------
    mol
        Molecule without explicit hydrogens (e.g. after ``Chem.RemoveHs``), atoms in pose order.

    Returns
    -------
    atomic_numbers
        ``int64[N]``.
    adjacency
        ``int64[N, N]`` symmetric 0/1 bond matrix.

    Raises
    ------
    ValueError
        If the molecule has explicit hydrogen atoms.
    """
    atomic_numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], dtype=np.int64)
    if np.any(atomic_numbers == 1):
        raise ValueError("the molecule has explicit hydrogens; RMSDs are over heavy atoms only")
    return atomic_numbers, Chem.GetAdjacencyMatrix(mol).astype(np.int64)


def symmetry_rmsd(
    ref_pos: np.ndarray,
    poses: np.ndarray,
    atomic_numbers: np.ndarray,
    adjacency: np.ndarray,
    timeout_s: float = 10.0,
) -> np.ndarray:
    """Symmetry-corrected RMSD of each pose to the reference, no superposition.

    RMSD_s = min_π sqrt( (1/N) Σ_i ‖poses[s, π(i)] − ref_pos[i]‖² ) over the automorphisms π of the
    molecular graph, computed by spyrmsd ``symmrmsd`` (automorphisms found once for all poses). Falls back
    to :func:`rmsd`, with a logged warning, if spyrmsd fails or takes longer than ``timeout_s``.

    Parameters
    ----------
    ref_pos
        ``float[N, 3]`` reference heavy-atom positions (Å).
    poses
        ``float[S, N, 3]`` poses, or ``float[N, 3]`` for one pose, atoms in the order of ``ref_pos``.
    atomic_numbers
        ``int[N]`` atomic numbers (see :func:`molecular_graph`).
    adjacency
        ``int[N, N]`` symmetric 0/1 bond matrix.
    timeout_s
        Time limit (> 0) for the symmetry search and RMSDs together, in seconds (DiffDock: 10 s).

    Returns
    -------
    np.ndarray
        ``float64[S]`` RMSDs in Å.
    """
    ref_pos, poses = _as_reference_and_poses(ref_pos, poses)
    atomic_numbers = np.asarray(atomic_numbers)
    adjacency = np.asarray(adjacency)
    num_atoms = len(ref_pos)
    if atomic_numbers.shape != (num_atoms,) or adjacency.shape != (num_atoms, num_atoms):
        shapes = f"{atomic_numbers.shape} and {adjacency.shape}"
        raise ValueError(
            f"expected atomic_numbers [N] and adjacency [N, N] with N = {num_atoms}, got {shapes}"
        )
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")

    def symmetric() -> np.ndarray:
        values = symmrmsd(ref_pos, list(poses), atomic_numbers, atomic_numbers, adjacency, adjacency)
        return np.asarray(values, dtype=np.float64).reshape(len(poses))

    try:
        return _call_with_time_limit(symmetric, timeout_s)
    except Exception as error:  # the timeout or any spyrmsd failure: fall back, as DiffDock does
        if isinstance(error, SymmetryTimeout):
            reason = f"timed out after {timeout_s:g} s"
        else:
            reason = f"failed ({type(error).__name__}: {error})"
        logger.warning("symmetry-corrected RMSD %s; using plain RMSD", reason)
        return rmsd(ref_pos, poses)


def success_rate(rmsds: np.ndarray, threshold: float = 2.0) -> float:
    """Percentage of RMSDs strictly below a threshold (e.g. top-1 %RMSD < 2 Å).

    Parameters
    ----------
    rmsds
        ``float[K]`` one RMSD per complex (NaN counts as a failure).
    threshold
        Cutoff in Å.

    Returns
    -------
    float
        100 · |{k : rmsds[k] < threshold}| / K.
    """
    rmsds = np.asarray(rmsds, dtype=np.float64)
    if rmsds.size == 0:
        raise ValueError("success_rate needs at least one RMSD")
    return float(100.0 * np.mean(rmsds < threshold))


def _as_reference_and_poses(ref_pos: np.ndarray, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``float64[N, 3]`` and ``float64[S, N, 3]`` arrays, checking that the shapes agree."""
    ref_pos = np.asarray(ref_pos, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim == 2:
        poses = poses[None]
    if ref_pos.ndim != 2 or ref_pos.shape[1] != 3 or poses.shape[1:] != ref_pos.shape:
        shapes = f"{ref_pos.shape} and {poses.shape}"
        raise ValueError(f"expected ref_pos [N, 3] and poses [S, N, 3], got {shapes}")
    return ref_pos, poses


def _call_with_time_limit(function: Callable[[], _Result], timeout_s: float) -> _Result:
    """Call ``function``; raise :class:`SymmetryTimeout` inside it after ``timeout_s`` seconds.

    Off the main thread, or without ``signal.setitimer``, the call runs without a limit and a
    :class:`RuntimeWarning` says so (once per call site, by the default warning filters).
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        warnings.warn(
            "symmetry-corrected RMSD runs without its time limit outside the main thread",
            RuntimeWarning,
            stacklevel=3,
        )
        return function()

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise SymmetryTimeout

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return function()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
