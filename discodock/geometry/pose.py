"""Batched ligand pose updates: rigid motion, torsion twists and Kabsch alignment (method.md §1.2, §1.6).

A batch holds ``B`` ligand *graphs* (pose copies of possibly different ligands) with ``A`` atoms in
total, concatenated: ``pos: float[A, 3]`` and ``atom_graph: int64[A]`` (sorted graph index of each
atom). Rotatable bonds of all graphs are described by a :class:`TorsionIndex` with global atom indices.
Every function runs as a handful of tensor operations on the device of its inputs; the only Python
loop is over torsion *ranks* (the position of a bond within its ligand), never over ligands.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from discodock.geometry.so3 import axis_angle_to_matrix, random_rotation_matrices


@dataclass(frozen=True, eq=False)
class TorsionIndex:
    """Rotatable bonds of a batch of ligand graphs, with the sparse form of their moving-atom masks.

    Attributes
    ----------
    edges
        ``int64[T, 2]``: global atom indices ``(u, v)`` of each rotatable bond, ``v`` on the moving
        (smaller) side; the twist axis points from ``x_v`` to ``x_u``.
    graph
        ``int64[T]``: graph of each bond.
    rank
        ``int64[T]``: position of the bond within its ligand, ``0..m_i−1`` in bond-list order; twists
        are applied in increasing rank.
    moving_torsion, moving_atom
        ``int64[P]``: atom ``moving_atom[p]`` moves with bond ``moving_torsion[p]`` (the true entries of
        ``mask_rotate``). Within one rank every atom appears at most once, since a graph has one bond
        per rank and graphs share no atoms.

    Notes
    -----
    Construction groups the moving pairs by rank (one host synchronisation to read the group sizes);
    the twists then only slice these groups.
    """

    edges: torch.Tensor
    graph: torch.Tensor
    rank: torch.Tensor
    moving_torsion: torch.Tensor
    moving_atom: torch.Tensor
    # Moving pairs ordered by the rank of their bond: the bond, and the rows (moving atom, u, v); plus
    # the boundaries of each rank's slice.
    _ranked_torsion: torch.Tensor = field(init=False, repr=False)
    _ranked_atoms: torch.Tensor = field(init=False, repr=False)
    _rank_bounds: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.edges.ndim != 2 or self.edges.shape[1] != 2:
            raise ValueError(f"torsion edges must have shape [T, 2], got {tuple(self.edges.shape)}")
        num_torsions = self.edges.shape[0]
        if self.graph.shape != (num_torsions,) or self.rank.shape != (num_torsions,):
            raise ValueError("torsion graph and rank must have shape [T]")
        if self.moving_torsion.shape != self.moving_atom.shape or self.moving_atom.ndim != 1:
            raise ValueError("moving_torsion and moving_atom must have the same shape [P]")
        pair_rank = self.rank[self.moving_torsion]
        order = torch.argsort(pair_rank, stable=True)
        ranked_torsion = self.moving_torsion[order]
        ranked_atoms = torch.stack([self.moving_atom[order], *self.edges[ranked_torsion].T])
        num_ranks = int(self.rank.max()) + 1 if num_torsions > 0 else 0
        counts = torch.bincount(pair_rank, minlength=num_ranks).tolist()
        object.__setattr__(self, "_ranked_torsion", ranked_torsion)
        object.__setattr__(self, "_ranked_atoms", ranked_atoms)
        object.__setattr__(self, "_rank_bounds", (0, *np.cumsum(counts, dtype=np.int64).tolist()))

    @property
    def num_torsions(self) -> int:
        return int(self.edges.shape[0])

    @property
    def num_ranks(self) -> int:
        """Largest number of rotatable bonds of one graph."""
        return len(self._rank_bounds) - 1

    def to(self, device: torch.device | str) -> TorsionIndex:
        """The same index on ``device``."""
        return TorsionIndex(
            edges=self.edges.to(device),
            graph=self.graph.to(device),
            rank=self.rank.to(device),
            moving_torsion=self.moving_torsion.to(device),
            moving_atom=self.moving_atom.to(device),
        )

    @classmethod
    def from_ligands(
        cls,
        edges: Sequence[torch.Tensor | np.ndarray],
        mask_rotate: Sequence[torch.Tensor | np.ndarray],
        atom_offsets: Sequence[int] | torch.Tensor | np.ndarray,
        device: torch.device | str | None = None,
    ) -> TorsionIndex:
        """Index of graphs ``i = 0..B−1`` given their local bonds and masks.

        Parameters
        ----------
        edges
            Per graph ``int[T_i, 2]`` local atom indices ``(u, v)``.
        mask_rotate
            Per graph ``bool[T_i, N_i]`` moving sides.
        atom_offsets
            ``int[B]``: global index of each graph's first atom.
        device
            Device of the result (default CPU).
        """
        if not len(edges) == len(mask_rotate) == len(atom_offsets):
            raise ValueError("edges, mask_rotate and atom_offsets must have one entry per graph")
        offsets = [int(offset) for offset in atom_offsets]
        names = ("edges", "graph", "rank", "torsion", "atom")
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        torsion_offset = 0
        for index, (local_edges, local_mask, atom_offset) in enumerate(
            zip(edges, mask_rotate, offsets, strict=True)
        ):
            local_edges = torch.as_tensor(local_edges).to("cpu", torch.long).reshape(-1, 2)
            local_mask = torch.as_tensor(local_mask).to("cpu", torch.bool)
            count = local_edges.shape[0]
            if local_mask.ndim != 2 or local_mask.shape[0] != count:
                raise ValueError(f"mask_rotate of graph {index} must have shape [{count}, N]")
            local_torsion, local_atom = torch.nonzero(local_mask, as_tuple=True)
            parts["edges"].append(local_edges + atom_offset)
            parts["graph"].append(torch.full((count,), index, dtype=torch.long))
            parts["rank"].append(torch.arange(count))
            parts["torsion"].append(local_torsion + torsion_offset)
            parts["atom"].append(local_atom + atom_offset)
            torsion_offset += count

        def joined(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            tensors = parts[name] or [torch.zeros(shape, dtype=torch.long)]
            return torch.cat(tensors).to(device)

        return cls(
            edges=joined("edges", (0, 2)),
            graph=joined("graph", (0,)),
            rank=joined("rank", (0,)),
            moving_torsion=joined("torsion", (0,)),
            moving_atom=joined("atom", (0,)),
        )

    def repeat(self, copies: int, atoms_per_copy: int, graphs_per_copy: int) -> TorsionIndex:
        """Index of ``copies`` consecutive copies of the whole batch (copy-major, like ``pos.repeat``).

        Parameters
        ----------
        copies
            Number of copies.
        atoms_per_copy, graphs_per_copy
            Atoms and graphs of the batch this index describes.
        """
        device = self.edges.device
        copy = torch.arange(copies, device=device)

        def shifted(tensor: torch.Tensor, step: int) -> torch.Tensor:
            shape = (copies,) + (1,) * tensor.ndim
            return (tensor.unsqueeze(0) + (copy * step).reshape(shape)).flatten(0, 1)

        return TorsionIndex(
            edges=shifted(self.edges, atoms_per_copy),
            graph=shifted(self.graph, graphs_per_copy),
            rank=self.rank.repeat(copies),
            moving_torsion=shifted(self.moving_torsion, self.num_torsions),
            moving_atom=shifted(self.moving_atom, atoms_per_copy),
        )


def _rotate_offsets(
    offset: torch.Tensor, axis: torch.Tensor, cosine: torch.Tensor, sine: torch.Tensor
) -> torch.Tensor:
    """Rotate vectors ``d`` about ``axis`` by the angle with the given cosine and sine (right-hand rule).

    Rodrigues' formula with unit axis ``k``: ``d' = d cos θ + (k × d) sin θ + k (k·d)(1 − cos θ)``.
    ``offset, axis``: ``float[P, 3]`` (``axis`` non-zero, not necessarily unit); ``cosine, sine``:
    ``float[P, 1]``. Returns ``float[P, 3]``.
    """
    unit = torch.nn.functional.normalize(axis, dim=-1)
    along = (unit * offset).sum(-1, keepdim=True)
    return offset * cosine + torch.linalg.cross(unit, offset) * sine + unit * along * (1 - cosine)


def apply_torsion_updates(pos: torch.Tensor, torsions: TorsionIndex, delta: torch.Tensor) -> torch.Tensor:
    """Twist every rotatable bond by its angle, sequentially in rank order.

    For bond ``(u, v)`` at rank ``k``, every atom of its moving side is rotated by ``Δθ`` about the axis
    through ``x_v`` with direction ``x_u − x_v`` (right-hand rule), using the positions left by ranks
    ``< k`` (``modify_conformer_torsion_angles`` of the original code, for all graphs at once).

    Parameters
    ----------
    pos
        ``float[A, 3]`` atom positions.
    torsions
        Rotatable bonds of the batch (on ``pos.device``).
    delta
        ``float[T]`` twist angles in radians.

    Returns
    -------
    torch.Tensor
        ``float[A, 3]`` new positions (``pos`` is not modified).
    """
    if delta.shape != (torsions.num_torsions,):
        raise ValueError(f"delta must have shape [{torsions.num_torsions}], got {tuple(delta.shape)}")
    angle = delta[torsions._ranked_torsion][:, None]
    cosine, sine = torch.cos(angle), torch.sin(angle)
    for start, stop in itertools.pairwise(torsions._rank_bounds):
        moving_u_v = torsions._ranked_atoms[:, start:stop]
        moving, bonded, pivot = pos[moving_u_v].unbind(0)
        rotated = _rotate_offsets(moving - pivot, bonded - pivot, cosine[start:stop], sine[start:stop])
        pos = pos.index_copy(0, moving_u_v[0], pivot + rotated)
    return pos


def graph_mean(values: torch.Tensor, atom_graph: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Mean over the atoms of each graph: ``float[A, ...] -> float[B, ...]`` (zero for empty graphs)."""
    total = values.new_zeros((num_graphs, *values.shape[1:])).index_add_(0, atom_graph, values)
    count = torch.bincount(atom_graph, minlength=num_graphs).clamp(min=1).to(values.dtype)
    return total / count.reshape(-1, *([1] * (values.ndim - 1)))


