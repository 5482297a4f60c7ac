"""The DisCo-DiffDock score network with a pose-independent receptor encoder (method.md §2, §3.4).

Three pieces:

* :class:`ReceptorEncoder` — message passing over the C-alpha graph alone. It sees neither the ligand,
  nor the diffusion time, nor the tokens, so a sampler computes it **once per batch** (for each graph's
  receptor copy) and reuses it at every step (:meth:`ScoreModel.for_receptors`);
* :class:`ScoreTrunk` — ligand layers: each ligand atom receives messages from its ligand neighbours
  (bonds and a 5 Å radius graph) and from its ``cross_max_neighbors`` nearest residues within the
  time-dependent cutoff ``min(3σ_tr(t) + 20, 80)`` Å; residue features are the encoder's, fixed;
* :class:`ScoreModel` — the trunk plus the translation/rotation head (a convolution onto the ligand
  centroid from every ligand atom **and every residue**, the head's global view of the protein) and the
  torsion head (a convolution onto rotatable-bond midpoints), scaled by σ.

Differences from DiffDock-S / disco-diffdock, all deliberate:

* **Residues are not updated by the ligand.** DiffDock-S passes ligand information into the residues
  and back in every layer, which makes the receptor's share of the work (≈ 24 edges per residue per
  layer) depend on the pose: 40 samples × 20 steps repeat it 800 times. Here the receptor is encoded
  once and the per-step work is the ligand's (``A · (ligand degree + cross_max_neighbors)`` edges per
  layer, plus ``R`` edges in the centroid head). Training is cheaper in the same proportion.
* **Cross edges are capped** to the ``cross_max_neighbors`` nearest residues of each atom; the far
  protein reaches the pose through the centroid head's residue edges instead.
* **No ESM embeddings.** A residue's input is an embedding of its type and, as ``nv×1o`` features, a
  learned linear mix of its N−CA, C−CA and CB−CA vectors.
* **Latent tokens** enter as indicator channels of ligand atoms (node and edge inputs) and of residues
  (in the embeddings of the cross and centroid-head edges they send), with learned null embeddings.
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
from discodock.data.vocabulary import ATOM_FEATURE_CARDINALITIES
from discodock.geometry.pose import centred, gyration_radius
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
    scatter_mean,
    sinusoidal_time_embedding,
    spherical_harmonics_l1,
)
from discodock.model.trunk import NUM_BOND_TYPES, CategoricalEmbedding, ResidueEmbedding, concat_present


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
    displacement
        ``float[A, 3]``: centred per-atom displacement estimate ``f̃`` (Å) behind the rotation and torsion
        scores, for the loss; ``None`` where a score comes from elsewhere (e.g. an analytic test score).
    """

    tr: Tensor
    rot: Tensor
    tor: Tensor
    displacement: Tensor | None = None


FIT_REGULARIZATION = 0.1
"""Å², the ridge term ``λ`` of the rigid and torsional fits of the atom displacements."""

ScoreFunction = Callable[[ComplexBatch, Tensor, "LatentAssignment | None"], ScoreOutput]
"""``(batch, t [B], latents) → ScoreOutput``, what the sampler calls."""


