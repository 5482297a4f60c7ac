"""Radius and k-nearest-neighbour graphs in plain torch, on the device of the input tensors.

Edge convention, for every function here: ``edge_index[0]`` is the query (centre) node and
``edge_index[1]`` is its neighbour, so ``edge_index`` is ``int64[2, E]``. (torch-cluster's ``radius_graph``
and ``knn_graph`` return the reverse order by default; this module does not.) Edges are grouped by query
node.

Graphs of a batch are told apart by ``batch`` vectors (``int64``, the graph index of each node, in any order);
only nodes of the same graph are ever compared. The candidate nodes of each graph are laid out in a padded
``[B, N_max]`` table, and queries are processed in chunks of ``C = max(1, max_distance_entries // N_max)``,
so each chunk compares ``C · N_max`` query-candidate pairs and never pairs nodes of different graphs. Peak
temporary memory is about 32 bytes per pair (the gathered candidate positions, their differences and the
squared distances), i.e. about 128 MiB at the default :data:`DEFAULT_MAX_DISTANCE_ENTRIES` = 2^22. Every
query is compared with ``N_max`` slots, so a batch mixing one huge graph with many small ones pays for the
padding in time and in the ``[B, N_max, 3]`` table, not in the chunk temporaries.

A neighbour lies "within r" when its Euclidean distance is ≤ r. When a cap on the number of neighbours
applies, the nearest ones are kept.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DEFAULT_MAX_DISTANCE_ENTRIES = 2**22
"""Default bound on the query-candidate pairs compared at once (see the module docstring for bytes)."""


def radius(
    x: Tensor,
    y: Tensor,
    r: float | Tensor,
    batch_x: Tensor | None = None,
    batch_y: Tensor | None = None,
    max_num_neighbors: int | None = None,
    *,
    max_distance_entries: int = DEFAULT_MAX_DISTANCE_ENTRIES,
) -> Tensor:
    """For each node of ``y``, the nodes of ``x`` in the same graph within distance ``r``.

    Edges are {(i, j) : batch_y[i] = batch_x[j], ‖y_i − x_j‖ ≤ r_{batch_y[i]}}, capped per query to the
    ``max_num_neighbors`` smallest distances.

    Parameters
    ----------
    x
        ``float[N, 3]`` candidate (neighbour) positions.
    y
        ``float[M, 3]`` query (centre) positions, same dtype and device as ``x``.
    r
        Cutoff in the units of the positions: a number, a 0-d tensor, or a ``float[B]`` tensor holding one
        cutoff per graph (e.g. the dynamic cross cutoff 3σ_tr + 20 Å of each complex).
    batch_x, batch_y
        ``int64[N]`` and ``int64[M]`` graph index of each node; both ``None`` for a single graph.
    max_num_neighbors
        Keep at most this many neighbours per query, the nearest ones; ``None`` keeps all.
    max_distance_entries
        Bound on the query-candidate pairs compared at once (memory bound).

    Returns
    -------
    Tensor
        ``int64[2, E]``: row 0 indexes ``y`` (the query), row 1 indexes ``x`` (the neighbour).
    """
    return _neighbour_search(x, y, r, batch_x, batch_y, max_num_neighbors, None, max_distance_entries)


def radius_graph(
    pos: Tensor,
    r: float | Tensor,
    batch: Tensor | None = None,
    max_num_neighbors: int | None = None,
    loop: bool = False,
    *,
    max_distance_entries: int = DEFAULT_MAX_DISTANCE_ENTRIES,
) -> Tensor:
    """All ordered pairs of nodes of the same graph within distance ``r`` of each other.

    Parameters
    ----------
    pos
        ``float[N, 3]`` node positions.
    r
        Cutoff: a number or a ``float[B]`` tensor of per-graph cutoffs.
    batch
        ``int64[N]`` graph index of each node; ``None`` for a single graph.
    max_num_neighbors
        Keep at most this many neighbours per centre, the nearest ones; ``None`` keeps all.
    loop
        Whether each node is its own neighbour (self-loops).
    max_distance_entries
        Bound on the node pairs compared at once (memory bound).

    Returns
    -------
    Tensor
        ``int64[2, E]``: row 0 the centre node, row 1 its neighbour.
    """
    self_index = None if loop else torch.arange(len(pos), device=pos.device)
    return _neighbour_search(pos, pos, r, batch, batch, max_num_neighbors, self_index, max_distance_entries)


def knn_graph(
    pos: Tensor,
    k: int,
    batch: Tensor | None = None,
    loop: bool = False,
    *,
    max_distance_entries: int = DEFAULT_MAX_DISTANCE_ENTRIES,
) -> Tensor:
    """The ``k`` nearest nodes of the same graph around each node (fewer if its graph is smaller).

    Parameters
    ----------
    pos
        ``float[N, 3]`` node positions.
    k
        Number of neighbours per node.
    batch
        ``int64[N]`` graph index of each node; ``None`` for a single graph.
    loop
        Whether each node counts as one of its own neighbours.
    max_distance_entries
        Bound on the node pairs compared at once (memory bound).

    Returns
    -------
    Tensor
        ``int64[2, E]``: row 0 the centre node, row 1 one of its ``k`` nearest, nearest first.
    """
    self_index = None if loop else torch.arange(len(pos), device=pos.device)
    return _neighbour_search(pos, pos, math.inf, batch, batch, k, self_index, max_distance_entries)


def receptor_graph(
    ca: Tensor,
    radius: float = 15.0,
    max_neighbors: int = 24,
    batch: Tensor | None = None,
    *,
    max_distance_entries: int = DEFAULT_MAX_DISTANCE_ENTRIES,
) -> Tensor:
    """Residue graph of method.md §2.1: the nearest residues within ``radius``, or the nearest one if none is.

    Each residue i gets edges to the ``max_neighbors`` nearest other residues of its graph with
    ‖ca_j − ca_i‖ ≤ ``radius``; a residue with none of them gets a single edge to its nearest other residue.
    The graph is directed (the cap makes it asymmetric); a graph of one residue has no edges.

    Parameters
    ----------
    ca
        ``float[R, 3]`` C-alpha positions.
    radius
        Cutoff in Å (DiffDock's ``receptor_radius``).
    max_neighbors
        Cap on neighbours per residue (DiffDock's ``c_alpha_max_neighbors``).
    batch
        ``int64[R]`` graph index of each residue; ``None`` for a single receptor.
    max_distance_entries
        Bound on the residue pairs compared at once (memory bound).

    Returns
    -------
    Tensor
        ``int64[2, E]``: row 0 the residue, row 1 its neighbour, grouped by residue.
    """
    edges = radius_graph(ca, radius, batch, max_neighbors, max_distance_entries=max_distance_entries)
    has_neighbour = torch.zeros(len(ca), dtype=torch.bool, device=ca.device)
    has_neighbour[edges[0]] = True
    isolated = torch.nonzero(~has_neighbour).squeeze(1)
    isolated_batch = None if batch is None else batch[isolated]
    nearest = _neighbour_search(
        ca, ca[isolated], math.inf, batch, isolated_batch, 1, isolated, max_distance_entries
    )
    nearest = torch.stack([isolated[nearest[0]], nearest[1]])
    edges = torch.cat([edges, nearest], dim=1)
    return edges[:, torch.argsort(edges[0], stable=True)]


def _neighbour_search(
    x: Tensor,
    y: Tensor,
    r: float | Tensor,
    batch_x: Tensor | None,
    batch_y: Tensor | None,
    max_num_neighbors: int | None,
    self_index: Tensor | None,
    max_distance_entries: int,
) -> Tensor:
    """Neighbours in ``x`` of each query in ``y``, graph by graph, in chunks of queries.

    Parameters
    ----------
    x, y, r, batch_x, batch_y, max_num_neighbors, max_distance_entries
        As in :func:`radius`.
    self_index
        ``int64[M]``: for each query, the index of the same node in ``x``, which is then never its own
        neighbour; ``None`` when the queries are not nodes of ``x``.

    Returns
    -------
    Tensor
        ``int64[2, E]``: row 0 indexes ``y``, row 1 indexes ``x``.
    """
    device = x.device
    if (batch_x is None) != (batch_y is None):
        raise ValueError("batch_x and batch_y must be given together")
    if max_num_neighbors is not None and max_num_neighbors < 0:
        raise ValueError(f"max_num_neighbors must be non-negative, got {max_num_neighbors}")
    if len(x) == 0 or len(y) == 0 or max_num_neighbors == 0:
        return torch.empty((2, 0), dtype=torch.long, device=device)
    if batch_x is None or batch_y is None:
        batch_x = torch.zeros(len(x), dtype=torch.long, device=device)
        batch_y = torch.zeros(len(y), dtype=torch.long, device=device)
    num_graphs = int(torch.maximum(batch_x.max(), batch_y.max())) + 1
    squared_cutoff = torch.as_tensor(r, dtype=x.dtype, device=device).square()
    if squared_cutoff.ndim == 0:
        query_squared_cutoff = squared_cutoff.expand(len(y))
    elif squared_cutoff.ndim == 1 and len(squared_cutoff) >= num_graphs:
        query_squared_cutoff = squared_cutoff[batch_y]
    else:
        shape = tuple(squared_cutoff.shape)
        raise ValueError(f"r must be a number or hold one cutoff per graph ({num_graphs}), got shape {shape}")

    dense_index, slot_of_x, graph_sizes = _dense_layout(batch_x, num_graphs)
    max_graph_size = dense_index.shape[1]
    dense_pos = x[dense_index.clamp(min=0)]
    slots = torch.arange(max_graph_size, device=device)
    chunk_size = max(1, max_distance_entries // max_graph_size)
    centres, neighbours = [], []
    for start in range(0, len(y), chunk_size):
        query = torch.arange(start, min(start + chunk_size, len(y)), device=device)
        graph = batch_y[query]
        squared_distance = (dense_pos[graph] - y[query, None]).square_().sum(dim=-1)  # [C, N_max]
        candidate = slots < graph_sizes[graph, None]
        if self_index is not None:
            candidate &= slots != slot_of_x[self_index[query], None]
        candidate &= squared_distance <= query_squared_cutoff[query, None]
        if max_num_neighbors is None:
            row, slot = torch.nonzero(candidate, as_tuple=True)
        else:
            k = min(max_num_neighbors, max_graph_size)
            nearest, nearest_slot = squared_distance.masked_fill(~candidate, math.inf).topk(k, largest=False)
            row, rank = torch.nonzero(torch.isfinite(nearest), as_tuple=True)
            slot = nearest_slot[row, rank]
        centres.append(query[row])
        neighbours.append(dense_index[graph[row], slot])
    return torch.stack([torch.cat(centres), torch.cat(neighbours)])


def _dense_layout(batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor, Tensor]:
    """Place the nodes of each graph in one row of a padded table.

    Parameters
    ----------
    batch
        ``int64[N]`` graph index of each node, in any order.
    num_graphs
        ``B``, larger than every graph index.

    Returns
    -------
    dense_index
        ``int64[B, N_max]``: node index at (graph, slot), −1 in padding; a graph's nodes fill its first
        slots in increasing index order.
    slot
        ``int64[N]``: the slot of each node in its graph's row.
    graph_sizes
        ``int64[B]``: number of nodes of each graph.
    """
    graph_sizes = torch.bincount(batch, minlength=num_graphs)
    order = torch.argsort(batch, stable=True)
    first_position = torch.cumsum(graph_sizes, dim=0) - graph_sizes
    node_index = torch.arange(len(batch), device=batch.device)
    slot = torch.empty_like(batch)
    slot[order] = node_index - first_position[batch[order]]
    dense_index = torch.full((num_graphs, int(graph_sizes.max())), -1, dtype=torch.long, device=batch.device)
    dense_index[batch, slot] = node_index
    return dense_index, slot, graph_sizes
