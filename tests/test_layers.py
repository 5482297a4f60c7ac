"""Tests of the equivariant building blocks in :mod:`discodock.model.layers`."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from e3nn import o3

from discodock.model.layers import (
    EdgeSet,
    FastTensorProduct,
    GaussianSmearing,
    TensorProductConvolution,
    compile_tensor_products,
    hidden_irreps,
    scalar_part,
    scatter_mean,
    sinusoidal_time_embedding,
    spherical_harmonics_l1,
)

ALL_IRREPS = o3.Irreps("5x0e+3x1o+2x1e+4x0o")


def random_orthogonal(generator: torch.Generator, reflect: bool) -> torch.Tensor:
    """A random rotation, times −1 (an improper rotation) when ``reflect``."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator))
    rotation = q * torch.sign(torch.diagonal(r))
    rotation = rotation * torch.sign(torch.det(rotation))
    return -rotation if reflect else rotation


def test_scatter_mean_matches_loop_and_leaves_empty_segments_zero() -> None:
    values = torch.randn(7, 2, 3)
    index = torch.tensor([0, 3, 0, 3, 3, 1, 0])
    result = scatter_mean(values, index, num_segments=5)
    for segment in range(5):
        rows = values[index == segment]
        expected = rows.mean(0) if len(rows) else torch.zeros(2, 3)
        torch.testing.assert_close(result[segment], expected)


def test_time_embedding_is_sin_then_cos_of_scaled_time() -> None:
    t = torch.tensor([0.0, 0.25, 1.0])
    embedding = sinusoidal_time_embedding(t, dim=32, scale=1000.0)
    assert embedding.shape == (3, 32)
    torch.testing.assert_close(embedding[0], torch.cat([torch.zeros(16), torch.ones(16)]))
    # the first frequency is 1, the last 1/max_positions
    torch.testing.assert_close(embedding[1, 0], torch.sin(torch.tensor(250.0)))
    torch.testing.assert_close(embedding[2, 31], torch.cos(torch.tensor(1000.0 / 10_000.0)))


def test_gaussian_smearing_peaks_on_its_grid() -> None:
    smearing = GaussianSmearing(stop=5.0, num_gaussians=6)  # centres 0, 1, ..., 5
    values = smearing(torch.tensor([2.0, 2.5]))
    assert values.shape == (2, 6)
    assert values[0].argmax() == 2 and values[0, 2] == 1.0
    torch.testing.assert_close(values[0, 3], torch.tensor(math.exp(-0.5)))
    torch.testing.assert_close(values[1, 2], values[1, 3])


def test_spherical_harmonics_match_e3nn_and_survive_zero_vectors() -> None:
    vectors = torch.randn(10, 3)
    expected = o3.spherical_harmonics("0e+1o", vectors, normalize=True, normalization="component")
    torch.testing.assert_close(spherical_harmonics_l1(vectors), expected)
    torch.testing.assert_close(
        spherical_harmonics_l1(torch.zeros(1, 3)), torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    )


def test_hidden_irreps_grow_as_prefixes() -> None:
    sequence = [hidden_irreps(24, 6, depth) for depth in range(5)]
    assert [str(irreps) for irreps in sequence[2:]] == [
        "24x0e+6x1o+6x1e",
        "24x0e+6x1o+6x1e+24x0o",
        "24x0e+6x1o+6x1e+24x0o",
    ]
    for smaller, larger in itertools.pairwise(sequence):
        assert list(larger)[: len(smaller)] == list(smaller)


def test_scalar_part_takes_even_then_odd_scalars() -> None:
    features = torch.arange(ALL_IRREPS.dim, dtype=torch.float32)[None]
    scalars = scalar_part(features, ALL_IRREPS)
    expected = torch.cat([features[0, :5], features[0, -4:]])
    torch.testing.assert_close(scalars[0], expected)


def test_fast_tensor_product_weight_count_matches_diffdock_s() -> None:
    # 24x0e+6x1o+6x1e+24x0o → itself: fan-ins 30, 36, 36, 30 (method.md §2.5)
    irreps = hidden_irreps(24, 6, 3)
    assert FastTensorProduct(irreps, irreps).weight_numel == 30 * 24 + 36 * 6 + 36 * 6 + 30 * 24