def centred(values: torch.Tensor, atom_graph: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """``values [A, ...]`` minus the mean of their graph (e.g. atom positions relative to the centroid)."""
    return values - graph_mean(values, atom_graph, num_graphs)[atom_graph]


def gyration_radius(pos: torch.Tensor, atom_graph: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """``float[B]``: ``sqrt(mean_i |x_i − c|²)`` of each graph's atoms ``pos [A, 3]`` (``c`` the centroid)."""
    offsets = centred(pos, atom_graph, num_graphs)
    return graph_mean(offsets.square().sum(-1), atom_graph, num_graphs).sqrt()


def kabsch(
    mobile: torch.Tensor, target: torch.Tensor, atom_graph: torch.Tensor, num_graphs: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-graph proper rigid motion that best superimposes ``mobile`` onto ``target`` (least squares).

    With centroids ``m̄, t̄`` and ``H = Σ_a (m_a − m̄)(t_a − t̄)ᵀ = U S Vᵀ``, the rotation is
    ``R = V diag(1, 1, d) Uᵀ`` with ``d = sign det(V Uᵀ)`` (no reflections) and ``t = t̄ − R m̄``,
    so that ``R m_a + t ≈ t_a``.

    Parameters
    ----------
    mobile, target
        ``float[A, 3]`` corresponding atom positions.
    atom_graph
        ``int64[A]`` graph of each atom.
    num_graphs
        ``B``.

    Returns
    -------
    tuple[torch.Tensor, torch.Tensor]
        ``R: float[B, 3, 3]`` and ``t: float[B, 3]``.
    """
    mobile_center, target_center = graph_mean(torch.cat([mobile, target], 1), atom_graph, num_graphs).split(
        3, 1
    )
    mobile_centered = mobile - mobile_center[atom_graph]
    target_centered = target - target_center[atom_graph]
    covariance = mobile.new_zeros(num_graphs, 3, 3).index_add_(
        0, atom_graph, mobile_centered[:, :, None] * target_centered[:, None, :]
    )
    left, _, right_t = torch.linalg.svd(covariance)
    right = right_t.transpose(-1, -2)
    rows = right @ left.transpose(-1, -2)
    sign = torch.sign((torch.linalg.cross(rows[:, 0], rows[:, 1]) * rows[:, 2]).sum(-1))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    correction = torch.ones(num_graphs, 3, dtype=mobile.dtype, device=mobile.device)
    correction[:, 2] = sign
    rotation = right @ (correction[:, :, None] * left.transpose(-1, -2))
    translation = target_center - (rotation @ mobile_center[:, :, None])[:, :, 0]
    return rotation, translation


def align_to(
    mobile: torch.Tensor, target: torch.Tensor, atom_graph: torch.Tensor, num_graphs: int
) -> torch.Tensor:
    """``mobile`` moved by its per-graph :func:`kabsch` motion onto ``target``, ``float[A, 3]``."""
    rotation, translation = kabsch(mobile, target, atom_graph, num_graphs)
    return (rotation[atom_graph] @ mobile[:, :, None])[:, :, 0] + translation[atom_graph]


def apply_pose_updates(
    pos: torch.Tensor,
    atom_graph: torch.Tensor,
    num_graphs: int,
    delta_tr: torch.Tensor,
    delta_rot: torch.Tensor,
    delta_tor: torch.Tensor | None,
    torsions: TorsionIndex | None,
) -> torch.Tensor:
    """Apply a translation, rotation and torsion update to every graph (``modify_conformer``).

    1. rigid step ``x' = R(Δr)(x − c) + c + Δtr`` with ``c`` the graph's centroid;
    2. torsion twists of ``x'`` (:func:`apply_torsion_updates`) giving ``x''``;
    3. ``x''`` Kabsch-aligned onto ``x'``, so the twist changes neither centroid nor orientation.

    Steps 2–3 are skipped when ``delta_tor`` is ``None`` or there are no rotatable bonds.

    Parameters
    ----------
    pos
        ``float[A, 3]``.
    atom_graph, num_graphs
        Graph of each atom and ``B``.
    delta_tr
        ``float[B, 3]`` translations.
    delta_rot
        ``float[B, 3]`` rotation vectors (about each centroid).
    delta_tor
        ``float[T]`` twist angles, or ``None``.
    torsions
        Rotatable bonds, or ``None`` when ``delta_tor`` is ``None``.

    Returns
    -------
    torch.Tensor
        ``float[A, 3]``.
    """
    center = graph_mean(pos, atom_graph, num_graphs)[atom_graph]
    rotation = axis_angle_to_matrix(delta_rot)[atom_graph]
    rigid = (rotation @ (pos - center)[:, :, None])[:, :, 0] + center + delta_tr[atom_graph]
    if delta_tor is None or torsions is None or torsions.num_torsions == 0:
        return rigid
    twisted = apply_torsion_updates(rigid, torsions, delta_tor)
    return align_to(twisted, rigid, atom_graph, num_graphs)


def randomize_poses(
    pos: torch.Tensor,
    atom_graph: torch.Tensor,
    num_graphs: int,
    torsions: TorsionIndex | None,
    sigma_tr_max: float | torch.Tensor = 19.0,
    center: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw poses from the ``t = 1`` prior (``randomize_position``, method.md §1.6).

    Every torsion is twisted by ``U(−π, π)`` (so its value is uniform), then each graph is rotated by a
    Haar-uniform rotation about its centroid and its centroid is placed at ``center + N(0, σ_tr,max² I)``.

    Parameters
    ----------
    pos
        ``float[A, 3]`` starting conformers (only their local geometry survives).
    atom_graph, num_graphs
        Graph of each atom and ``B``.
    torsions
        Rotatable bonds, or ``None`` for rigid ligands.
    sigma_tr_max
        Translation scale in Å (19 Å in the released configs), or ``float[B]`` one per graph.
    center
        ``float[3]`` or ``float[B, 3]`` prior centre; default the origin (the protein centre).
    generator
        Optional ``torch.Generator`` on ``pos.device``.

    Returns
    -------
    torch.Tensor
        ``float[A, 3]``.
    """
    device, dtype = pos.device, pos.dtype
    if torsions is not None and torsions.num_torsions > 0:
        uniform = torch.rand(torsions.num_torsions, generator=generator, device=device, dtype=dtype)
        pos = apply_torsion_updates(pos, torsions, (2.0 * uniform - 1.0) * math.pi)
    rotation = random_rotation_matrices(num_graphs, generator=generator, device=device, dtype=dtype)
    scale = torch.as_tensor(sigma_tr_max, device=device, dtype=dtype).reshape(-1, 1)
    offset = scale * torch.randn(num_graphs, 3, generator=generator, device=device, dtype=dtype)
    if center is not None:
        offset = offset + center.to(dtype)
    centered = centred(pos, atom_graph, num_graphs)
    return (rotation[atom_graph] @ centered[:, :, None])[:, :, 0] + offset[atom_graph]
