"""The equivariant interaction trunk shared by the latent encoder, the prior and the confidence model.

:class:`InteractionTrunk` passes messages over ligand atoms and residues together (method.md §2.1–2.5):
node and edge embeddings, three edge types (ligand bonds plus a 5 Å radius graph, the C-alpha graph,
ligand–residue edges within a per-complex cutoff) and a stack of
:class:`~discodock.model.layers.TensorProductConvolution` layers with residual connections. Residues
are featurised by :class:`ResidueEmbedding` (type and backbone vectors, no ESM embeddings).

Edge vectors always point from centre to neighbour (the reference reuses the ligand←residue spherical
harmonics for residue←ligand edges without negating them; here those edges get their own, negated
vectors). Graphs are plain-torch radius searches (:mod:`discodock.data.graphs`), rebuilt at every call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from discodock.data.batch import ComplexBatch
from discodock.data.graphs import radius, radius_graph
from discodock.data.vocabulary import ATOM_FEATURE_CARDINALITIES, NUM_RESIDUE_TYPES
from discodock.model.latents import LatentAssignment
from discodock.model.layers import (
    EdgeSet,
    FastTensorProduct,
    GaussianSmearing,
    TensorProductConvolution,
    hidden_irreps,
    mlp,
    scalar_part,
    spherical_harmonics_l1,
)

NUM_BOND_TYPES = 4
"""Single, double, triple, aromatic (``ComplexBatch.bond_types``)."""

FRAME_VECTORS = 3
"""Backbone vectors per residue (``ComplexBatch.residue_frame``)."""


class CategoricalEmbedding(nn.Module):
    """Sum of one learned embedding per categorical column: ``Σ_j E_j[x_j]`` (DiffDock's AtomEncoder).

    Parameters
    ----------
    cardinalities
        Number of categories of each column.
    dim
        Embedding width.
    """

    def __init__(self, cardinalities: tuple[int, ...], dim: int) -> None:
        super().__init__()
        offsets = torch.cumsum(torch.tensor((0, *cardinalities[:-1])), 0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.table = nn.Embedding(sum(cardinalities), dim)

    def forward(self, categories: Tensor) -> Tensor:
        """``int64[N, C]`` → ``float[N, dim]``."""
        return self.table(categories + self.offsets).sum(dim=1)


class ResidueEmbedding(nn.Module):
    """Input features of residues: a learned type embedding and ``nv×1o`` backbone vectors.

    ``scalars = E[type]`` (``ns``) and ``vectors = M · frame`` with a learned ``M ∈ R^{nv×3}`` mixing each
    residue's N−CA, C−CA and CB−CA vectors (flattened ``[R, nv·3]``, e3nn layout).
    """

    def __init__(self, ns: int, nv: int) -> None:
        super().__init__()
        self.type_embedding = nn.Embedding(NUM_RESIDUE_TYPES, ns)
        self.frame_mixing = nn.Parameter(torch.randn(nv, FRAME_VECTORS) / FRAME_VECTORS**0.5)

    def forward(self, batch: ComplexBatch) -> tuple[Tensor, Tensor]:
        """``scalars [R, ns]``, ``vectors [R, nv·3]``."""
        vectors = torch.einsum("vf,rfc->rvc", self.frame_mixing, batch.residue_frame).flatten(1)
        return self.type_embedding(batch.residue_types), vectors


class FixedCutoffTrunkConfig(Protocol):
    """What :meth:`InteractionTrunk.with_fixed_cutoff` reads: the encoder, prior or confidence config."""

    ns: int
    nv: int
    num_conv_layers: int
    ligand_radius: float
    receptor_distance_max: float
    cross_cutoff: float
    cross_max_neighbors: int
    distance_embed_dim: int
    dropout: float


class InteractionTrunk(nn.Module):
    """Equivariant message passing over ligand atoms and residues (method.md §2.1–2.5).

    Node rows are all ligand atoms of the batch followed by all residues. Initial features:

    * ligand atom: ``Linear([Σ_j E_j[x_j], time, z]) → ns`` scalars, zero vectors;
    * residue: ``Linear([E[type], time, z]) → ns`` scalars and ``nv×1o`` vectors ``M · frame`` with a learned
      ``M ∈ R^{nv×3}`` mixing the backbone vectors;

    with ``time`` the graph's time embedding and ``z`` the node's ``K`` latent indicator channels (each
    omitted when absent). Edge embeddings (all ``→ ns`` by a 2-layer MLP):

    * ligand (bonds ∪ radius graph): ``[bond one-hot (0 for radius edges), smear(d), time, z_c, z_n]``;
    * receptor (``batch.receptor_edges``): ``[smear(d), time, z_c, z_n]``;
    * cross (each ligand atom and its ``cross_max_neighbors`` nearest residues within the graph's cutoff,
      both directions share it): ``[smear(d), time]``.

    With null embeddings (``K > 0``), the learned vectors are added to the five embeddings of graphs
    flagged ``unconditional``. Layer ``l`` maps ``hidden_irreps(l−1) → hidden_irreps(l)``:
    ``x ← pad(x) + Conv_l(x)`` over the edge sets [ligand, ligand←residue, residue, residue←ligand], each
    with its own weight network fed ``[edge embedding, centre scalars, neighbour scalars]``.

    Parameters
    ----------
    ns, nv, num_layers
        Scalar and vector multiplicities, number of convolution layers.
    ligand_radius
        Å; ligand radius graph and range of its distance smearing.
    receptor_distance_max, cross_distance_max
        Å; ranges of the receptor and cross distance smearing.
    cross_max_neighbors
        Each ligand atom is linked (both ways) to at most this many nearest residues within the cutoff.
    distance_embed_dim
        Gaussians per smearing.
    time_embed_dim
        Width of the time embedding passed to :meth:`forward` (0: no time input).
    latent_tokens
        ``K`` indicator channels per node (0: no latent input, no null embeddings).
    dropout
        Dropout in every MLP.
    update_residues_in_last_layer
        Whether the last layer also updates residues (the score model does not need it).
    """

    def __init__(
        self,
        *,
        ns: int,
        nv: int,
        num_layers: int,
        ligand_radius: float,
        receptor_distance_max: float,
        cross_distance_max: float,
        cross_max_neighbors: int,
        distance_embed_dim: int,
        time_embed_dim: int,
        latent_tokens: int,
        dropout: float,
        update_residues_in_last_layer: bool,
    ) -> None:
        super().__init__()
        self.ns, self.nv = ns, nv
        self.ligand_radius = ligand_radius
        self.cross_max_neighbors = cross_max_neighbors
        self.time_embed_dim = time_embed_dim
        self.latent_tokens = latent_tokens
        self.update_residues_in_last_layer = update_residues_in_last_layer
        conditioning = time_embed_dim + latent_tokens
        pair_latents = 2 * latent_tokens

        self.atom_embedding = CategoricalEmbedding(ATOM_FEATURE_CARDINALITIES, ns)
        self.ligand_node_input = nn.Linear(ns + conditioning, ns)
        self.residue_embedding = ResidueEmbedding(ns, nv)
        self.residue_node_input = nn.Linear(ns + conditioning, ns)

        self.ligand_distance = GaussianSmearing(ligand_radius, distance_embed_dim)
        self.receptor_distance = GaussianSmearing(receptor_distance_max, distance_embed_dim)
        self.cross_distance = GaussianSmearing(cross_distance_max, distance_embed_dim)
        edge_input = time_embed_dim + distance_embed_dim
        self.ligand_edge_embedding = mlp(NUM_BOND_TYPES + edge_input + pair_latents, ns, ns, dropout)
        self.receptor_edge_embedding = mlp(edge_input + pair_latents, ns, ns, dropout)
        self.cross_edge_embedding = mlp(edge_input, ns, ns, dropout)
        self.null_embeddings = (
            nn.ParameterDict(
                {
                    name: nn.Parameter(torch.zeros(ns))
                    for name in ("ligand_node", "residue_node", "ligand_edge", "receptor_edge", "cross_edge")
                }
            )
            if latent_tokens
            else None
        )

        self.conv_layers = nn.ModuleList()
        for depth in range(1, num_layers + 1):
            last = depth == num_layers
            num_edge_sets = 4 if update_residues_in_last_layer or not last else 2
            tensor_product = FastTensorProduct(hidden_irreps(ns, nv, depth - 1), hidden_irreps(ns, nv, depth))
            self.conv_layers.append(
                TensorProductConvolution(tensor_product, [ns] * num_edge_sets, ns, ns, dropout)
            )
        self.irreps_out = hidden_irreps(ns, nv, num_layers)

    @classmethod
    def with_fixed_cutoff(
        cls, config: FixedCutoffTrunkConfig, latent_tokens: int, update_residues_in_last_layer: bool
    ) -> InteractionTrunk:
        """A time-free trunk sized by ``config`` (the encoder's, prior's or confidence model's), whose
        cross distance smearing spans the fixed cutoff ``config.cross_cutoff``."""
        return cls(
            ns=config.ns,
            nv=config.nv,
            num_layers=config.num_conv_layers,
            ligand_radius=config.ligand_radius,
            receptor_distance_max=config.receptor_distance_max,
            cross_distance_max=config.cross_cutoff,
            cross_max_neighbors=config.cross_max_neighbors,
            distance_embed_dim=config.distance_embed_dim,
            time_embed_dim=0,
            latent_tokens=latent_tokens,
            dropout=config.dropout,
            update_residues_in_last_layer=update_residues_in_last_layer,
        )

    @property
    def num_scalars(self) -> int:
        """Width of :meth:`scalars` (``ns``, or ``2 ns`` once ``0o`` channels exist)."""
        return sum(mul for mul, ir in self.irreps_out if ir.l == 0)

    def scalars(self, features: Tensor) -> Tensor:
        """``[N, irreps_out.dim]`` → ``[N, num_scalars]``: the ``0e`` then ``0o`` channels."""
        return scalar_part(features, self.irreps_out)

    def forward(
        self,
        batch: ComplexBatch,
        ligand_pos: Tensor,
        cross_cutoff: Tensor,
        time_embedding: Tensor | None,
        latents: LatentAssignment | None,
    ) -> tuple[Tensor, Tensor]:
        """Run the trunk.

        Parameters
        ----------
        batch
            Graph structure, features and receptor coordinates.
        ligand_pos
            ``float[A, 3]``: ligand pose to use (the current pose, or the crystal pose for the encoder).
        cross_cutoff
            ``float[B]``: ligand–residue cutoff of each graph (Å).
        time_embedding
            ``float[B, time_embed_dim]``, or ``None`` when ``time_embed_dim`` is 0.
        latents
            Token channels and null flags, or ``None`` when ``latent_tokens`` is 0.

        Returns
        -------
        ligand_features, residue_features
            ``float[A, irreps_out.dim]``, ``float[R, irreps_out.dim]``.
        """
        if (time_embedding is None) != (self.time_embed_dim == 0):
            raise ValueError("time_embedding must be given exactly when time_embed_dim > 0")
        if (latents is None) != (self.latent_tokens == 0):
            raise ValueError(
                f"latents must be given exactly when latent_tokens > 0 (here {self.latent_tokens})"
            )
        atoms = _Conditioning.of(batch.atom_graph, time_embedding, latents, lambda z: z.ligand)
        residues = _Conditioning.of(batch.residue_graph, time_embedding, latents, lambda z: z.residue)
        nodes = self._initial_nodes(batch, atoms, residues)
        ligand_centred, residue_centred = self._edge_sets(batch, ligand_pos, cross_cutoff, atoms, residues)

        num_atoms = len(batch.atom_graph)
        for depth, conv in enumerate(self.conv_layers, start=1):
            updates_residues = self.update_residues_in_last_layer or depth < len(self.conv_layers)
            edge_sets = ligand_centred + residue_centred if updates_residues else ligand_centred
            num_centres = len(nodes) if updates_residues else num_atoms
            scalars = nodes[:, : self.ns]
            update = conv(nodes, scalars, scalars, edge_sets, num_centres)
            nodes = F.pad(nodes, (0, conv.irreps_out.dim - nodes.shape[1]))
            nodes = torch.cat([nodes[:num_centres] + update, nodes[num_centres:]])
        return nodes[:num_atoms], nodes[num_atoms:]

    def _initial_nodes(self, batch: ComplexBatch, atoms: _Conditioning, residues: _Conditioning) -> Tensor:
        """``[A + R, hidden_irreps(0).dim]``: ligand atoms (zero vectors) then residues."""
        ligand_scalars = self.ligand_node_input(
            concat_present(self.atom_embedding(batch.atom_features), atoms.time, atoms.latents)
        )
        residue_types, residue_vectors = self.residue_embedding(batch)
        residue_scalars = self.residue_node_input(
            concat_present(residue_types, residues.time, residues.latents)
        )
        ligand_scalars = self._with_null(ligand_scalars, atoms.null_flag, "ligand_node")
        residue_scalars = self._with_null(residue_scalars, residues.null_flag, "residue_node")
        return torch.cat(
            [
                F.pad(ligand_scalars, (0, residue_vectors.shape[1])),
                torch.cat([residue_scalars, residue_vectors], dim=1),
            ]
        )

    def _edge_sets(
        self,
        batch: ComplexBatch,
        ligand_pos: Tensor,
        cross_cutoff: Tensor,
        atoms: _Conditioning,
        residues: _Conditioning,
    ) -> tuple[list[EdgeSet], list[EdgeSet]]:
        """Embedded edges into ligand atoms ``[ligand, ligand←residue]`` and into residues ``[receptor,
        residue←ligand]``, with node rows numbered as in :meth:`_initial_nodes`."""
        ligand_edges = torch.cat(
            [batch.bond_index, radius_graph(ligand_pos, self.ligand_radius, batch.atom_graph)], dim=1
        )
        ligand_vectors = ligand_pos[ligand_edges[1]] - ligand_pos[ligand_edges[0]]
        bond_one_hot = F.one_hot(batch.bond_types, NUM_BOND_TYPES).to(ligand_pos.dtype)
        bond_one_hot = F.pad(bond_one_hot, (0, 0, 0, ligand_edges.shape[1] - len(bond_one_hot)))
        ligand_features = self.ligand_edge_embedding(
            concat_present(
                bond_one_hot, self.ligand_distance(ligand_vectors.norm(dim=-1)), *atoms.on_edges(ligand_edges)
            )
        )

        receptor_edges = batch.receptor_edges
        receptor_vectors = batch.residue_pos[receptor_edges[1]] - batch.residue_pos[receptor_edges[0]]
        receptor_features = self.receptor_edge_embedding(
            concat_present(
                self.receptor_distance(receptor_vectors.norm(dim=-1)), *residues.on_edges(receptor_edges)
            )
        )

        cross_edges = radius(
            batch.residue_pos,
            ligand_pos,
            cross_cutoff,
            batch.residue_graph,
            batch.atom_graph,
            max_num_neighbors=self.cross_max_neighbors,
        )
        cross_vectors = batch.residue_pos[cross_edges[1]] - ligand_pos[cross_edges[0]]
        cross_time = None if atoms.time is None else atoms.time[cross_edges[0]]
        cross_features = self.cross_edge_embedding(
            concat_present(self.cross_distance(cross_vectors.norm(dim=-1)), cross_time)
        )

        ligand_features = self._with_null(ligand_features, atoms.null_flag, "ligand_edge", ligand_edges[0])
        receptor_features = self._with_null(
            receptor_features, residues.null_flag, "receptor_edge", receptor_edges[0]
        )
        cross_features = self._with_null(cross_features, atoms.null_flag, "cross_edge", cross_edges[0])

        offset = len(batch.atom_graph)
        cross_filter = spherical_harmonics_l1(cross_vectors)
        reversed_cross_filter = cross_filter * cross_filter.new_tensor([1.0, -1.0, -1.0, -1.0])
        ligand_centred = [
            EdgeSet(
                ligand_edges[0], ligand_edges[1], ligand_features, spherical_harmonics_l1(ligand_vectors)
            ),
            EdgeSet(cross_edges[0], cross_edges[1] + offset, cross_features, cross_filter),
        ]
        residue_centred = [
            EdgeSet(
                receptor_edges[0] + offset,
                receptor_edges[1] + offset,
                receptor_features,
                spherical_harmonics_l1(receptor_vectors),
            ),
            EdgeSet(cross_edges[1] + offset, cross_edges[0], cross_features, reversed_cross_filter),
        ]
        return ligand_centred, residue_centred

    def _with_null(
        self, features: Tensor, null_flag: Tensor | None, name: str, rows: Tensor | None = None
    ) -> Tensor:
        """``features + flag · null[name]``, the flag of each row's node (``rows`` picks edge centres)."""
        if self.null_embeddings is None or null_flag is None:
            return features
        flag = null_flag if rows is None else null_flag[rows]
        return features + flag * self.null_embeddings[name]


@dataclass(frozen=True)
class _Conditioning:
    """Per-node conditioning of one node type (ligand atoms or residues); absent inputs are ``None``.

    Attributes
    ----------
    time
        ``float[N, T]``: time embedding of each node's graph.
    latents
        ``float[N, K]``: token indicator channels.
    null_flag
        ``float[N, 1]``: 1 where the node's graph is unconditional.
    """

    time: Tensor | None
    latents: Tensor | None
    null_flag: Tensor | None

    @classmethod
    def of(
        cls,
        graph: Tensor,
        time_embedding: Tensor | None,
        latents: LatentAssignment | None,
        channels: Callable[[LatentAssignment], Tensor],
    ) -> _Conditioning:
        """Conditioning of the nodes whose graphs are ``graph``; ``channels`` picks their latent rows."""
        time = None if time_embedding is None else time_embedding[graph]
        if latents is None:
            return cls(time, None, None)
        rows = channels(latents)
        return cls(time, rows, latents.unconditional.to(rows.dtype)[graph, None])

    def on_edges(self, edges: Tensor) -> tuple[Tensor | None, ...]:
        """Edge inputs ``[time of the centre, latents of the centre, latents of the neighbour]``."""
        return _rows(self.time, edges[0]), _rows(self.latents, edges[0]), _rows(self.latents, edges[1])


def _rows(values: Tensor | None, index: Tensor) -> Tensor | None:
    """``values[index]``, or ``None`` if ``values`` is absent."""
    return None if values is None else values[index]


def concat_present(*parts: Tensor | None) -> Tensor:
    """Concatenate the present parts along the feature axis."""
    return torch.cat([part for part in parts if part is not None], dim=1)
