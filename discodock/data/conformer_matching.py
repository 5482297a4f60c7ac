"""Torsion matching of an RDKit conformer to a crystal pose: the denoiser's clean pose (method.md §6.1).

The rotatable dihedrals of the conformer are changed by ``Δ ∈ [−π, π]^T`` to minimise the RMSD to the
crystal pose after optimal rigid superposition,

.. math::

    \\mathrm{RMSD}(Δ) = \\min_{R ∈ SO(3), t} \\sqrt{\\tfrac{1}{N} \\sum_a |R\\, x_a(Δ) + t − y_a|^2},

by scipy's differential evolution with the settings of the original code (popsize 20, maxiter 20,
mutation (0.5, 1), recombination 0.8, seed, and scipy's default L-BFGS-B polish of the best member).
The original sets absolute dihedral values with RDKit and scores them with ``AlignMol`` (whose default
atom map is the first substructure match of the molecule onto itself, not always the identity for
symmetric ligands); here the search variables are the dihedral *changes* (the same search space, as
both cover a full turn), atoms correspond by index, and each generation is scored in one batched call:
every population member is one pose copy, twisted by
:func:`~discodock.geometry.pose.apply_torsion_updates` and superposed by
:func:`~discodock.geometry.pose.kabsch`. The polish minimises ``RMSD²`` (same minimiser, but smooth
where the RMSD reaches 0) with gradients from batched central differences (one call for all ``2T``
shifted copies) instead of scipy's one-call-per-coordinate differences of the RMSD.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import Bounds, OptimizeResult, differential_evolution, minimize

from discodock.geometry.pose import TorsionIndex, align_to, apply_torsion_updates, graph_mean

# Step of the central differences used by the polish, in radians.
_GRADIENT_STEP = 1e-6


class _AlignedRmsd:
    """Superposed RMSD to the crystal pose as a function of torsion changes, batched over copies.

    Parameters
    ----------
    conformer, crystal
        ``float64[N, 3]`` positions.
    torsions
        Rotatable bonds of the single ligand (atom indices ``0..N−1``).
    """

    def __init__(self, conformer: torch.Tensor, crystal: torch.Tensor, torsions: TorsionIndex) -> None:
        self.conformer = conformer
        self.crystal = crystal
        self.torsions = torsions
        self._copies: dict[int, TorsionIndex] = {}

    def batch(self, deltas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Superposed poses ``float64[S, N, 3]`` and RMSDs ``float64[S]`` of ``deltas: float64[S, T]``."""
        copies, num_atoms = deltas.shape[0], self.conformer.shape[0]
        if copies not in self._copies:
            self._copies[copies] = self.torsions.repeat(copies, num_atoms, 1)
        atom_graph = torch.arange(copies).repeat_interleave(num_atoms)
        twisted = apply_torsion_updates(
            self.conformer.repeat(copies, 1), self._copies[copies], deltas.reshape(-1)
        )
        target = self.crystal.repeat(copies, 1)
        aligned = align_to(twisted, target, atom_graph, copies)
        squared = ((aligned - target) ** 2).sum(-1, keepdim=True)
        rmsd = torch.sqrt(graph_mean(squared, atom_graph, copies)[:, 0])
        return aligned.reshape(copies, num_atoms, 3), rmsd

    def __call__(self, deltas: np.ndarray) -> np.ndarray | float:
        """RMSD of ``deltas``: ``[T, S] -> [S]`` (scipy's vectorised layout) or ``[T] -> float``."""
        values = torch.as_tensor(np.asarray(deltas, dtype=np.float64))
        if values.ndim == 1:
            return float(self.batch(values[None, :])[1][0])
        return self.batch(values.T)[1].numpy()

    def squared_deviation_and_gradient(self, deltas: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean squared deviation ``RMSD²`` at ``deltas: [T]`` and its central-difference gradient ``[T]``.

        The ``2T + 1`` evaluations form one batch. ``RMSD²`` is used rather than the RMSD because it is
        smooth where the RMSD reaches 0.
        """
        center = torch.as_tensor(np.asarray(deltas, dtype=np.float64))
        steps = _GRADIENT_STEP * torch.eye(center.shape[0], dtype=torch.float64)
        _, rmsd = self.batch(torch.cat([center[None, :], center + steps, center - steps]))
        squared = rmsd**2
        forward, backward = squared[1:].chunk(2)
        return float(squared[0]), ((forward - backward) / (2 * _GRADIENT_STEP)).numpy()

    def polish(
        self, func: object, x0: np.ndarray, bounds: Bounds, constraints: object = ()
    ) -> OptimizeResult:
        """L-BFGS-B from ``x0`` within ``bounds`` on ``RMSD²``, reported as an RMSD.

        Follows scipy's polish protocol ``polish(func, x0, bounds=..., constraints=...)``; ``func`` (this
        object's RMSD) is replaced by the smooth squared deviation with its batched gradient, and there
        are no ``constraints``.
        """
        result = minimize(self.squared_deviation_and_gradient, x0, jac=True, method="L-BFGS-B", bounds=bounds)
        result.fun = math.sqrt(max(float(result.fun), 0.0))
        return result


def match_torsions(
    conformer_pos: np.ndarray,
    crystal_pos: np.ndarray,
    torsion_edges: np.ndarray,
    mask_rotate: np.ndarray,
    seed: int = 0,
    popsize: int = 20,
    maxiter: int = 20,
) -> tuple[np.ndarray, float]:
    """Fit the conformer's rotatable dihedrals to the crystal pose and superpose it there.

    Parameters
    ----------
    conformer_pos
        ``float[N, 3]`` RDKit conformer (heavy atoms, same atom order as the crystal pose).
    crystal_pos
        ``float[N, 3]`` crystal pose.
    torsion_edges
        ``int[T, 2]`` rotatable bonds ``(u, v)``, ``v`` on the moving side.
    mask_rotate
        ``bool[T, N]`` moving side of each bond.
    seed
        Seed of the differential evolution.
    popsize, maxiter
        Population-size multiplier (``popsize · T`` members) and number of generations.

    Returns
    -------
    tuple[numpy.ndarray, float]
        The matched conformer rigidly superposed onto the crystal pose (``float64[N, 3]``) and its RMSD
        to the crystal pose in Å (``rmsd_matching``). With no rotatable bonds the conformer is only
        superposed.
    """
    conformer = torch.as_tensor(np.asarray(conformer_pos, dtype=np.float64))
    crystal = torch.as_tensor(np.asarray(crystal_pos, dtype=np.float64))
    if conformer.ndim != 2 or conformer.shape[1] != 3 or conformer.shape != crystal.shape:
        raise ValueError(
            f"positions must both be [N, 3], got {tuple(conformer.shape)} and {tuple(crystal.shape)}"
        )
    edges = np.asarray(torsion_edges, dtype=np.int64).reshape(-1, 2)
    mask = np.asarray(mask_rotate, dtype=bool).reshape(edges.shape[0], conformer.shape[0])
    objective = _AlignedRmsd(conformer, crystal, TorsionIndex.from_ligands([edges], [mask], [0]))
    num_torsions = edges.shape[0]
    best = np.zeros(num_torsions)
    if num_torsions > 0:
        result = differential_evolution(
            objective,
            bounds=[(-math.pi, math.pi)] * num_torsions,
            maxiter=maxiter,
            popsize=popsize,
            mutation=(0.5, 1.0),
            recombination=0.8,
            seed=seed,
            vectorized=True,
            updating="deferred",
            polish=objective.polish,
        )
        best = result.x
    aligned, rmsd = objective.batch(torch.as_tensor(best, dtype=torch.float64)[None, :])
    return aligned[0].numpy(), float(rmsd[0])
