"""The DisCo-DiffDock score network: DiffDock-S conditioned on pointer latents (method.md §2, §3.4).

Three pieces:

* :class:`InteractionTrunk` — the ligand/residue message-passing network shared by the score model
  and the latent encoder: node and edge embeddings, three edge types (ligand bonds plus a 5 Å radius
  graph, the C-alpha graph, ligand–residue edges within a per-complex cutoff), and a stack of
  :class:`~discodock.model.layers.TensorProductConvolution` layers with residual connections;
* :class:`ScoreTrunk` — that trunk conditioned on the diffusion time (sinusoidal embedding of ``1000 t``,
  cross cutoff ``3σ_tr(t) + 20`` Å) and on the latent tokens; the autoregressive prior reuses it;
* :class:`ScoreModel` — the trunk plus the translation/rotation head (a convolution onto the ligand
  centroid) and the torsion head (a convolution onto rotatable-bond midpoints), scaled by σ.

Differences from DiffDock-S / disco-diffdock, all deliberate:

* **No ESM embeddings.** A residue's input is an embedding of its type (plus time and latent channels)
  and, as ``nv×1o`` features, a learned linear mix of its N−CA, C−CA and CB−CA vectors; the input irreps
  are therefore ``ns×0e + nv×1o`` instead of ``ns×0e`` (ligand atoms have zero vectors).
* **Edge vectors always point from centre to neighbour.** The reference reuses the ligand←residue
  spherical harmonics for residue←ligand edges without negating them; here those edges get their own
  (negated) vectors. The separate weight network of that edge type can represent either convention.
* **Cross edges have no latent channels**, where the reference appends zeros (the same function).
* **The last score-model layer updates ligand atoms only** (the heads read only ligand features), so
  :meth:`ScoreTrunk.embed` returns residue features after ``L − 1`` layers (zero-padded to the final
  irreps), as in DiffDock 1.0. The latent encoder updates both in every layer.
* Graphs are plain-torch radius searches (:mod:`discodock.data.graphs`), rebuilt at every call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from e3nn import o3
from torch import Tensor, nn

from discodock.data.batch import ComplexBatch
from discodock.data.graphs import radius, radius_graph
from discodock.data.vocabulary import ATOM_FEATURE_CARDINALITIES, NUM_RESIDUE_TYPES
from discodock.geometry.so3 import igso3_score_norm
from discodock.geometry.torus import torus_score_second_moment
from discodock.model.config import ScoreModelConfig
from discodock.model.latents import LatentAssignment
from discodock.model.layers import (
    EdgeSet,
    FastTensorProduct,
    GaussianSmearing,
    TensorProductConvolution,
    hidden_irreps,
    mlp,
    scalar_part,
    scatter_mean,
    sinusoidal_time_embedding,
    spherical_harmonics_l1,
)

NUM_BOND_TYPES = 4
"""Single, double, triple, aromatic (``ComplexBatch.bond_types``)."""

FRAME_VECTORS = 3
"""Backbone vectors per residue (``ComplexBatch.residue_frame``)."""


@dataclass(frozen=True)
class ScoreOutput:
    """Predicted scores of a batch, already scaled by the noise normalisers (method.md §1.5).

    Attributes
    ----------
    tr
        ``float[B, 3]``: translation score of each graph, ``/ σ_tr``.
    rot
        ``float[B, 3]``: rotation score (axis-angle tangent vector), ``· N_rot(σ_rot)``.
    tor
        ``float[T]``: torsion score of each rotatable bond of ``batch.torsions``, ``· sqrt(E[s²](σ_tor))``.
    """

    tr: Tensor
    rot: Tensor
    tor: Tensor


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
    * cross (ligand↔residue within the graph's cutoff, both directions share it): ``[smear(d), time]``.

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
        distance_embed_dim: int,
        time_embed_dim: int,
        latent_tokens: int,
        dropout: float,
        update_residues_in_last_layer: bool,
    ) -> None:
        super().__init__()
        self.ns, self.nv = ns, nv
        self.ligand_radius = ligand_radius
        self.time_embed_dim = time_embed_dim
        self.latent_tokens = latent_tokens
        self.update_residues_in_last_layer = update_residues_in_last_layer
        conditioning = time_embed_dim + latent_tokens
        pair_latents = 2 * latent_tokens

        self.atom_embedding = CategoricalEmbedding(ATOM_FEATURE_CARDINALITIES, ns)
        self.ligand_node_input = nn.Linear(ns + conditioning, ns)
        self.residue_type_embedding = nn.Embedding(NUM_RESIDUE_TYPES, ns)
        self.residue_node_input = nn.Linear(ns + conditioning, ns)
        self.frame_mixing = nn.Parameter(torch.randn(nv, FRAME_VECTORS) / FRAME_VECTORS**0.5)

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
            _cat_present(self.atom_embedding(batch.atom_features), atoms.time, atoms.latents)
        )
        residue_scalars = self.residue_node_input(
            _cat_present(self.residue_type_embedding(batch.residue_types), residues.time, residues.latents)
        )
        ligand_scalars = self._with_null(ligand_scalars, atoms.null_flag, "ligand_node")
        residue_scalars = self._with_null(residue_scalars, residues.null_flag, "residue_node")
        residue_vectors = torch.einsum("vf,rfc->rvc", self.frame_mixing, batch.residue_frame).flatten(1)
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
            _cat_present(
                bond_one_hot, self.ligand_distance(ligand_vectors.norm(dim=-1)), *atoms.on_edges(ligand_edges)
            )
        )

        receptor_edges = batch.receptor_edges
        receptor_vectors = batch.residue_pos[receptor_edges[1]] - batch.residue_pos[receptor_edges[0]]
        receptor_features = self.receptor_edge_embedding(
            _cat_present(
                self.receptor_distance(receptor_vectors.norm(dim=-1)), *residues.on_edges(receptor_edges)
            )
        )

        cross_edges = radius(
            batch.residue_pos, ligand_pos, cross_cutoff, batch.residue_graph, batch.atom_graph
        )
        cross_vectors = batch.residue_pos[cross_edges[1]] - ligand_pos[cross_edges[0]]
        cross_time = None if atoms.time is None else atoms.time[cross_edges[0]]
        cross_features = self.cross_edge_embedding(
            _cat_present(self.cross_distance(cross_vectors.norm(dim=-1)), cross_time)
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


class ScoreTrunk(nn.Module):
    """:class:`InteractionTrunk` conditioned on diffusion time and latent tokens (method.md §2.4, §3.4).

    At time ``t`` (one per graph) the trunk sees the time embedding ``sinusoidal(1000 t)`` on every node
    and edge, and ligand–residue edges within ``min(3σ_tr(t) + 20, 80)`` Å.

    Parameters
    ----------
    config
        Score model hyperparameters.
    """

    def __init__(self, config: ScoreModelConfig) -> None:
        super().__init__()
        self.config = config
        self.network = InteractionTrunk(
            ns=config.ns,
            nv=config.nv,
            num_layers=config.num_conv_layers,
            ligand_radius=config.ligand_radius,
            receptor_distance_max=config.receptor_distance_max,
            cross_distance_max=config.cross_max_distance,
            distance_embed_dim=config.distance_embed_dim,
            time_embed_dim=config.time_embed_dim,
            latent_tokens=config.latent_tokens,
            dropout=config.dropout,
            update_residues_in_last_layer=False,
        )

    def time_embedding(self, t: Tensor) -> Tensor:
        """``float[B]`` → ``float[B, time_embed_dim]``."""
        return sinusoidal_time_embedding(t, self.config.time_embed_dim, self.config.time_embedding_scale)

    def cross_cutoff(self, t: Tensor) -> Tensor:
        """``float[B]``: ``min(sigmas · σ_tr(t) + offset, cross_max_distance)`` Å."""
        config = self.config
        cutoff = config.cross_cutoff_sigmas * config.schedule.tr.sigma(t) + config.cross_cutoff_offset
        return cutoff.clamp(max=config.cross_max_distance)

    def forward(
        self, batch: ComplexBatch, t: Tensor, latents: LatentAssignment | None
    ) -> tuple[Tensor, Tensor]:
        """Trunk features of ``batch.ligand_pos`` at times ``t [B]``.

        ``latents = None`` means unconditional (null tokens) when ``latent_tokens > 0``; with
        ``latent_tokens = 0`` it must be ``None``.

        Returns
        -------
        ligand_features, residue_features
            ``float[A, D]``, ``float[R, D]`` with ``D = network.irreps_out.dim``.
        """
        num_tokens = self.config.latent_tokens
        if num_tokens == 0 and latents is not None:
            raise ValueError(
                "this score model has no latent tokens (latent_tokens: 0) but latents were given"
            )
        if num_tokens and latents is None:
            latents = LatentAssignment.null(batch, num_tokens, batch.ligand_pos.dtype)
        if latents is not None and latents.num_tokens != num_tokens:
            raise ValueError(f"expected {num_tokens} latent tokens, got {latents.num_tokens}")
        return self.network(batch, batch.ligand_pos, self.cross_cutoff(t), self.time_embedding(t), latents)

    def embed(
        self, batch: ComplexBatch, t: Tensor, latents: LatentAssignment | None
    ) -> tuple[Tensor, Tensor]:
        """Scalar trunk features: ``ligand [A, F]``, ``residue [R, F]``, ``F = network.num_scalars``."""
        ligand_features, residue_features = self(batch, t, latents)
        return self.network.scalars(ligand_features), self.network.scalars(residue_features)


class ScoreModel(nn.Module):
    """Score network ``s_θ(x_t, t, z)`` of translation, rotation and torsions (method.md §2.6).

    **Translation and rotation.** Every ligand atom sends a message to its graph's centroid ``c`` with
    filter ``Y(x_i − c)`` and edge features ``[MLP([smear_{0–30}(|x_i − c|), time]), s_i]``; an e3nn
    fully connected tensor product to ``2×1o + 2×1e``, mean-pooled and batch-normalised, gives
    ``tr = 1o₁ + 1e₁`` and ``rot = 1o₂ + 1e₂`` (parities summed). Each vector ``v`` is then rescaled to
    ``v/|v| · MLP([|v|, time])``, and ``tr /= σ_tr``, ``rot *= N_rot(σ_rot)``.

    **Torsion.** For each rotatable bond ``(u, v)`` with midpoint ``m``, ligand atoms within 5 Å send
    messages with filter ``(Y_{≤1}(x_i − m) ⊗ Y_2(x_v − x_u))`` (the even l = 2 harmonic makes it blind to
    the bond's direction) and edge features ``[MLP(smear(|x_i − m|)), s_i, s_u + s_v]``; a fully connected
    tensor product to ``ns×0o + ns×0e``, mean-pooled and batch-normalised, passes through the odd,
    bias-free ``Linear → tanh → Dropout → Linear`` and is multiplied by ``sqrt(E[s²](σ_tor))``.

    Parameters
    ----------
    config
        Hyperparameters.
    """

    def __init__(self, config: ScoreModelConfig) -> None:
        super().__init__()
        self.config = config
        ns, dropout = config.ns, config.dropout
        self.trunk = ScoreTrunk(config)
        irreps = self.trunk.network.irreps_out
        time_dim = config.time_embed_dim

        self.center_distance = GaussianSmearing(config.center_distance_max, config.distance_embed_dim)
        self.center_edge_embedding = mlp(config.distance_embed_dim + time_dim, ns, ns, dropout)
        self.center_convolution = TensorProductConvolution(
            o3.FullyConnectedTensorProduct(
                irreps, "0e+1o", "2x1o+2x1e", shared_weights=False, internal_weights=False
            ),
            edge_dims=[ns],
            centre_scalar_dim=0,
            neighbour_scalar_dim=ns,
            dropout=dropout,
        )
        self.translation_magnitude = _magnitude_mlp(time_dim, ns, dropout)
        self.rotation_magnitude = _magnitude_mlp(time_dim, ns, dropout)

        self.torsion_edge_embedding = mlp(config.distance_embed_dim, ns, ns, dropout)
        self.bond_filter = o3.FullTensorProduct("0e+1o", "2e")
        self.torsion_convolution = TensorProductConvolution(
            o3.FullyConnectedTensorProduct(
                irreps,
                self.bond_filter.irreps_out,
                f"{ns}x0o+{ns}x0e",
                shared_weights=False,
                internal_weights=False,
            ),
            edge_dims=[ns],
            centre_scalar_dim=ns,
            neighbour_scalar_dim=ns,
            dropout=dropout,
        )
        self.torsion_output = nn.Sequential(
            nn.Linear(2 * ns, ns, bias=False), nn.Tanh(), nn.Dropout(dropout), nn.Linear(ns, 1, bias=False)
        )

    def embed(
        self, batch: ComplexBatch, t: Tensor, latents: LatentAssignment | None = None
    ) -> tuple[Tensor, Tensor]:
        """Scalar trunk features ``ligand [A, F]``, ``residue [R, F]`` (see :meth:`ScoreTrunk.embed`)."""
        return self.trunk.embed(batch, t, latents)

    def forward(self, batch: ComplexBatch, t: Tensor, latents: LatentAssignment | None = None) -> ScoreOutput:
        """Scores of the poses ``batch.ligand_pos`` at times ``t``.

        Parameters
        ----------
        batch
            The complexes, with the current (noisy) ligand poses.
        t
            ``float[B]`` diffusion time of each graph.
        latents
            Tokens of each graph. ``None`` with ``latent_tokens > 0`` is the unconditional model (null
            tokens); with ``latent_tokens = 0`` it must be ``None``.

        Returns
        -------
        ScoreOutput
            ``tr [B, 3]``, ``rot [B, 3]``, ``tor [T]``.
        """
        ligand_features, _ = self.trunk(batch, t, latents)
        time_embedding = self.trunk.time_embedding(t)
        tr, rot = self._rigid_scores(batch, ligand_features, time_embedding)
        schedule = self.config.schedule
        tr = tr / schedule.tr.sigma(t)[:, None]
        rot = rot * igso3_score_norm(schedule.rot.sigma(t))[:, None]
        tor = self._torsion_scores(batch, ligand_features)
        tor = tor * torus_score_second_moment(schedule.tor.sigma(t)[batch.torsions.graph]).sqrt()
        return ScoreOutput(tr=tr, rot=rot, tor=tor)

    def _rigid_scores(
        self, batch: ComplexBatch, ligand_features: Tensor, time_embedding: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Unscaled ``tr [B, 3]`` and ``rot [B, 3]`` from the centroid convolution."""
        pos, graph = batch.ligand_pos, batch.atom_graph
        vectors = pos - scatter_mean(pos, graph, batch.num_graphs)[graph]
        edge_features = self.center_edge_embedding(
            torch.cat([self.center_distance(vectors.norm(dim=-1)), time_embedding[graph]], dim=1)
        )
        atoms = torch.arange(len(pos), device=pos.device)
        edges = EdgeSet(graph, atoms, edge_features, spherical_harmonics_l1(vectors))
        scalars = ligand_features[:, : self.config.ns]
        pooled = self.center_convolution(ligand_features, scalars, None, [edges], batch.num_graphs)
        tr = pooled[:, 0:3] + pooled[:, 6:9]
        rot = pooled[:, 3:6] + pooled[:, 9:12]
        return (
            _rescale_magnitude(tr, time_embedding, self.translation_magnitude),
            _rescale_magnitude(rot, time_embedding, self.rotation_magnitude),
        )

    def _torsion_scores(self, batch: ComplexBatch, ligand_features: Tensor) -> Tensor:
        """Unscaled ``tor [T]`` from the bond-midpoint convolution."""
        pos, torsions = batch.ligand_pos, batch.torsions
        if torsions.num_torsions == 0:
            return pos.new_zeros(0)
        u, v = torsions.edges[:, 0], torsions.edges[:, 1]
        midpoints = (pos[u] + pos[v]) / 2
        neighbours = radius(pos, midpoints, self.config.ligand_radius, batch.atom_graph, torsions.graph)
        vectors = pos[neighbours[1]] - midpoints[neighbours[0]]
        edge_features = self.torsion_edge_embedding(self.trunk.network.ligand_distance(vectors.norm(dim=-1)))
        bond_harmonics = o3.spherical_harmonics(2, pos[v] - pos[u], normalize=True, normalization="component")
        filters = self.bond_filter(spherical_harmonics_l1(vectors), bond_harmonics[neighbours[0]])
        edges = EdgeSet(neighbours[0], neighbours[1], edge_features, filters)
        ns = self.config.ns
        bond_scalars = (ligand_features[u] + ligand_features[v])[:, :ns]
        pooled = self.torsion_convolution(
            ligand_features, ligand_features[:, :ns], bond_scalars, [edges], torsions.num_torsions
        )
        return self.torsion_output(pooled)[:, 0]


def _magnitude_mlp(time_dim: int, hidden_dim: int, dropout: float) -> nn.Sequential:
    """``Linear(1 + time → hidden) → Dropout → ReLU → Linear(hidden → 1)``: new length of a score vector."""
    return nn.Sequential(
        nn.Linear(1 + time_dim, hidden_dim), nn.Dropout(dropout), nn.ReLU(), nn.Linear(hidden_dim, 1)
    )


def _rescale_magnitude(vectors: Tensor, time_embedding: Tensor, magnitude: nn.Module) -> Tensor:
    """``v / |v| · MLP([|v|, time])`` for ``vectors [B, 3]``."""
    length = vectors.norm(dim=1, keepdim=True)
    direction = vectors / length.clamp(min=torch.finfo(vectors.dtype).tiny)
    return direction * magnitude(torch.cat([length, time_embedding], dim=1))


def _rows(values: Tensor | None, index: Tensor) -> Tensor | None:
    """``values[index]``, or ``None`` if ``values`` is absent."""
    return None if values is None else values[index]


def _cat_present(*parts: Tensor | None) -> Tensor:
    """Concatenate the present parts along the feature axis."""
    return torch.cat([part for part in parts if part is not None], dim=1)
