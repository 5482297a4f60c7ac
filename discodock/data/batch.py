"""A batch of many complexes, each in one or more pose copies, for one forward pass.

A *graph* of the batch is one pose copy of one complex: its ligand atoms and its own copy of the
receptor residues (cross edges and the centroid head work graph by graph). What does not depend on the
pose, such as the score model's receptor encoding, can be computed on a one-copy batch and copied to
the graphs with :func:`copied_rows`. Node tensors of all graphs are concatenated; ``*_graph`` tensors
say which graph each row belongs to (sorted, 0..B−1). Index tensors (bonds, receptor edges, torsions)
use **global** row numbers into the concatenated node tensors.

Shapes: ``B`` graphs, ``R`` residues, ``A`` ligand atoms, ``Eb`` directed bonds, ``Er`` receptor edges,
``T`` torsions (all summed over the batch).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from discodock.data.cache import COUNT_COLUMNS, ComplexCache, ragged_rows
from discodock.data.graphs import receptor_graph
from discodock.geometry.pose import TorsionIndex

WHOLE_RECEPTOR = (0.0, 0.0, 0.0, math.inf)
"""The receptor crop (centre, radius) that keeps every residue: a row of ``pockets`` in blind mode."""


@dataclass(frozen=True)
class ComplexBatch:
    """Tensors of a batch on one device.

    Attributes
    ----------
    complex_index
        ``int64[B]``: complex (row of the source :class:`ComplexCache`) of each graph.
    center
        ``float32[B, 3]``: frame origin of each graph in input coordinates.
    residue_types, residue_pos, residue_frame, residue_graph
        ``int64[R]``, ``float32[R, 3]``, ``float32[R, 3, 3]``, ``int64[R]``.
    receptor_edges
        ``int64[2, Er]``: C-alpha graph (15 Å, 24 nearest), row 0 the centre residue, row 1 its neighbour.
    atom_features, atom_graph
        ``int64[A, 16]``, ``int64[A]``.
    ligand_pos
        ``float32[A, 3]``: the current ligand pose, the one the networks see. :func:`collate` sets it to
        the matched pose when the cache has one, otherwise to the RDKit conformer.
    conformer_pos, crystal_pos, matched_pos
        ``float32[A, 3]`` (the last two ``None`` without crystal poses).
    bond_index, bond_types
        ``int64[2, Eb]``, ``int64[Eb]``.
    torsions
        :class:`~discodock.geometry.pose.TorsionIndex` of all rotatable bonds.
    pockets
        ``float32[B, 4]``: the receptor crop of each graph, centre (frame, Å) and radius (``inf``: whole),
        as given to :func:`collate`; ``None`` when every receptor is whole.
    """

    complex_index: torch.Tensor
    center: torch.Tensor
    residue_types: torch.Tensor
    residue_pos: torch.Tensor
    residue_frame: torch.Tensor
    residue_graph: torch.Tensor
    receptor_edges: torch.Tensor
    atom_features: torch.Tensor
    atom_graph: torch.Tensor
    ligand_pos: torch.Tensor
    conformer_pos: torch.Tensor
    crystal_pos: torch.Tensor | None
    matched_pos: torch.Tensor | None
    bond_index: torch.Tensor
    bond_types: torch.Tensor
    torsions: TorsionIndex
    pockets: torch.Tensor | None = None

    @property
    def num_graphs(self) -> int:
        return int(self.complex_index.numel())

    @property
    def device(self) -> torch.device:
        return self.ligand_pos.device

    def with_ligand_pos(self, ligand_pos: torch.Tensor) -> ComplexBatch:
        """The same batch with another current ligand pose."""
        return dataclasses.replace(self, ligand_pos=ligand_pos)


def collate(
    cache: ComplexCache,
    complex_index: torch.Tensor | list[int],
    copies: int = 1,
    receptor_radius: float = 15.0,
    receptor_max_neighbors: int = 24,
    pockets: torch.Tensor | None = None,
) -> ComplexBatch:
    """Gather complexes of ``cache`` into a batch, each in ``copies`` consecutive pose copies.

    Everything runs as tensor gathers on ``cache.device``; the receptor graph is built there too.

    Parameters
    ----------
    cache
        Source of the complexes (on the device the batch should live on).
    complex_index
        Complexes to take; repeated entries are allowed.
    copies
        Pose copies per complex (e.g. 40 samples at inference).
    receptor_radius, receptor_max_neighbors
        C-alpha graph parameters (method.md §2.1).
    pockets
        ``float[B, 4]`` (``B = len(complex_index) · copies``): per graph a pocket centre (frame, Å) and a
        radius; only the residues whose C-alpha lies within the radius of the centre are kept (pocket
        mode, as :func:`~discodock.data.complex.crop_receptor`). A radius of ``inf`` keeps the whole
        receptor. ``None``: every receptor whole.
    """
    device = cache.device
    index = torch.as_tensor(complex_index, dtype=torch.long, device=device)
    index = torch.repeat_interleave(index, copies)

    def gather(column: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        counts = cache.counts[:, COUNT_COLUMNS.index(column)]
        return ragged_rows(cache.offsets(column), counts, index)

    fields = cache.fields
    residue_rows, residue_graph, _ = gather("residues")
    if pockets is not None:
        offset = fields["residue_pos"][residue_rows] - pockets[residue_graph, :3]
        keep = offset.norm(dim=1) <= pockets[residue_graph, 3]
        residue_rows, residue_graph = residue_rows[keep], residue_graph[keep]
    atom_rows, atom_graph, _ = gather("atoms")
    bond_rows, bond_graph, _ = gather("bonds")
    torsion_rows, torsion_graph, torsion_rank = gather("torsions")
    moving_rows, moving_graph, _ = gather("moving")

    atoms_per_graph = cache.counts[index, COUNT_COLUMNS.index("atoms")]
    atom_offset = torch.cumsum(atoms_per_graph, 0) - atoms_per_graph
    torsions_per_graph = cache.counts[index, COUNT_COLUMNS.index("torsions")]
    torsion_offset = torch.cumsum(torsions_per_graph, 0) - torsions_per_graph

    residue_pos = fields["residue_pos"][residue_rows]
    torsions = TorsionIndex(
        edges=fields["torsion_edges"][torsion_rows] + atom_offset[torsion_graph, None],
        graph=torsion_graph,
        rank=torsion_rank,
        moving_torsion=fields["moving_torsion"][moving_rows] + torsion_offset[moving_graph],
        moving_atom=fields["moving_atom"][moving_rows] + atom_offset[moving_graph],
    )
    crystal_pos = fields["crystal_pos"][atom_rows] if "crystal_pos" in fields else None
    matched_pos = fields["matched_pos"][atom_rows] if "matched_pos" in fields else None
    conformer_pos = fields["conformer_pos"][atom_rows]
    return ComplexBatch(
        complex_index=index,
        center=cache.center[index],
        residue_types=fields["residue_types"][residue_rows],
        residue_pos=residue_pos,
        residue_frame=fields["residue_frame"][residue_rows],
        residue_graph=residue_graph,
        receptor_edges=receptor_graph(
            residue_pos, radius=receptor_radius, max_neighbors=receptor_max_neighbors, batch=residue_graph
        ),
        atom_features=fields["atom_features"][atom_rows],
        atom_graph=atom_graph,
        ligand_pos=conformer_pos if matched_pos is None else matched_pos,
        conformer_pos=conformer_pos,
        crystal_pos=crystal_pos,
        matched_pos=matched_pos,
        bond_index=(fields["bond_index"][bond_rows] + atom_offset[bond_graph, None]).T.contiguous(),
        bond_types=fields["bond_types"][bond_rows],
        torsions=torsions,
        pockets=pockets,
    )


def copied_rows(node_graph: torch.Tensor, num_graphs: int, copy_of: torch.Tensor) -> torch.Tensor:
    """Rows of a batch's nodes laid out as a batch whose graph ``j`` is a copy of graph ``copy_of[j]``.

    For a one-copy batch (e.g. ``collate(cache, index, 1)``) and a batch of the same complexes in
    several pose copies with the same receptor crops, ``values[copied_rows(batch.residue_graph, B,
    copy_of)]`` gives per-residue values (``values [R, ...]``) in the layout of the copies; the same with
    ``atom_graph`` for per-atom values. It lets several pose copies share one receptor encoding.

    Parameters
    ----------
    node_graph
        ``int64[N]``: graph of each node of the source batch (sorted).
    num_graphs
        ``B``, the number of graphs of the source batch.
    copy_of
        ``int64[B']``: source graph of each graph of the copied layout.

    Returns
    -------
    torch.Tensor
        ``int64[N']``: source row of each node of the copied layout.
    """
    counts = torch.bincount(node_graph, minlength=num_graphs)
    rows, _, _ = ragged_rows(torch.cumsum(counts, 0) - counts, counts, copy_of)
    return rows
