"""Building blocks of the equivariant networks (method.md §2.3–2.5).

Node features are flat tensors in e3nn's layout for an :class:`e3nn.o3.Irreps` (blocks in irreps order,
an ``m×1o`` block stored multiplicity-major as ``m·3`` numbers, Cartesian ``x, y, z``; e3nn 0.6's l = 1
basis is Cartesian). Only the irreps ``0e, 1o, 1e, 0o`` occur in the trunk, each at most once.

Edges are directed ``centre ← neighbour``: a message computed from the neighbour's features and the
edge filter is averaged onto the centre. Edge vectors point from the centre to the neighbour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from e3nn import o3
from e3nn.nn import BatchNorm
from torch import Tensor, nn

SCALAR_AND_VECTOR_HARMONICS = o3.Irreps("0e+1o")
"""Irreps of the l ≤ 1 spherical harmonics of an edge vector."""

_SUPPORTED_IRREPS = ("0e", "1o", "1e", "0o")


def scatter_mean(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Mean of the rows of ``values`` that share an ``index``.

    ``out[s] = Σ_{i: index_i = s} values_i / max(1, |{i: index_i = s}|)``; empty segments are zero.

    Parameters
    ----------
    values
        ``float[N, ...]``.
    index
        ``int64[N]`` segment of each row, in ``[0, num_segments)``.
    num_segments
        ``S``.

    Returns
    -------
    Tensor
        ``float[S, ...]``.
    """
    total = values.new_zeros((num_segments, *values.shape[1:])).index_add_(0, index, values)
    count = torch.bincount(index, minlength=num_segments).clamp(min=1).to(values.dtype)
    return total / count.view(-1, *([1] * (values.dim() - 1)))


