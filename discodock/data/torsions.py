"""Rotatable bonds of a ligand graph and the atoms each torsion moves (method.md §1.2).

The rule, on the heavy-atom bond graph with every bond stored as two directed edges (u→v, v→u):

* a bond is **rotatable** iff deleting it disconnects its two atoms (it lies in no ring) **and** the
  smaller of the two resulting sides has at least 2 atoms. Bonds to terminal heavy atoms (methyl, OH, =O,
  halogens) are thus excluded; there is no chemical filter, so non-ring double and triple bonds and amide
  C–N bonds between non-terminal atoms count;
* the **smaller side moves**. Of the bond's two directed copies, the flagged one is (u, v) with v on the
  moving side, so the torsion axis x_u − x_v points from the moving side to the fixed side. When both
  sides have the same size, the side holding the lowest atom index moves. This reproduces DiffDock, whose
  networkx components are listed in order of their lowest node and whose sort by size is stable;
* flagged bonds are numbered in bond-list order.

A side is the connected component of one of the bond's atoms once the bond is removed; for a connected
molecule this is DiffDock's "smaller component of the whole graph". Plain breadth-first search is used,
as ligands are small.
"""

from __future__ import annotations

from collections import deque

import numpy as np


def rotatable_bonds(edge_index: np.ndarray, num_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Flagged directed edges of the rotatable bonds and the atoms each torsion moves.

    Parameters
    ----------
    edge_index
        ``(2, 2E)`` integer atom indices of directed edges, each bond as consecutive columns (u, v),
        (v, u), as produced by :func:`discodock.data.ligand.bond_graph`.
    num_atoms
        Number of atoms N (atom indices are ``0..N-1``).

    Returns
    -------
    torsion_edges : numpy.ndarray
        ``(T, 2)`` int64; row k is the flagged directed edge (u, v) of the k-th rotatable bond, with v
        on the moving side.
    mask_rotate : numpy.ndarray
        ``(T, N)`` bool; ``mask_rotate[k, i]`` is True iff atom i is on the moving side of bond k (contains v,
        never u, and is the smaller side).

    Raises
    ------
    ValueError
        If ``edge_index`` is not a list of bonds stored as reversed pairs of directed edges over ``0..N-1``.
    """
    bonds = _bonds_from_directed_edges(edge_index, num_atoms)
    neighbours: list[list[tuple[int, int]]] = [[] for _ in range(num_atoms)]
    for bond_id, (u, v) in enumerate(bonds):
        neighbours[u].append((v, bond_id))
        neighbours[v].append((u, bond_id))

    torsion_edges = []
    moving_sides = []
    for bond_id, (u, v) in enumerate(bonds):
        side_of_v = _reachable_without_bond(v, neighbours, bond_id)
        if side_of_v[u]:
            continue  # the bond closes a ring
        side_of_u = _reachable_without_bond(u, neighbours, bond_id)
        size_u, size_v = int(side_of_u.sum()), int(side_of_v.sum())
        if min(size_u, size_v) < 2:
            continue  # a terminal atom: turning it changes nothing in the heavy-atom graph
        # argmax of a boolean mask is its lowest True index: the tie-break of the module docstring.
        v_moves = size_v < size_u or (size_v == size_u and side_of_v.argmax() < side_of_u.argmax())
        torsion_edges.append((u, v) if v_moves else (v, u))
        moving_sides.append(side_of_v if v_moves else side_of_u)

    return (
        np.asarray(torsion_edges, dtype=np.int64).reshape(-1, 2),
        np.asarray(moving_sides, dtype=bool).reshape(-1, num_atoms),
    )


def _bonds_from_directed_edges(edge_index: np.ndarray, num_atoms: int) -> np.ndarray:
    """``(E, 2)`` bonds (u, v): the first copy of each reversed pair of directed edges, validated."""
    edge_index = np.asarray(edge_index)
    if edge_index.ndim != 2 or edge_index.shape[0] != 2 or edge_index.shape[1] % 2:
        raise ValueError(f"edge_index must have shape (2, 2E), got {edge_index.shape}")
    if edge_index.size and (edge_index.min() < 0 or edge_index.max() >= num_atoms):
        raise ValueError(f"edge_index holds atom indices outside 0..{num_atoms - 1}")
    forward, backward = edge_index[:, 0::2], edge_index[:, 1::2]
    if not np.array_equal(forward, backward[::-1]):
        raise ValueError("edge_index must store each bond as consecutive reversed edges (u, v), (v, u)")
    if np.any(forward[0] == forward[1]):
        raise ValueError("edge_index contains a self-loop")
    return forward.T.astype(np.int64)


def _reachable_without_bond(
    start: int, neighbours: list[list[tuple[int, int]]], removed_bond: int
) -> np.ndarray:
    """``(N,)`` bool mask of the atoms reachable from ``start`` without crossing bond ``removed_bond``.

    ``neighbours[i]`` lists the (neighbour atom, bond id) pairs of atom i.
    """
    reached = np.zeros(len(neighbours), dtype=bool)
    reached[start] = True
    queue = deque([start])
    while queue:
        atom = queue.popleft()
        for neighbour, bond_id in neighbours[atom]:
            if bond_id != removed_bond and not reached[neighbour]:
                reached[neighbour] = True
                queue.append(neighbour)
    return reached