@pytest.mark.parametrize("reflect", [False, True])
def test_fast_tensor_product_is_o3_equivariant(float64: None, reflect: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    tensor_product = FastTensorProduct(ALL_IRREPS, "3x0e+2x1o+4x1e+1x0o")
    features = torch.randn(20, ALL_IRREPS.dim, generator=generator)
    harmonics = spherical_harmonics_l1(torch.randn(20, 3, generator=generator))
    weights = torch.randn(20, tensor_product.weight_numel, generator=generator)
    rotation = random_orthogonal(generator, reflect)

    output = tensor_product(features, harmonics, weights)
    transformed = tensor_product(
        features @ ALL_IRREPS.D_from_matrix(rotation).T,
        harmonics @ tensor_product.irreps_in2.D_from_matrix(rotation).T,
        weights,
    )
    torch.testing.assert_close(transformed, output @ tensor_product.irreps_out.D_from_matrix(rotation).T)


def test_fast_tensor_product_paths() -> None:
    """1o ⊗ Y¹ → 0e is the dot product / √3 and → 1e the cross product / √2, times weight / √fan-in."""
    tensor_product = FastTensorProduct("1x1o", "1x0e+1x1e")
    vector, direction = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    harmonics = torch.cat([torch.ones(1, 1), direction], dim=1)
    # weights: 0e ← [v·Y¹] (fan-in 1), then 1e ← [v×Y¹] (fan-in 1)
    output = tensor_product(vector, harmonics, torch.tensor([[2.0, 3.0]]))
    expected_scalar = 2.0 * 3.0 / math.sqrt(3.0)
    expected_vector = 3.0 * torch.linalg.cross(vector, direction) / math.sqrt(2.0)
    torch.testing.assert_close(output, torch.cat([torch.tensor([[expected_scalar]]), expected_vector], dim=1))


def test_fast_tensor_product_rejects_higher_orders() -> None:
    with pytest.raises(ValueError, match="distinct irreps"):
        FastTensorProduct("2x0e+1x2e", "2x0e")


def _random_graph(generator: torch.Generator, num_nodes: int, num_edges: int) -> tuple[torch.Tensor, ...]:
    positions = torch.randn(num_nodes, 3, generator=generator) * 3
    centre = torch.randint(num_nodes, (num_edges,), generator=generator)
    neighbour = torch.randint(num_nodes, (num_edges,), generator=generator)
    return positions, centre, neighbour


def _convolve(
    convolution: TensorProductConvolution,
    features: torch.Tensor,
    positions: torch.Tensor,
    centre: torch.Tensor,
    neighbour: torch.Tensor,
    edge_features: torch.Tensor,
) -> torch.Tensor:
    harmonics = spherical_harmonics_l1(positions[neighbour] - positions[centre])
    half = len(centre) // 2
    edge_sets = [
        EdgeSet(centre[:half], neighbour[:half], edge_features[:half], harmonics[:half]),
        EdgeSet(centre[half:], neighbour[half:], edge_features[half:], harmonics[half:]),
    ]
    scalars = features[:, :5]
    return convolution(features, scalars, scalars, edge_sets, num_centres=len(features))


def test_convolution_averages_messages_over_all_edge_sets() -> None:
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    convolution = TensorProductConvolution(
        FastTensorProduct(ALL_IRREPS, ALL_IRREPS), [4, 4], 5, 5, dropout=0.0, batch_norm=False
    )
    positions, centre, neighbour = _random_graph(generator, num_nodes=6, num_edges=12)
    centre[centre == 5] = 0  # node 5 receives nothing
    features = torch.randn(6, ALL_IRREPS.dim, generator=generator)
    edge_features = torch.randn(12, 4, generator=generator)
    output = _convolve(convolution, features, positions, centre, neighbour, edge_features)

    harmonics = spherical_harmonics_l1(positions[neighbour] - positions[centre])
    messages = []
    for edge in range(12):
        network = convolution.weight_networks[0 if edge < 6 else 1]
        one = slice(edge, edge + 1)
        single = EdgeSet(centre[one], neighbour[one], edge_features[one], harmonics[one])
        weights = network(single, features[:, :5], features[:, :5])
        messages.append(convolution.tensor_product(features[neighbour[one]], harmonics[one], weights))
    messages = torch.cat(messages)
    for node in range(6):
        incoming = messages[centre == node]
        expected = incoming.mean(0) if len(incoming) else torch.zeros(ALL_IRREPS.dim)
        torch.testing.assert_close(output[node], expected)


def test_convolution_is_equivariant_and_permutation_equivariant(float64: None) -> None:
    generator = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    convolution = TensorProductConvolution(
        FastTensorProduct(ALL_IRREPS, ALL_IRREPS), [4, 4], 5, 5, dropout=0.0
    )
    convolution.eval()
    positions, centre, neighbour = _random_graph(generator, num_nodes=8, num_edges=30)
    features = torch.randn(8, ALL_IRREPS.dim, generator=generator)
    edge_features = torch.randn(30, 4, generator=generator)
    output = _convolve(convolution, features, positions, centre, neighbour, edge_features)

    rotation = random_orthogonal(generator, reflect=True)
    wigner = ALL_IRREPS.D_from_matrix(rotation)
    moved = _convolve(
        convolution, features @ wigner.T, positions @ rotation.T + 4.0, centre, neighbour, edge_features
    )
    torch.testing.assert_close(moved, output @ wigner.T)

    permutation = torch.randperm(8, generator=generator)
    inverse = torch.argsort(permutation)
    permuted = _convolve(
        convolution,
        features[permutation],
        positions[permutation],
        inverse[centre],
        inverse[neighbour],
        edge_features,
    )
    torch.testing.assert_close(permuted, output[permutation])


def test_compiled_tensor_products_give_the_eager_messages_and_gradients() -> None:
    """One dynamic-shape compilation serves edge sets of any size, with the eager values and gradients."""
    torch.manual_seed(0)
    convolution = TensorProductConvolution(FastTensorProduct(ALL_IRREPS, ALL_IRREPS), [6], 5, 5, 0.0)
    eager = FastTensorProduct(ALL_IRREPS, ALL_IRREPS)
    assert compile_tensor_products(convolution) == 1
    compiled = convolution.tensor_product
    for num_edges in (17, 40):
        features = torch.randn(num_edges, ALL_IRREPS.dim, requires_grad=True)
        harmonics = spherical_harmonics_l1(torch.randn(num_edges, 3))
        weights = torch.randn(num_edges, eager.weight_numel)
        expected = eager(features, harmonics, weights)
        (expected_gradient,) = torch.autograd.grad(expected.square().sum(), features)
        actual = compiled(features, harmonics, weights)
        (actual_gradient,) = torch.autograd.grad(actual.square().sum(), features)
        torch.testing.assert_close(actual, expected)
        torch.testing.assert_close(actual_gradient, expected_gradient)
