"""Tests of discodock.data.graphs against scipy's cKDTree on real receptor and ligand coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from scipy.spatial import cKDTree

from discodock.data.graphs import knn_graph, radius, radius_graph, receptor_graph
from discodock.data.protein import read_protein

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
COMPLEXES = {
    "1a0q": ("1a0q_protein.pdb.gz", "1a0q_ligand.sdf"),
    "6moa": ("6moa_protein.pdb.gz", "6moa_ligand.sdf"),
    "6k05": ("6k05_protein.pdbqt.gz", "6k05_ligand_from_ccd.sdf"),
}


@pytest.fixture(scope="module")
def structures() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(C-alpha positions, ligand heavy-atom positions) of each example complex, float64."""
    result = {}
    for name, (protein_file, ligand_file) in COMPLEXES.items():
        ca = read_protein(EXAMPLES / name / protein_file).ca
        ligand = Chem.MolFromMolFile(str(EXAMPLES / name / ligand_file))
        atoms = ligand.GetConformer().GetPositions()
        result[name] = (torch.tensor(ca, dtype=torch.float64), torch.tensor(atoms, dtype=torch.float64))
    return result


def edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.T.tolist()))


def kdtree_radius(x: torch.Tensor, y: torch.Tensor, r: float) -> set[tuple[int, int]]:
    neighbours = cKDTree(x.numpy()).query_ball_point(y.numpy(), r)
    return {(i, j) for i, row in enumerate(neighbours) for j in row}


def kdtree_nearest(x: torch.Tensor, y: torch.Tensor, k: int, r: float = np.inf) -> set[tuple[int, int]]:
    distances, indices = cKDTree(x.numpy()).query(y.numpy(), k=k, distance_upper_bound=r)
    queries, ranks = np.nonzero(np.isfinite(distances))
    return set(zip(queries.tolist(), indices[queries, ranks].tolist(), strict=True))