def sinusoidal_time_embedding(t: Tensor, dim: int, scale: float, max_positions: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of the diffusion time (method.md §2.4).

    With ``x = scale · t``, ``h = dim / 2`` and frequencies ``ω_j = max_positions^(−j/(h−1))``,
    ``j = 0..h−1``: ``emb = [sin(x ω_0), …, sin(x ω_{h−1}), cos(x ω_0), …, cos(x ω_{h−1})]``.

    Parameters
    ----------
    t
        ``float[B]`` times in ``[0, 1]``.
    dim
        Even embedding width (32).
    scale
        Factor on ``t`` (1000 for the score model).
    max_positions
        Sets the lowest frequency.

    Returns
    -------
    Tensor
        ``float[B, dim]``.
    """
    half = dim // 2
    frequencies = torch.exp(
        torch.arange(half, dtype=t.dtype, device=t.device) * (-math.log(max_positions) / (half - 1))
    )
    phase = (scale * t)[:, None] * frequencies[None, :]
    return torch.cat([phase.sin(), phase.cos()], dim=1)


class GaussianSmearing(nn.Module):
    """Embed distances by Gaussians on a grid (method.md §2.3).

    ``emb_k(d) = exp(−(d − μ_k)² / (2Δ²))`` with ``μ_k`` evenly spaced on ``[0, stop]`` and width ``Δ`` the
    grid spacing.

    Parameters
    ----------
    stop
        Last centre (Å).
    num_gaussians
        Number of centres ``K``.
    """

    def __init__(self, stop: float, num_gaussians: int) -> None:
        super().__init__()
        centres = torch.linspace(0.0, stop, num_gaussians)
        self.register_buffer("centres", centres)
        self.coefficient = -0.5 / (stop / (num_gaussians - 1)) ** 2

    def forward(self, distance: Tensor) -> Tensor:
        """``float[E]`` distances → ``float[E, K]``."""
        return torch.exp(self.coefficient * (distance[:, None] - self.centres[None, :]).square())


def spherical_harmonics_l1(vectors: Tensor) -> Tensor:
    """Spherical harmonics of degree ≤ 1 with e3nn's "component" normalisation.

    ``Y(v) = [1, √3 · v / |v|]`` (``‖Y^l‖² = 2l + 1``); a zero vector gets ``[1, 0, 0, 0]``.

    Parameters
    ----------
    vectors
        ``float[E, 3]``.

    Returns
    -------
    Tensor
        ``float[E, 4]`` in the layout of ``0e + 1o``.
    """
    length = vectors.norm(dim=-1, keepdim=True)
    direction = vectors / length.clamp(min=torch.finfo(vectors.dtype).tiny)
    return torch.cat([torch.ones_like(length), math.sqrt(3.0) * direction], dim=-1)


def hidden_irreps(ns: int, nv: int, depth: int) -> o3.Irreps:
    """Node irreps after ``depth`` convolution layers (method.md §2.5; depth 0 is the input).

    ``ns×0e + nv×1o`` for depth ≤ 1, then ``+ nv×1e`` at depth 2 and ``+ ns×0o`` from depth 3 on. Each
    is a prefix of the next, so zero-padding at the end embeds one into the next. (DiffDock's input is
    ``ns×0e``; ours carries ``nv×1o`` from the start for the residues' backbone vectors.)
    """
    parts = [f"{ns}x0e", f"{nv}x1o"]
    if depth >= 2:
        parts.append(f"{nv}x1e")
    if depth >= 3:
        parts.append(f"{ns}x0o")
    return o3.Irreps("+".join(parts))


def scalar_part(features: Tensor, irreps: o3.Irreps) -> Tensor:
    """The l = 0 channels (``0e`` then ``0o``) of ``features [N, irreps.dim]`` as ``[N, #scalars]``."""
    return torch.cat(
        [features[:, s] for (_, ir), s in zip(irreps, irreps.slices(), strict=True) if ir.l == 0], 1
    )


def mlp(in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """``Linear → ReLU → Dropout → Linear``, the edge-embedding MLP of method.md §2.3."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, out_dim)
    )


def logit_head(in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """Per-node logit MLP of the encoder and the prior (method.md §3.2, §3.7).

    ``(Linear → BatchNorm1d → ReLU → Dropout) × 2 → Linear``: ``in_dim → hidden → hidden → out_dim``.
    """
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, out_dim),
    )


class FastTensorProduct(nn.Module):
    """Per-edge weighted tensor product of l ≤ 1 features with l ≤ 1 spherical harmonics (§2.5).

    The paths of e3nn's ``FullyConnectedTensorProduct(irreps_in, "0e+1o", irreps_out,
    shared_weights=False)``, written out by hand for irreps drawn from ``0e, 1o, 1e, 0o`` (the reference's
    "FasterTensorProduct"; its normalisation differs from e3nn's). With node blocks ``s`` (0e),
    ``v`` (1o), ``a`` (1e), ``p`` (0o) and filter ``Y = [Y⁰, Y¹]``, the path features of each output type
    are

    * 0e: ``s Y⁰``, ``(v · Y¹)/√3``
    * 1o: ``s ⊗ Y¹``, ``v Y⁰``, ``(a × Y¹)/√2``
    * 1e: ``(v × Y¹)/√2``, ``a Y⁰``, ``p ⊗ Y¹``
    * 0o: ``(a · Y¹)/√3``, ``p Y⁰``

    and each output channel is a per-edge linear combination of the ``F`` path channels of its type,
    ``out_o = Σ_i w_io f_i / √F`` (fan-in normalisation). Every product is a batched elementwise op or one
    ``bmm`` per output type, with no Clebsch–Gordan tables.

    Parameters
    ----------
    irreps_in
        Node irreps, each of ``0e, 1o, 1e, 0o`` at most once.
    irreps_out
        Output irreps, same restriction.

    Attributes
    ----------
    irreps_in1, irreps_in2, irreps_out
        As in e3nn (``irreps_in2`` is ``0e + 1o``).
    weight_numel
        Number of per-edge weights, laid out output block by output block as ``[F, mul_out]``.
    """

    def __init__(self, irreps_in: o3.Irreps | str, irreps_out: o3.Irreps | str) -> None:
        super().__init__()
        self.irreps_in1 = _checked_irreps(irreps_in)
        self.irreps_in2 = SCALAR_AND_VECTOR_HARMONICS
        self.irreps_out = _checked_irreps(irreps_out)
        multiplicity = {str(ir): mul for mul, ir in self.irreps_in1}
        m0e, m1o, m1e, m0o = (multiplicity.get(name, 0) for name in _SUPPORTED_IRREPS)
        fan_in = {"0e": m0e + m1o, "1o": m0e + m1o + m1e, "1e": m1o + m1e + m0o, "0o": m1e + m0o}
        self.weight_shapes = [(str(ir), fan_in[str(ir)], mul) for mul, ir in self.irreps_out]
        self.weight_numel = sum(f * m for _, f, m in self.weight_shapes)
        self.input_blocks = [(str(ir), mul, ir.dim) for mul, ir in self.irreps_in1]

    def forward(self, features: Tensor, harmonics: Tensor, weights: Tensor) -> Tensor:
        """Tensor product of every edge.

        Parameters
        ----------
        features
            ``float[E, irreps_in1.dim]``: node features of each edge's neighbour.
        harmonics
            ``float[E, 4]``: the edge filter ``[Y⁰, Y¹]``.
        weights
            ``float[E, weight_numel]``.

        Returns
        -------
        Tensor
            ``float[E, irreps_out.dim]``.
        """
        blocks = _split_blocks(features, self.input_blocks)
        y0, y1 = harmonics.split([1, 3], dim=1)
        outputs = []
        block_weights = weights.split([fan_in * mul for _, fan_in, mul in self.weight_shapes], dim=1)
        for (name, fan_in, mul), weight in zip(self.weight_shapes, block_weights, strict=True):
            weight = weight.reshape(-1, fan_in, mul)
            paths = _path_features(blocks, y0, y1, name)
            if not paths:
                outputs.append(features.new_zeros(len(features), mul * (3 if name[0] == "1" else 1)))
                continue
            path = torch.cat(paths, dim=1) / math.sqrt(fan_in)
            if name[0] == "0":  # [E, F] · [E, F, m] → [E, m]
                outputs.append(torch.bmm(path[:, None, :], weight)[:, 0])
            else:  # [E, m, F] · [E, F, 3] → [E, m, 3]
                outputs.append(torch.bmm(weight.transpose(1, 2), path).flatten(1))
        return torch.cat(outputs, dim=1)


COMPILED_LAYOUTS_LIMIT = 64
"""Distinct tensor-product layouts ``torch.compile`` may compile (one per irreps/weight-width combination)."""


def compile_tensor_products(module: nn.Module) -> int:
    """Compile the forward of every :class:`FastTensorProduct` inside ``module`` with ``torch.compile``.

    The products are elementwise path features and small batched matrix products over ``E`` edges; the
    compiler fuses the former. Shapes are marked dynamic (edge counts change every batch), so one
    compilation per product layout serves all batches; the layouts (irreps, weight widths) differ between
    layers and networks, so dynamo's recompile limit is raised to :data:`COMPILED_LAYOUTS_LIMIT` (its
    default of 8 left the later layers uncompiled). Numerically the same function (up to float rounding
    order).

    Returns
    -------
    int
        Number of tensor products compiled.
    """
    products = [m for m in module.modules() if isinstance(m, FastTensorProduct)]
    dynamo_config = torch._dynamo.config
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, COMPILED_LAYOUTS_LIMIT)
    for product in products:
        product.forward = torch.compile(product.forward, dynamic=True)  # type: ignore[method-assign]
    return len(products)


def _checked_irreps(irreps: o3.Irreps | str) -> o3.Irreps:
    irreps = o3.Irreps(irreps)
    names = [str(ir) for _, ir in irreps]
    if any(name not in _SUPPORTED_IRREPS for name in names) or len(set(names)) != len(names):
        raise ValueError(f"FastTensorProduct needs distinct irreps among {_SUPPORTED_IRREPS}, got {irreps}")
    return irreps


def _split_blocks(features: Tensor, input_blocks: Sequence[tuple[str, int, int]]) -> dict[str, Tensor]:
    """Blocks of flat features by irrep name: scalars ``[E, m]``, vectors ``[E, m, 3]``.

    ``input_blocks`` lists ``(name, multiplicity, irrep dimension)`` in layout order (plain Python values,
    so that ``torch.compile`` need not guard on e3nn objects). ``split`` rather than slicing: its backward
    is one concatenation, not a zero-filled copy per block.
    """
    blocks = features.split([mul * dim for _, mul, dim in input_blocks], dim=1)
    return {
        name: block if dim == 1 else block.reshape(len(features), mul, 3)
        for (name, mul, dim), block in zip(input_blocks, blocks, strict=True)
    }


def _path_features(blocks: dict[str, Tensor], y0: Tensor, y1: Tensor, output: str) -> list[Tensor]:
    """Path features of the ``output`` irrep (see :class:`FastTensorProduct`), present inputs only."""
    s, v, a, p = (blocks.get(name) for name in _SUPPORTED_IRREPS)
    y1_row = y1[:, None, :]
    candidates = {
        "0e": [
            (s, lambda: s * y0),
            (v, lambda: (v * y1_row).sum(-1) / math.sqrt(3.0)),
        ],
        "1o": [
            (s, lambda: s[:, :, None] * y1_row),
            (v, lambda: v * y0[:, :, None]),
            (a, lambda: torch.linalg.cross(a, y1_row.expand_as(a), dim=-1) / math.sqrt(2.0)),
        ],
        "1e": [
            (v, lambda: torch.linalg.cross(v, y1_row.expand_as(v), dim=-1) / math.sqrt(2.0)),
            (a, lambda: a * y0[:, :, None]),
            (p, lambda: p[:, :, None] * y1_row),
        ],
        "0o": [
            (a, lambda: (a * y1_row).sum(-1) / math.sqrt(3.0)),
            (p, lambda: p * y0),
        ],
    }[output]
    return [compute() for block, compute in candidates if block is not None]


@dataclass(frozen=True)
class EdgeSet:
    """Edges of one type for a :class:`TensorProductConvolution`.

    Attributes
    ----------
    centre
        ``int64[E]``: node receiving each message.
    neighbour
        ``int64[E]``: node whose features are sent.
    features
        ``float[E, F]``: edge embedding.
    filter
        ``float[E, D]``: the second tensor-product input (e.g. spherical harmonics of the edge vector).
    """

    centre: Tensor
    neighbour: Tensor
    features: Tensor
    filter: Tensor


class EdgeWeightNetwork(nn.Module):
    """Per-edge tensor-product weights from edge and endpoint scalars (method.md §2.3).

    ``w_e = W₂ · Dropout(ReLU(W₁ [h_e, c_{centre(e)}, n_{neighbour(e)}] + b₁)) + b₂``; the first layer is
    applied to the node scalars before gathering them onto the edges, which is the same function with
    less per-edge work.

    Parameters
    ----------
    edge_dim, centre_dim, neighbour_dim
        Widths of ``h``, ``c`` (0: no centre scalars) and ``n``.
    out_dim
        Number of weights per edge.
    dropout
        Dropout probability.
    """

    def __init__(
        self, edge_dim: int, centre_dim: int, neighbour_dim: int, out_dim: int, dropout: float
    ) -> None:
        super().__init__()
        hidden_dim = edge_dim + centre_dim + neighbour_dim
        self.edge_layer = nn.Linear(edge_dim, hidden_dim)
        self.centre_layer = nn.Linear(centre_dim, hidden_dim, bias=False) if centre_dim else None
        self.neighbour_layer = nn.Linear(neighbour_dim, hidden_dim, bias=False)
        self.output_layers = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, out_dim))

    def forward(self, edges: EdgeSet, centre_scalars: Tensor | None, neighbour_scalars: Tensor) -> Tensor:
        """``float[E, out_dim]`` weights of ``edges``; scalars are per node (``[N_c, c]``, ``[N_n, n]``)."""
        hidden = self.edge_layer(edges.features) + self.neighbour_layer(neighbour_scalars)[edges.neighbour]
        if self.centre_layer is not None:
            hidden = hidden + self.centre_layer(centre_scalars)[edges.centre]
        return self.output_layers(hidden)


class TensorProductConvolution(nn.Module):
    """Equivariant convolution: per-edge weighted tensor products, mean-aggregated, batch-normalised.

    For centre node ``c``,

    ``out_c = BN( mean_{e: centre(e) = c} TP(x_{neighbour(e)}, f_e; w_e) )``

    where the mean runs over the incoming edges of **all** edge sets together, and ``w_e`` comes from the
    :class:`EdgeWeightNetwork` of the edge's set (one per edge type, method.md §2.3). Centres without edges
    get 0 before the batch norm. The residual connection is left to the caller.

    Parameters
    ----------
    tensor_product
        Module with ``irreps_in1``, ``irreps_out``, ``weight_numel`` and ``forward(x, filter, weights)``:
        a :class:`FastTensorProduct` or an e3nn ``FullyConnectedTensorProduct(...,
        shared_weights=False, internal_weights=False)``.
    edge_dims
        Edge-embedding width of each edge set, in the order the sets are passed to :meth:`forward`.
    centre_scalar_dim, neighbour_scalar_dim
        Widths of the node scalars fed to the weight networks (``centre_scalar_dim`` 0: none).
    dropout
        Dropout in the weight networks.
    batch_norm
        Whether to apply e3nn's equivariant batch norm to the output.
    """

    def __init__(
        self,
        tensor_product: nn.Module,
        edge_dims: Sequence[int],
        centre_scalar_dim: int,
        neighbour_scalar_dim: int,
        dropout: float,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.tensor_product = tensor_product
        self.irreps_in: o3.Irreps = tensor_product.irreps_in1
        self.irreps_out: o3.Irreps = tensor_product.irreps_out
        self.weight_networks = nn.ModuleList(
            EdgeWeightNetwork(
                dim, centre_scalar_dim, neighbour_scalar_dim, tensor_product.weight_numel, dropout
            )
            for dim in edge_dims
        )
        self.batch_norm = BatchNorm(self.irreps_out) if batch_norm else None

    def forward(
        self,
        neighbour_features: Tensor,
        neighbour_scalars: Tensor,
        centre_scalars: Tensor | None,
        edge_sets: Sequence[EdgeSet],
        num_centres: int,
    ) -> Tensor:
        """Aggregate messages onto ``num_centres`` centre nodes.

        Parameters
        ----------
        neighbour_features
            ``float[N_n, irreps_in.dim]``.
        neighbour_scalars, centre_scalars
            ``float[N_n, n]``, ``float[N_c, c]`` (or ``None``) inputs of the weight networks.
        edge_sets
            One :class:`EdgeSet` per weight network, in constructor order.
        num_centres
            ``N_c``.

        Returns
        -------
        Tensor
            ``float[N_c, irreps_out.dim]``.
        """
        if len(edge_sets) != len(self.weight_networks):
            raise ValueError(f"expected {len(self.weight_networks)} edge sets, got {len(edge_sets)}")
        total = neighbour_features.new_zeros(num_centres, self.irreps_out.dim)
        count = neighbour_features.new_zeros(num_centres)
        for edges, weight_network in zip(edge_sets, self.weight_networks, strict=True):
            weights = weight_network(edges, centre_scalars, neighbour_scalars)
            messages = self.tensor_product(neighbour_features[edges.neighbour], edges.filter, weights)
            total = total.index_add(0, edges.centre, messages)
            count = count.index_add(0, edges.centre, torch.ones_like(edges.centre, dtype=count.dtype))
        mean = total / count.clamp(min=1.0)[:, None]
        return mean if self.batch_norm is None else self.batch_norm(mean)
