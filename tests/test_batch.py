from __future__ import annotations

import numpy as np
import torch

from discodock.data.batch import collate, copied_rows
from discodock.data.cache import ComplexCache
from discodock.data.complex import ComplexData


def test_collate_copies_reproduce_each_complex(
    example_complexes: list[ComplexData], example_cache: ComplexCache
) -> None:
    order = [2, 0, 3]
    copies = 3
    batch = collate(example_cache, order, copies=copies)
    assert batch.num_graphs == len(order) * copies
    assert batch.complex_index.tolist() == [i for i in order for _ in range(copies)]
    for graph, i in enumerate(batch.complex_index.tolist()):
        source = example_complexes[i]
        atoms = torch.nonzero(batch.atom_graph == graph).flatten()
        first_atom = int(atoms[0])
        np.testing.assert_array_equal(batch.atom_features[atoms].numpy(), source.atom_features)
        np.testing.assert_array_equal(batch.matched_pos[atoms].numpy(), source.matched_pos)
        np.testing.assert_array_equal(batch.ligand_pos[atoms].numpy(), source.matched_pos)
        residues = batch.residue_graph == graph
        np.testing.assert_array_equal(batch.residue_pos[residues].numpy(), source.residue_pos)
        # bonds and torsions point at this graph's own atoms, with the source's local numbering
        bonds = batch.bond_index[:, atoms.min() <= batch.bond_index[0]]
        bonds = bonds[:, bonds[0] <= atoms.max()]
        np.testing.assert_array_equal(bonds.numpy() - first_atom, source.bond_index)
        torsions = torch.nonzero(batch.torsions.graph == graph).flatten()
        np.testing.assert_array_equal(
            batch.torsions.edges[torsions].numpy() - first_atom, source.torsion_edges
        )
        assert batch.torsions.rank[torsions].tolist() == list(range(source.num_torsions))
        mask = np.zeros_like(source.mask_rotate)
        moving = torch.isin(batch.torsions.moving_torsion, torsions)
        mask[
            (batch.torsions.moving_torsion[moving] - int(torsions.min())).numpy(),
            (batch.torsions.moving_atom[moving] - first_atom).numpy(),
        ] = True
        np.testing.assert_array_equal(mask, source.mask_rotate)
    np.testing.assert_allclose(
        batch.center[::copies].numpy(), np.stack([example_complexes[i].center for i in order])
    )


def test_receptor_edges_stay_within_their_graph(example_cache: ComplexCache) -> None:
    batch = collate(example_cache, [0, 1], copies=2)
    centre, neighbour = batch.receptor_edges
    assert torch.equal(batch.residue_graph[centre], batch.residue_graph[neighbour])
    assert not torch.any(centre == neighbour)
    in_degree = torch.bincount(centre, minlength=batch.residue_pos.shape[0])
    assert int(in_degree.max()) <= 24 and int(in_degree.min()) >= 1


def test_pockets_keep_the_residues_crop_receptor_keeps(
    example_complexes: list[ComplexData], example_cache: ComplexCache
) -> None:
    source = example_complexes[1]
    centre = source.crystal_pos.mean(axis=0)
    pockets = torch.tensor([[*centre, 12.0], [*centre, float("inf")]], dtype=torch.float32)
    batch = collate(example_cache, [1], copies=2, pockets=pockets)
    within = np.linalg.norm(source.residue_pos - centre, axis=1) <= 12.0
    assert 0 < within.sum() < len(within)
    np.testing.assert_array_equal(
        batch.residue_pos[batch.residue_graph == 0].numpy(), source.residue_pos[within]
    )
    np.testing.assert_array_equal(batch.residue_pos[batch.residue_graph == 1].numpy(), source.residue_pos)
    centre_node, neighbour = batch.receptor_edges
    assert torch.equal(batch.residue_graph[centre_node], batch.residue_graph[neighbour])


def test_copied_rows_lay_out_one_copy_nodes_as_the_pose_copies_of_the_same_crops(
    example_cache: ComplexCache,
) -> None:
    order, copies = [1, 3], 3
    centres = torch.stack(
        [example_cache.fields["crystal_pos"][example_cache.offsets("atoms")[i]] for i in order]
    )
    pockets = torch.cat([centres, torch.tensor([[10.0], [float("inf")]])], dim=1)
    single = collate(example_cache, order, pockets=pockets)
    copied = collate(example_cache, order, copies, pockets=pockets.repeat_interleave(copies, dim=0))
    copy_of = torch.arange(len(order)).repeat_interleave(copies)
    residues = copied_rows(single.residue_graph, single.num_graphs, copy_of)
    atoms = copied_rows(single.atom_graph, single.num_graphs, copy_of)
    assert torch.equal(single.residue_pos[residues], copied.residue_pos)
    assert torch.equal(single.residue_graph[residues], copied.residue_graph // copies)
    assert torch.equal(single.matched_pos[atoms], copied.matched_pos)
    assert len(single.residue_pos) < len(example_cache.fields["residue_pos"])  # the first crop bites