def batched(parts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Concatenated nodes, their graph index, and each graph's offset."""
    sizes = [len(part) for part in parts]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    batch = torch.repeat_interleave(torch.arange(len(parts)), torch.tensor(sizes))
    return torch.cat(parts), batch, offsets


@pytest.mark.parametrize("r", [6.0, 12.0, 30.0])
def test_radius_matches_kdtree(structures, r: float) -> None:
    ca, ligand = structures["1a0q"]
    edges = radius(ca, ligand, r)
    assert edges.dtype == torch.long
    assert edge_set(edges) == kdtree_radius(ca, ligand, r)
    assert len(edge_set(edges)) == edges.shape[1] > 0


def test_radius_graph_matches_kdtree_with_and_without_loops(structures) -> None:
    ca, _ = structures["6moa"]
    pairs = cKDTree(ca.numpy()).query_pairs(8.0)
    expected = {(i, j) for i, j in pairs} | {(j, i) for i, j in pairs}
    assert edge_set(radius_graph(ca, 8.0)) == expected
    loops = {(i, i) for i in range(len(ca))}
    assert edge_set(radius_graph(ca, 8.0, loop=True)) == expected | loops


def test_cap_keeps_the_nearest_neighbours(structures) -> None:
    ca, ligand = structures["1a0q"]
    edges = radius(ligand, ca, 8.0, max_num_neighbors=7)
    assert edge_set(edges) == kdtree_nearest(ligand, ca, 7, 8.0)
    counts = torch.bincount(edges[0], minlength=len(ca))
    within = torch.tensor([len(row) for row in cKDTree(ligand.numpy()).query_ball_point(ca.numpy(), 8.0)])
    assert torch.equal(counts, within.clamp(max=7))
    assert (within > 7).any() and ((within > 0) & (within < 7)).any()


def test_knn_graph_matches_kdtree(structures) -> None:
    _, ligand = structures["6k05"]
    expected = {(i, j) for i, j in kdtree_nearest(ligand, ligand, 5) if i != j}
    assert edge_set(knn_graph(ligand, 4)) == expected
    edges = knn_graph(ligand, 4)
    distances = (ligand[edges[0]] - ligand[edges[1]]).norm(dim=1).view(-1, 4)
    assert (distances[:, 1:] >= distances[:, :-1]).all()
    assert edge_set(knn_graph(ligand, 4, loop=True)) == kdtree_nearest(ligand, ligand, 4)


def test_knn_graph_returns_fewer_neighbours_in_small_graphs(structures) -> None:
    _, ligand = structures["6moa"]
    small = ligand[:3]
    pos, batch, _ = batched([small, ligand])
    edges = knn_graph(pos, 10, batch)
    degree = torch.bincount(edges[0], minlength=len(pos))
    assert degree[:3].tolist() == [2, 2, 2]
    assert (degree[3:] == 10).all()


def test_batched_results_equal_per_graph_results_with_offsets(structures) -> None:
    names = list(COMPLEXES)
    cas = [structures[name][0] for name in names]
    ligands = [structures[name][1] for name in names]
    x, batch_x, x_offsets = batched(cas)
    y, batch_y, y_offsets = batched(ligands)
    pairs = list(zip(cas, ligands, strict=True))
    cases = [
        (radius(x, y, 15.0, batch_x, batch_y), [radius(c, lig, 15.0) for c, lig in pairs]),
        (radius(x, y, 25.0, batch_x, batch_y, 9), [radius(c, lig, 25.0, None, None, 9) for c, lig in pairs]),
        (radius_graph(y, 5.0, batch_y), [radius_graph(lig, 5.0) for lig in ligands]),
        (knn_graph(x, 6, batch_x), [knn_graph(c, 6) for c in cas]),
        (receptor_graph(x, batch=batch_x), [receptor_graph(c) for c in cas]),
    ]
    for index, (together, separately) in enumerate(cases):
        row_offsets = y_offsets if index < 3 else x_offsets
        col_offsets = y_offsets if index == 2 else x_offsets
        expected = set()
        for graph, edges in enumerate(separately):
            expected |= edge_set(edges + torch.tensor([[row_offsets[graph]], [col_offsets[graph]]]))
        assert edge_set(together) == expected
    cross = radius(x, y, 1000.0, batch_x, batch_y)
    assert torch.equal(batch_y[cross[0]], batch_x[cross[1]])


def test_unsorted_batch_gives_the_same_graph(structures) -> None:
    ca_a, ca_b = structures["6moa"][0], structures["6k05"][0]
    pos, batch, _ = batched([ca_a, ca_b])
    permutation = torch.randperm(len(pos), generator=torch.Generator().manual_seed(0))
    inverse = torch.argsort(permutation)
    sorted_edges = receptor_graph(pos, batch=batch)
    shuffled_edges = receptor_graph(pos[permutation], batch=batch[permutation])
    assert edge_set(permutation[shuffled_edges]) == edge_set(sorted_edges)
    assert edge_set(inverse[sorted_edges]) == edge_set(shuffled_edges)


def test_per_graph_cutoff(structures) -> None:
    names = list(COMPLEXES)
    cutoffs = [6.0, 18.0, 40.0]
    x, batch_x, x_offsets = batched([structures[name][0] for name in names])
    y, batch_y, y_offsets = batched([structures[name][1] for name in names])
    edges = radius(x, y, torch.tensor(cutoffs), batch_x, batch_y)
    expected = set()
    for graph, (name, r) in enumerate(zip(names, cutoffs, strict=True)):
        ca, ligand = structures[name]
        expected |= {(i + y_offsets[graph], j + x_offsets[graph]) for i, j in kdtree_radius(ca, ligand, r)}
    assert edge_set(edges) == expected
    with pytest.raises(ValueError, match="one cutoff per graph"):
        radius(x, y, torch.tensor(cutoffs[:2]), batch_x, batch_y)


def test_tiny_chunks_give_identical_results(structures) -> None:
    x, batch_x, _ = batched([structures[name][0] for name in COMPLEXES])
    y, batch_y, _ = batched([structures[name][1] for name in COMPLEXES])
    calls = [
        lambda entries: radius(x, y, 20.0, batch_x, batch_y, max_distance_entries=entries),
        lambda entries: radius(x, y, 20.0, batch_x, batch_y, 5, max_distance_entries=entries),
        lambda entries: knn_graph(x, 8, batch_x, max_distance_entries=entries),
        lambda entries: receptor_graph(x, batch=batch_x, max_distance_entries=entries),
    ]
    for call in calls:
        reference = call(2**22)
        for entries in (1, 500):
            assert torch.equal(call(entries), reference)


def test_float32_agrees_with_kdtree_up_to_rounding_at_the_cutoff(structures) -> None:
    ca, ligand = structures["1a0q"]
    found = edge_set(radius(ca.float(), ligand.float(), 12.0))
    for i, j in found ^ kdtree_radius(ca, ligand, 12.0):
        assert abs(float((ligand[i] - ca[j]).norm()) - 12.0) < 1e-4


def test_empty_inputs() -> None:
    empty = torch.empty((0, 3))
    one = torch.zeros((1, 3))
    for edges in (
        radius(empty, one, 5.0),
        radius(one, empty, 5.0),
        radius_graph(empty, 5.0),
        knn_graph(empty, 3),
        knn_graph(one, 3),
        receptor_graph(empty),
        receptor_graph(one),
        radius(one, one, 5.0, max_num_neighbors=0),
    ):
        assert edges.shape == (2, 0) and edges.dtype == torch.long


def test_queries_of_a_graph_without_candidates_get_no_edges(structures) -> None:
    ca, ligand = structures["1a0q"]
    batch_x = torch.zeros(len(ca), dtype=torch.long)
    batch_y = torch.ones(len(ligand), dtype=torch.long)
    assert radius(ca, ligand, 1000.0, batch_x, batch_y).shape == (2, 0)


def test_receptor_graph_is_the_nearest_24_within_15_angstrom(structures) -> None:
    ca, _ = structures["1a0q"]
    edges = receptor_graph(ca)
    distances = torch.cdist(ca, ca).fill_diagonal_(np.inf)
    expected = set()
    for i, row in enumerate(distances):
        nearest = torch.argsort(row)[:24]
        expected |= {(i, int(j)) for j in nearest if row[j] <= 15.0}
    assert edge_set(edges) == expected
    degree = torch.bincount(edges[0], minlength=len(ca))
    assert degree.max() == 24 and degree.min() >= 1
    assert torch.equal(edges[0], torch.sort(edges[0]).values)


def test_receptor_residue_without_neighbours_joins_its_nearest(structures) -> None:
    ca, _ = structures["6moa"]
    r = 3.8  # consecutive C-alpha atoms are 3.80 ± 0.03 Å apart, so some residues have a neighbour, some none
    edges = receptor_graph(ca, radius=r)
    distances = torch.cdist(ca, ca).fill_diagonal_(np.inf)
    lonely = (distances > r).all(dim=1)
    assert lonely.any() and not lonely.all()
    expected = edge_set(torch.nonzero(distances <= r).T)
    expected |= {(i, int(distances[i].argmin())) for i in range(len(ca)) if lonely[i]}
    assert edge_set(edges) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_results_equal_cpu_results(structures) -> None:
    x, batch_x, _ = batched([structures[name][0].float() for name in COMPLEXES])
    y, batch_y, _ = batched([structures[name][1].float() for name in COMPLEXES])
    cutoffs = torch.tensor([6.0, 18.0, 40.0])
    device = torch.device("cuda")

    def graphs(on: torch.device) -> list[torch.Tensor]:
        xs, ys, bx, by = x.to(on), y.to(on), batch_x.to(on), batch_y.to(on)
        return [
            radius(xs, ys, cutoffs.to(on), bx, by),
            radius(xs, ys, 30.0, bx, by, 6, max_distance_entries=1000),
            radius_graph(ys, 5.0, by),
            knn_graph(xs, 8, bx),
            receptor_graph(xs, batch=bx),
        ]

    for on_cpu, on_cuda in zip(graphs(torch.device("cpu")), graphs(device), strict=True):
        assert on_cuda.device.type == "cuda"
        assert edge_set(on_cuda.cpu()) == edge_set(on_cpu)