class ReceptorEncoder(nn.Module):
    """Pose-, time- and token-independent residue features ``float[R, hidden_irreps(ns, nv, L).dim]``.

    Input: ``ns`` scalars ``E[type]`` and ``nv×1o`` backbone vectors (:class:`ResidueEmbedding`).
    Edges: ``batch.receptor_edges`` (C-alpha graph) embedded by ``MLP(smear(d))``. Layer ``l`` maps
    ``hidden_irreps(l−1) → hidden_irreps(l)`` by ``x ← pad(x) + Conv_l(x)``.

    Parameters
    ----------
    ns, nv, num_layers
        Multiplicities and depth.
    distance_max, distance_embed_dim
        Range (Å) and Gaussians of the edge distance smearing.
    dropout
        Dropout in the MLPs.
    """

    def __init__(
        self,
        *,
        ns: int,
        nv: int,
        num_layers: int,
        distance_max: float,
        distance_embed_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.ns = ns
        self.residue_embedding = ResidueEmbedding(ns, nv)
        self.distance = GaussianSmearing(distance_max, distance_embed_dim)
        self.edge_embedding = mlp(distance_embed_dim, ns, ns, dropout)
        self.conv_layers = nn.ModuleList(
            TensorProductConvolution(
                FastTensorProduct(hidden_irreps(ns, nv, depth - 1), hidden_irreps(ns, nv, depth)),
                [ns],
                ns,
                ns,
                dropout,
            )
            for depth in range(1, num_layers + 1)
        )
        self.irreps_out = hidden_irreps(ns, nv, num_layers)

    def forward(self, batch: ComplexBatch) -> Tensor:
        """Residue features of ``batch``: ``float[R, irreps_out.dim]``."""
        scalars, vectors = self.residue_embedding(batch)
        nodes = torch.cat([scalars, vectors], dim=1)
        edges = batch.receptor_edges
        vectors = batch.residue_pos[edges[1]] - batch.residue_pos[edges[0]]
        edge_set = EdgeSet(
            edges[0],
            edges[1],
            self.edge_embedding(self.distance(vectors.norm(dim=-1))),
            spherical_harmonics_l1(vectors),
        )
        for conv in self.conv_layers:
            node_scalars = nodes[:, : self.ns]
            update = conv(nodes, node_scalars, node_scalars, [edge_set], len(nodes))
            nodes = F.pad(nodes, (0, conv.irreps_out.dim - nodes.shape[1])) + update
        return nodes


class ScoreTrunk(nn.Module):
    """Ligand message passing at time ``t`` among fixed residue features (method.md §2.1–2.5, §3.4).

    Initial ligand features: ``Linear([Σ_j E_j[x_j], time, z]) → ns`` scalars and zero vectors, with
    ``time = sinusoidal(1000 t)`` of the atom's graph and ``z`` its ``K`` token channels. Edge embeddings
    (``→ ns``, 2-layer MLPs):

    * ligand (bonds ∪ 5 Å radius graph): ``[bond one-hot (0 for radius edges), smear(d), time, z_c, z_n]``;
    * cross (atom ← its ``cross_max_neighbors`` nearest residues within ``min(3σ_tr(t) + 20, 80)`` Å):
      ``[smear(d), time, z_atom, z_residue]``.

    Null embeddings (``K > 0``) are added to the ligand node, ligand edge and cross edge embeddings of
    graphs flagged ``unconditional``. Layer ``l`` updates ligand atoms only, ``x ← pad(x) + Conv_l(x)``
    over [ligand, ligand←residue] with the residue features cut to the layer's input irreps (the
    encoder's irreps are a superset, :func:`~discodock.model.layers.hidden_irreps` being nested).

    Parameters
    ----------
    config
        Score model hyperparameters.
    """

    def __init__(self, config: ScoreModelConfig) -> None:
        super().__init__()
        self.config = config
        ns, nv, dropout, tokens = config.ns, config.nv, config.dropout, config.latent_tokens
        time_dim = config.time_embed_dim
        self.receptor = ReceptorEncoder(
            ns=ns,
            nv=nv,
            num_layers=config.receptor_layers,
            distance_max=config.receptor_distance_max,
            distance_embed_dim=config.distance_embed_dim,
            dropout=dropout,
        )
        self.atom_embedding = CategoricalEmbedding(ATOM_FEATURE_CARDINALITIES, ns)
        self.ligand_node_input = nn.Linear(ns + time_dim + tokens, ns)
        self.ligand_distance = GaussianSmearing(config.ligand_radius, config.distance_embed_dim)
        self.cross_distance = GaussianSmearing(config.cross_max_distance, config.distance_embed_dim)
        edge_input = config.distance_embed_dim + time_dim + 2 * tokens
        self.ligand_edge_embedding = mlp(NUM_BOND_TYPES + edge_input, ns, ns, dropout)
        self.cross_edge_embedding = mlp(edge_input, ns, ns, dropout)
        self.null_embeddings = (
            nn.ParameterDict(
                {name: nn.Parameter(torch.zeros(ns)) for name in ("ligand_node", "ligand_edge", "cross_edge")}
            )
            if tokens
            else None
        )
        self.conv_layers = nn.ModuleList(
            TensorProductConvolution(
                FastTensorProduct(hidden_irreps(ns, nv, depth - 1), hidden_irreps(ns, nv, depth)),
                [ns, ns],
                ns,
                ns,
                dropout,
            )
            for depth in range(1, config.num_conv_layers + 1)
        )
        self.irreps_out = hidden_irreps(ns, nv, config.num_conv_layers)

    def time_embedding(self, t: Tensor) -> Tensor:
        """``float[B]`` → ``float[B, time_embed_dim]``."""
        return sinusoidal_time_embedding(t, self.config.time_embed_dim, self.config.time_embedding_scale)

    def cross_cutoff(self, t: Tensor) -> Tensor:
        """``float[B]``: ``min(sigmas · σ_tr(t) + offset, cross_max_distance)`` Å."""
        config = self.config
        cutoff = config.cross_cutoff_sigmas * config.schedule.tr.sigma(t) + config.cross_cutoff_offset
        return cutoff.clamp(max=config.cross_max_distance)

    def encode_receptor(self, batch: ComplexBatch) -> Tensor:
        """``float[R, irreps_out.dim]``: the receptor encoding, zero-padded or cut to the trunk's irreps."""
        encoding, width = self.receptor(batch), self.irreps_out.dim
        return F.pad(encoding, (0, max(0, width - encoding.shape[1])))[:, :width]

    def latents_or_null(
        self, batch: ComplexBatch, latents: LatentAssignment | None
    ) -> LatentAssignment | None:
        """Check ``latents`` against ``latent_tokens``; ``None`` with tokens means all graphs null."""
        num_tokens = self.config.latent_tokens
        if num_tokens == 0 and latents is not None:
            raise ValueError(
                "this score model has no latent tokens (latent_tokens: 0) but latents were given"
            )
        if num_tokens and latents is None:
            return LatentAssignment.null(batch, num_tokens, batch.ligand_pos.dtype)
        if latents is not None and latents.num_tokens != num_tokens:
            raise ValueError(f"expected {num_tokens} latent tokens, got {latents.num_tokens}")
        return latents

    def forward(
        self, batch: ComplexBatch, t: Tensor, latents: LatentAssignment | None, receptor: Tensor
    ) -> Tensor:
        """Ligand features ``float[A, irreps_out.dim]`` of the poses ``batch.ligand_pos`` at times ``t [B]``.

        ``latents`` must already be checked (:meth:`latents_or_null`); ``receptor`` is
        :meth:`encode_receptor` of the same batch.
        """
        pos, atom_graph = batch.ligand_pos, batch.atom_graph
        time = self.time_embedding(t)[atom_graph]
        atom_tokens = None if latents is None else latents.ligand
        nodes = self.ligand_node_input(
            concat_present(self.atom_embedding(batch.atom_features), time, atom_tokens)
        )
        nodes = self._with_null(nodes, latents, atom_graph, "ligand_node")

        ligand_edges = torch.cat(
            [batch.bond_index, radius_graph(pos, self.config.ligand_radius, atom_graph)], 1
        )
        ligand_vectors = pos[ligand_edges[1]] - pos[ligand_edges[0]]
        bond_one_hot = F.one_hot(batch.bond_types, NUM_BOND_TYPES).to(pos.dtype)
        bond_one_hot = F.pad(bond_one_hot, (0, 0, 0, ligand_edges.shape[1] - len(bond_one_hot)))
        ligand_features = self.ligand_edge_embedding(
            concat_present(
                bond_one_hot,
                self.ligand_distance(ligand_vectors.norm(dim=-1)),
                time[ligand_edges[0]],
                *_token_pair(atom_tokens, ligand_edges[0], atom_tokens, ligand_edges[1]),
            )
        )
        ligand_features = self._with_null(
            ligand_features, latents, atom_graph[ligand_edges[0]], "ligand_edge"
        )

        cross_edges = radius(
            batch.residue_pos,
            pos,
            self.cross_cutoff(t),
            batch.residue_graph,
            atom_graph,
            max_num_neighbors=self.config.cross_max_neighbors,
        )
        cross_vectors = batch.residue_pos[cross_edges[1]] - pos[cross_edges[0]]
        residue_tokens = None if latents is None else latents.residue
        cross_features = self.cross_edge_embedding(
            concat_present(
                self.cross_distance(cross_vectors.norm(dim=-1)),
                time[cross_edges[0]],
                *_token_pair(atom_tokens, cross_edges[0], residue_tokens, cross_edges[1]),
            )
        )
        cross_features = self._with_null(cross_features, latents, atom_graph[cross_edges[0]], "cross_edge")

        num_atoms = len(pos)
        edge_sets = [
            EdgeSet(
                ligand_edges[0], ligand_edges[1], ligand_features, spherical_harmonics_l1(ligand_vectors)
            ),
            EdgeSet(
                cross_edges[0],
                cross_edges[1] + num_atoms,
                cross_features,
                spherical_harmonics_l1(cross_vectors),
            ),
        ]
        residue_scalars = receptor[:, : self.config.ns]
        for conv in self.conv_layers:
            width = conv.irreps_in.dim
            neighbours = torch.cat([F.pad(nodes, (0, width - nodes.shape[1])), receptor[:, :width]])
            scalars = torch.cat([nodes[:, : self.config.ns], residue_scalars])
            update = conv(neighbours, scalars, nodes[:, : self.config.ns], edge_sets, num_atoms)
            nodes = F.pad(nodes, (0, conv.irreps_out.dim - nodes.shape[1])) + update
        return nodes

    def _with_null(
        self, features: Tensor, latents: LatentAssignment | None, graph: Tensor, name: str
    ) -> Tensor:
        """``features + flag · null[name]``, the flag of each row's graph."""
        if self.null_embeddings is None or latents is None:
            return features
        flag = latents.unconditional.to(features.dtype)[graph, None]
        return features + flag * self.null_embeddings[name]


class ScoreModel(nn.Module):
    """Score network ``s_θ(x_t, t, z)`` of translation, rotation and torsions (method.md §2.6).

    **Atom vectors.** Two per-atom linear maps of the trunk features give vectors ``1o + 1e`` (parities
    summed): ``v_i``, whose graph mean ``v̄`` joins the translation head, and ``f_i``, whose centred and
    scaled form ``f̃_i = ρ (f_i − f̄)``, with the typical displacement ``ρ`` of
    :meth:`~discodock.geometry.schedules.NoiseSchedule.displacement_sigma` as preconditioner, is the
    network's estimate, in Å, of how far atom ``i`` is from its clean position relative to the centroid
    (trained directly by the displacement term of
    :func:`~discodock.diffusion.loss.score_matching_loss`). Its least-squares rotation ``ω(f̃)``
    (:func:`rigid_rotation`) and bond twists ``θ_k(f̃)`` (:func:`bond_twists`) are, for small noise,
    ``E[−Δr]`` and ``E[−Δθ_k]``; the small-noise scores are ``−Δr / (2σ_rot²)`` (IGSO(3) of
    :mod:`~discodock.geometry.so3` has variance ``2ε²`` per axis) and ``−Δθ_k / σ_tor²``, so they enter
    the heads as ``ω/(2σ_rot²)`` and ``θ_k/σ_tor²``, a dense, per-atom route to the two scores that
    graph-level targets train slowly.

    **Translation and rotation.** The ligand centroid ``c`` receives messages from every ligand atom
    (filter ``Y(x_i − c)``, edge features ``MLP([smear_{0–30}(|x_i − c|), time])``, neighbour scalars
    ``s_i``) and from every residue of the graph (filter ``Y(y_r − c)``, edge features
    ``MLP([smear_{0–80}(|y_r − c|), time, z_r])``, neighbour scalars the residue's encoding); an e3nn
    fully connected tensor product to ``2×1o + 2×1e``, mean-pooled and batch-normalised, gives
    ``u_tr = 1o₁ + 1e₁ + v̄`` and ``u_rot = 1o₂ + 1e₂``. Each vector ``u`` is rescaled to
    ``u/|u| · MLP([|u|, time])``; ``tr = u_tr / σ_tr`` and ``rot = u_rot · N_rot(σ_rot) + ω(f̃) / (2σ_rot²)``.

    **Torsion.** For each rotatable bond ``(u, v)`` with midpoint ``m``, ligand atoms within 5 Å send
    messages with filter ``(Y_{≤1}(x_i − m) ⊗ Y_2(x_v − x_u))`` (the even l = 2 harmonic makes it blind to
    the bond's direction) and edge features ``[MLP(smear(|x_i − m|)), s_i, s_u + s_v]``; a fully connected
    tensor product to ``ns×0o + ns×0e``, mean-pooled and batch-normalised, passes through the odd,
    bias-free ``Linear → tanh → Dropout → Linear``; the result times ``sqrt(E[s²](σ_tor))``, plus
    ``θ_k(f̃) / σ_tor²``, is the score.

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
        irreps = self.trunk.irreps_out
        time_dim = config.time_embed_dim

        self.center_distance = GaussianSmearing(config.center_distance_max, config.distance_embed_dim)
        self.center_edge_embedding = mlp(config.distance_embed_dim + time_dim, ns, ns, dropout)
        self.receptor_center_distance = GaussianSmearing(config.cross_max_distance, config.distance_embed_dim)
        self.receptor_center_edge_embedding = mlp(
            config.distance_embed_dim + time_dim + config.latent_tokens, ns, ns, dropout
        )
        self.center_convolution = TensorProductConvolution(
            o3.FullyConnectedTensorProduct(
                irreps, "0e+1o", "2x1o+2x1e", shared_weights=False, internal_weights=False
            ),
            edge_dims=[ns, ns],
            centre_scalar_dim=0,
            neighbour_scalar_dim=ns,
            dropout=dropout,
        )
        self.translation_vectors = o3.Linear(irreps, "1x1o+1x1e")
        self.atom_displacement = o3.Linear(irreps, "1x1o+1x1e")
        nn.init.zeros_(self.atom_displacement.weight)  # start from the heads' scores alone
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

    def encode_receptor(self, batch: ComplexBatch) -> Tensor:
        """The pose-independent receptor encoding of ``batch`` (``float[R, D]``), for :meth:`forward`."""
        return self.trunk.encode_receptor(batch)

    def for_receptors(self, batch: ComplexBatch, receptor: Tensor | None = None) -> ScoreFunction:
        """The score function of ``batch``'s complexes with their receptors encoded once.

        Every call must pass a batch with the same receptors (e.g. ``batch.with_ligand_pos(...)``, as the
        sampler does). The encoding is ``receptor`` if given (``float[R, D]``, e.g. computed once per
        complex and copied to its graphs), else computed here, not per call.
        """
        receptor = self.encode_receptor(batch) if receptor is None else receptor

        def score(posed: ComplexBatch, t: Tensor, latents: LatentAssignment | None) -> ScoreOutput:
            return self(posed, t, latents, receptor=receptor)

        return score

    def forward(
        self,
        batch: ComplexBatch,
        t: Tensor,
        latents: LatentAssignment | None = None,
        receptor: Tensor | None = None,
    ) -> ScoreOutput:
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
        receptor
            :meth:`encode_receptor` of this batch's receptors; computed here when ``None``.

        Returns
        -------
        ScoreOutput
            ``tr [B, 3]``, ``rot [B, 3]``, ``tor [T]``.
        """
        latents = self.trunk.latents_or_null(batch, latents)
        receptor = self.encode_receptor(batch) if receptor is None else receptor
        ligand_features = self.trunk(batch, t, latents, receptor)
        time_embedding = self.trunk.time_embedding(t)
        graph, num_graphs = batch.atom_graph, batch.num_graphs
        vectors = _sum_parities(self.translation_vectors(ligand_features))
        tr, rot = self._rigid_scores(
            batch,
            ligand_features,
            receptor,
            time_embedding,
            latents,
            scatter_mean(vectors, graph, num_graphs),
        )
        raw_displacement = _sum_parities(self.atom_displacement(ligand_features))
        raw_displacement = centred(raw_displacement, graph, num_graphs)
        scale = self.config.schedule.displacement_sigma(
            t, gyration_radius(batch.ligand_pos, graph, num_graphs)
        )
        displacement = scale[graph, None] * raw_displacement
        schedule = self.config.schedule
        rot_sigma, tor_sigma = schedule.rot.sigma(t), schedule.tor.sigma(t)[batch.torsions.graph]
        tr = tr / schedule.tr.sigma(t)[:, None]
        rot = rot * igso3_score_norm(rot_sigma)[:, None] + rigid_rotation(batch, displacement) / (
            2 * rot_sigma[:, None] ** 2
        )
        tor = self._torsion_scores(batch, ligand_features) * torus_score_second_moment(tor_sigma).sqrt()
        tor = tor + bond_twists(batch, displacement) / tor_sigma**2
        return ScoreOutput(tr=tr, rot=rot, tor=tor, displacement=displacement)

    def _rigid_scores(
        self,
        batch: ComplexBatch,
        ligand_features: Tensor,
        receptor: Tensor,
        time_embedding: Tensor,
        latents: LatentAssignment | None,
        mean_vector: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Unscaled ``u_tr [B, 3]`` (with the mean atom vector ``v̄``), ``u_rot [B, 3]``: centroid head."""
        pos, graph, residue_graph = batch.ligand_pos, batch.atom_graph, batch.residue_graph
        centroid = scatter_mean(pos, graph, batch.num_graphs)
        atom_vectors = pos - centroid[graph]
        atom_features = self.center_edge_embedding(
            torch.cat([self.center_distance(atom_vectors.norm(dim=-1)), time_embedding[graph]], dim=1)
        )
        residue_vectors = batch.residue_pos - centroid[residue_graph]
        residue_features = self.receptor_center_edge_embedding(
            concat_present(
                self.receptor_center_distance(residue_vectors.norm(dim=-1)),
                time_embedding[residue_graph],
                None if latents is None else latents.residue,
            )
        )
        num_atoms = len(pos)
        atoms = torch.arange(num_atoms, device=pos.device)
        residues = torch.arange(len(residue_graph), device=pos.device) + num_atoms
        edge_sets = [
            EdgeSet(graph, atoms, atom_features, spherical_harmonics_l1(atom_vectors)),
            EdgeSet(residue_graph, residues, residue_features, spherical_harmonics_l1(residue_vectors)),
        ]
        ns = self.config.ns
        neighbours = torch.cat([ligand_features, receptor])
        pooled = self.center_convolution(neighbours, neighbours[:, :ns], None, edge_sets, batch.num_graphs)
        tr = pooled[:, 0:3] + pooled[:, 6:9] + mean_vector
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
        edge_features = self.torsion_edge_embedding(self.trunk.ligand_distance(vectors.norm(dim=-1)))
        bond_harmonics = o3.spherical_harmonics(2, pos[v] - pos[u], normalize=True, normalization="component")
        filters = self.bond_filter(spherical_harmonics_l1(vectors), bond_harmonics[neighbours[0]])
        edges = EdgeSet(neighbours[0], neighbours[1], edge_features, filters)
        ns = self.config.ns
        bond_scalars = (ligand_features[u] + ligand_features[v])[:, :ns]
        pooled = self.torsion_convolution(
            ligand_features, ligand_features[:, :ns], bond_scalars, [edges], torsions.num_torsions
        )
        return self.torsion_output(pooled)[:, 0]


def _sum_parities(vectors: Tensor) -> Tensor:
    """``float[N, 3]``: the ``1o`` and ``1e`` parts of ``1x1o+1x1e`` features ``[N, 6]``, summed."""
    return vectors[:, :3] + vectors[:, 3:]


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


def rigid_rotation(batch: ComplexBatch, displacement: Tensor) -> Tensor:
    """``float[B, 3]``: small rotation (axis × angle) of each graph that best realises ``displacement``.

    A rotation ``ω`` about the centroid ``c`` moves atom ``i`` by ``ω × r_i`` (``r_i = x_i − c``); the
    ridge-regularised least-squares ``ω`` for displacements ``f_i [A, 3]`` solves ``(I + λ 1) ω =
    Σ_i r_i × f_i`` with the inertia tensor ``I = Σ_i (|r_i|² 1 − r_i r_iᵀ)`` and ``λ`` =
    :data:`FIT_REGULARIZATION` (a linear molecule's inertia is singular).
    """
    pos, graph, num_graphs = batch.ligand_pos, batch.atom_graph, batch.num_graphs
    arm = centred(pos, graph, num_graphs)
    torque = pos.new_zeros((num_graphs, 3)).index_add_(
        0, graph, torch.linalg.cross(arm, displacement, dim=-1)
    )
    return torch.linalg.solve(_regularized_inertia(arm, graph, num_graphs), torque)


def bond_twists(batch: ComplexBatch, displacement: Tensor) -> Tensor:
    """``float[T]``: twists of the rotatable bonds that best realise ``displacement``, jointly fitted.

    A twist ``θ_k`` of bond ``(u, v)`` (unit axis ``a ∝ x_u − x_v``) moves each atom ``i`` of its moving
    side by ``θ_k a × (x_i − x_v)``; the pose update then re-centres the ligand and aligns it back
    (:func:`~discodock.geometry.pose.apply_pose_updates`), which to first order leaves the basis vector
    ``b_k``: that motion minus its graph mean and minus its rigid rotation fit (:func:`rigid_rotation`).
    The twists of one graph solve the ridge-regularised least squares ``(G + λ 1) θ = Bᵀ f`` with
    ``G_kl = Σ_i b_{k,i} · b_{l,i}`` (all bonds of the graph at once, since their moving sides overlap)
    and ``λ`` = :data:`FIT_REGULARIZATION`. Since every ``b_k`` is orthogonal to translations and
    rotations, the rigid part of ``f`` does not leak into the twists. Computed on per-graph padded
    ``[B, T_max, A_max, 3]`` tensors.
    """
    torsions, pos, graph, num_graphs = batch.torsions, batch.ligand_pos, batch.atom_graph, batch.num_graphs
    if torsions.num_torsions == 0:
        return pos.new_zeros(0)
    counts = torch.bincount(graph, minlength=num_graphs)
    local_atom = torch.arange(len(pos), device=pos.device) - (torch.cumsum(counts, 0) - counts)[graph]
    max_atoms, max_bonds = int(counts.max()), torsions.num_ranks
    present = (torch.arange(max_atoms, device=pos.device)[None, :] < counts[:, None]).to(pos.dtype)

    def padded(values: Tensor) -> Tensor:
        out = values.new_zeros((num_graphs, max_atoms, 3))
        out[graph, local_atom] = values
        return out

    arm = centred(pos, graph, num_graphs)
    u, v = torsions.edges[:, 0], torsions.edges[:, 1]
    axis = F.normalize(pos[u] - pos[v], dim=-1)
    bond, atom = torsions.moving_torsion, torsions.moving_atom
    basis = pos.new_zeros((num_graphs, max_bonds, max_atoms, 3))
    basis[torsions.graph[bond], torsions.rank[bond], local_atom[atom]] = torch.linalg.cross(
        axis[bond], pos[atom] - pos[v][bond], dim=-1
    )
    basis = basis - (basis.sum(2, keepdim=True) / counts[:, None, None, None]) * present[:, None, :, None]
    arms = padded(arm)[:, None].expand_as(basis)
    torque = torch.linalg.cross(arms, basis, dim=-1).sum(2)
    inertia = _regularized_inertia(arm, graph, num_graphs)[:, None].expand(-1, max_bonds, -1, -1)
    omega = torch.linalg.solve(inertia, torque)
    basis = basis - torch.linalg.cross(omega[:, :, None].expand_as(basis), arms, dim=-1)
    gram = torch.einsum("btac,bsac->bts", basis, basis)
    gram = gram + FIT_REGULARIZATION * torch.eye(max_bonds, dtype=pos.dtype, device=pos.device)
    twists = torch.linalg.solve(gram, torch.einsum("btac,bac->bt", basis, padded(displacement)))
    return twists[torsions.graph, torsions.rank]


def _regularized_inertia(arm: Tensor, graph: Tensor, num_graphs: int) -> Tensor:
    """``float[B, 3, 3]``: ``Σ_i (|r_i|² 1 − r_i r_iᵀ) + λ 1`` of each graph, ``arm`` = ``r [A, 3]``."""
    identity = torch.eye(3, dtype=arm.dtype, device=arm.device)
    per_atom = arm.square().sum(-1)[:, None, None] * identity - arm[:, :, None] * arm[:, None, :]
    inertia = arm.new_zeros((num_graphs, 3, 3)).index_add_(0, graph, per_atom)
    return inertia + FIT_REGULARIZATION * identity


def _token_pair(
    centre_tokens: Tensor | None, centre: Tensor, neighbour_tokens: Tensor | None, neighbour: Tensor
) -> tuple[Tensor | None, Tensor | None]:
    """Token channels of each edge's centre and neighbour (``None`` without tokens)."""
    if centre_tokens is None or neighbour_tokens is None:
        return None, None
    return centre_tokens[centre], neighbour_tokens[neighbour]
