"""Property tests of batched pose updates on real ligands from ``data/examples``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from scipy import stats
from scipy.spatial.transform import Rotation

from discodock.data.ligand import bond_graph
from discodock.data.torsions import rotatable_bonds
from discodock.geometry.pose import (
    TorsionIndex,
    align_to,
    apply_pose_updates,
    apply_torsion_updates,
    graph_mean,
    kabsch,
    randomize_poses,
)
from discodock.geometry.so3 import matrix_to_axis_angle

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
LIGAND_FILES = ("1a0q/1a0q_ligand.sdf", "6moa/6moa_ligand.sdf", "6k05/6k05_ligand_from_ccd.sdf")


class Ligand:
    """A crystal ligand (heavy atoms) with its bonds, angles, rotatable bonds and masks."""

    def __init__(self, relative_path: str) -> None:
        mol = Chem.MolFromMolFile(str(EXAMPLES / relative_path))
        self.pos = torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float64)
        edge_index, _ = bond_graph(mol)
        self.bonds = torch.as_tensor(edge_index[:, 0::2].T.copy())
        self.angles = torch.tensor(
            [
                (a.GetIdx(), center.GetIdx(), b.GetIdx())
                for center in mol.GetAtoms()
                for i, a in enumerate(center.GetNeighbors())
                for b in list(center.GetNeighbors())[i + 1 :]
            ]
        )
        self.torsion_edges, self.mask_rotate = rotatable_bonds(edge_index, mol.GetNumAtoms())
        neighbours = [[n.GetIdx() for n in atom.GetNeighbors()] for atom in mol.GetAtoms()]
        # One dihedral (a, u, v, b) per rotatable bond, with a on the fixed side and b on the moving side.
        self.dihedrals = torch.tensor(
            [
                (
                    next(n for n in neighbours[u] if n != v),
                    u,
                    v,
                    next(n for n in neighbours[v] if n != u),
                )
                for u, v in self.torsion_edges
            ]
        )

    @property
    def num_atoms(self) -> int:
        return self.pos.shape[0]

    @property
    def num_torsions(self) -> int:
        return self.torsion_edges.shape[0]

    def index(self) -> TorsionIndex:
        return TorsionIndex.from_ligands([self.torsion_edges], [self.mask_rotate], [0])


@pytest.fixture(scope="module")
def ligands() -> list[Ligand]:
    return [Ligand(path) for path in LIGAND_FILES]


def batch_of(ligands: list[Ligand], copies: int = 1) -> tuple[torch.Tensor, torch.Tensor, TorsionIndex]:
    """Concatenate ``copies`` of each ligand (ligand-major): positions, atom_graph, torsion index."""
    members = [ligand for ligand in ligands for _ in range(copies)]
    sizes = [ligand.num_atoms for ligand in members]
    offsets = np.cumsum([0, *sizes[:-1]])
    pos = torch.cat([ligand.pos for ligand in members])
    atom_graph = torch.repeat_interleave(torch.arange(len(members)), torch.tensor(sizes))
    torsions = TorsionIndex.from_ligands(
        [ligand.torsion_edges for ligand in members], [ligand.mask_rotate for ligand in members], offsets
    )
    return pos, atom_graph, torsions


def distances(pos: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], dim=-1)


def bond_angles(pos: torch.Tensor, triples: torch.Tensor) -> torch.Tensor:
    first = pos[triples[:, 0]] - pos[triples[:, 1]]
    second = pos[triples[:, 2]] - pos[triples[:, 1]]
    cosine = (first * second).sum(-1) / (first.norm(dim=-1) * second.norm(dim=-1))
    return torch.arccos(cosine.clamp(-1, 1))


def dihedral_angles(pos: torch.Tensor, quads: torch.Tensor) -> torch.Tensor:
    """Signed dihedral of (a, u, v, b) about u→v (IUPAC convention), in (−π, π]."""
    p0, p1, p2, p3 = (pos[quads[:, i]] for i in range(4))
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1_unit = b1 / b1.norm(dim=-1, keepdim=True)
    v = b0 - (b0 * b1_unit).sum(-1, keepdim=True) * b1_unit
    w = b2 - (b2 * b1_unit).sum(-1, keepdim=True) * b1_unit
    x = (v * w).sum(-1)
    y = (torch.linalg.cross(b1_unit, v) * w).sum(-1)
    return torch.atan2(y, x)


def assert_local_geometry_kept(
    moved: torch.Tensor, pos: torch.Tensor, ligands: list[Ligand], copies: int
) -> None:
    """Bond lengths and bond angles of every copy in a :func:`batch_of` layout are unchanged."""
    offset = 0
    for ligand in [ligand for ligand in ligands for _ in range(copies)]:
        before, after = pos[offset : offset + ligand.num_atoms], moved[offset : offset + ligand.num_atoms]
        torch.testing.assert_close(distances(after, ligand.bonds), distances(before, ligand.bonds))
        torch.testing.assert_close(bond_angles(after, ligand.angles), bond_angles(before, ligand.angles))
        offset += ligand.num_atoms


def wrap(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def sequential_reference(pos: torch.Tensor, ligand: Ligand, delta: torch.Tensor) -> torch.Tensor:
    """The original one-ligand loop: each bond in order, rotation matrix from scipy, about x_v."""
    pos = pos.numpy().copy()
    for k, (u, v) in enumerate(ligand.torsion_edges):
        axis = pos[u] - pos[v]
        rotation = Rotation.from_rotvec(axis / np.linalg.norm(axis) * float(delta[k])).as_matrix()
        moving = ligand.mask_rotate[k]
        pos[moving] = (pos[moving] - pos[v]) @ rotation.T + pos[v]
    return torch.from_numpy(pos)


def test_single_torsion_changes_exactly_its_dihedral(ligands: list[Ligand]) -> None:
    generator = torch.Generator().manual_seed(1)
    for ligand in ligands:
        index = ligand.index()
        before = dihedral_angles(ligand.pos, ligand.dihedrals)
        for k in range(ligand.num_torsions):
            angle = float(torch.rand(1, generator=generator, dtype=torch.float64)) * 6 - 3
            delta = torch.zeros(ligand.num_torsions, dtype=torch.float64)
            delta[k] = angle
            after = dihedral_angles(apply_torsion_updates(ligand.pos, index, delta), ligand.dihedrals)
            change = wrap(after - before)
            # Right-hand rule about x_u − x_v, i.e. about v→u: the IUPAC dihedral about u→v decreases.
            expected = wrap(torch.tensor(-angle, dtype=torch.float64))
            torch.testing.assert_close(change[k], expected)
            moving = torch.from_numpy(ligand.mask_rotate[k])
            quads = ligand.dihedrals
            shares_moved_atoms = moving[quads].any(1) & ~moving[quads].all(1)
            shares_moved_atoms[k] = True
            unaffected = change[~shares_moved_atoms]
            torch.testing.assert_close(unaffected, torch.zeros_like(unaffected))


def test_torsion_updates_keep_bond_lengths_and_angles(ligands: list[Ligand]) -> None:
    pos, atom_graph, torsions = batch_of(ligands, copies=3)
    generator = torch.Generator().manual_seed(2)
    delta = (torch.rand(torsions.num_torsions, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    delta_tr = torch.randn(atom_graph.max() + 1, 3, generator=generator, dtype=torch.float64) * 5
    delta_rot = torch.randn(atom_graph.max() + 1, 3, generator=generator, dtype=torch.float64)
    num_graphs = int(atom_graph.max()) + 1
    moved = apply_pose_updates(pos, atom_graph, num_graphs, delta_tr, delta_rot, delta, torsions)
    assert_local_geometry_kept(moved, pos, ligands, copies=3)


def test_batched_torsion_updates_equal_one_ligand_at_a_time(ligands: list[Ligand]) -> None:
    pos, _, torsions = batch_of(ligands, copies=2)
    generator = torch.Generator().manual_seed(3)
    delta = (torch.rand(torsions.num_torsions, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    batched = apply_torsion_updates(pos, torsions, delta)
    atom_offset, torsion_offset = 0, 0
    for ligand in ligands:
        for _ in range(2):
            local_delta = delta[torsion_offset : torsion_offset + ligand.num_torsions]
            rows = slice(atom_offset, atom_offset + ligand.num_atoms)
            torch.testing.assert_close(batched[rows], sequential_reference(ligand.pos, ligand, local_delta))
            atom_offset += ligand.num_atoms
            torsion_offset += ligand.num_torsions


def test_pose_update_then_inverse_returns_the_pose(ligands: list[Ligand]) -> None:
    generator = torch.Generator().manual_seed(4)
    for ligand in ligands:
        atom_graph = torch.zeros(ligand.num_atoms, dtype=torch.long)
        index = ligand.index()
        delta_tr = torch.randn(1, 3, generator=generator, dtype=torch.float64)
        delta_rot = torch.randn(1, 3, generator=generator, dtype=torch.float64)
        rigid = apply_pose_updates(ligand.pos, atom_graph, 1, delta_tr, delta_rot, None, None)
        back = apply_pose_updates(rigid, atom_graph, 1, -delta_tr, torch.zeros_like(delta_rot), None, None)
        back = apply_pose_updates(back, atom_graph, 1, torch.zeros_like(delta_tr), -delta_rot, None, None)
        torch.testing.assert_close(back, ligand.pos)
        for k in range(ligand.num_torsions):
            delta = torch.zeros(ligand.num_torsions, dtype=torch.float64)
            delta[k] = 2.5
            zero = torch.zeros(1, 3, dtype=torch.float64)
            twisted = apply_pose_updates(ligand.pos, atom_graph, 1, zero, zero, delta, index)
            restored = apply_pose_updates(twisted, atom_graph, 1, zero, zero, -delta, index)
            torch.testing.assert_close(restored, ligand.pos)


def test_rotation_and_torsion_keep_the_centroid(ligands: list[Ligand]) -> None:
    pos, atom_graph, torsions = batch_of(ligands)
    num_graphs = len(ligands)
    generator = torch.Generator().manual_seed(5)
    delta_rot = torch.randn(num_graphs, 3, generator=generator, dtype=torch.float64)
    delta_tor = torch.randn(torsions.num_torsions, generator=generator, dtype=torch.float64)
    zero = torch.zeros(num_graphs, 3, dtype=torch.float64)
    centroid = graph_mean(pos, atom_graph, num_graphs)
    rotated = apply_pose_updates(pos, atom_graph, num_graphs, zero, delta_rot, None, None)
    torch.testing.assert_close(graph_mean(rotated, atom_graph, num_graphs), centroid)
    twisted = apply_pose_updates(pos, atom_graph, num_graphs, zero, delta_rot, delta_tor, torsions)
    torch.testing.assert_close(graph_mean(twisted, atom_graph, num_graphs), centroid)
    # The torsion step is re-aligned onto the rigid pose: it is its own best superposition.
    rotation, translation = kabsch(twisted, rotated, atom_graph, num_graphs)
    torch.testing.assert_close(rotation, torch.eye(3, dtype=torch.float64).expand(num_graphs, 3, 3))
    torch.testing.assert_close(translation, torch.zeros_like(translation))


def test_kabsch_recovers_a_known_rigid_motion(ligands: list[Ligand]) -> None:
    pos, atom_graph, _ = batch_of(ligands)
    num_graphs = len(ligands)
    rotation = torch.from_numpy(Rotation.random(num_graphs, random_state=6).as_matrix())
    translation = torch.tensor([[1.0, -2.0, 3.0], [10.0, 0.0, 0.0], [0.0, -5.0, 7.0]], dtype=torch.float64)
    target = (rotation[atom_graph] @ pos[:, :, None])[:, :, 0] + translation[atom_graph]
    found_rotation, found_translation = kabsch(pos, target, atom_graph, num_graphs)
    torch.testing.assert_close(found_rotation, rotation)
    torch.testing.assert_close(found_translation, translation)
    torch.testing.assert_close(align_to(pos, target, atom_graph, num_graphs), target)
    # A mirror image is matched by a proper rotation, never by a reflection.
    mirrored = pos * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    proper, _ = kabsch(pos, mirrored, atom_graph, num_graphs)
    torch.testing.assert_close(torch.linalg.det(proper), torch.ones(num_graphs, dtype=torch.float64))


def test_randomized_poses_follow_the_prior(ligands: list[Ligand]) -> None:
    copies = 100
    pos, atom_graph, torsions = batch_of(ligands, copies=copies)
    num_graphs = len(ligands) * copies
    center = torch.tensor([5.0, -3.0, 2.0], dtype=torch.float64)

    def draw(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return randomize_poses(pos, atom_graph, num_graphs, torsions, center=center, generator=generator)

    first, again, other = draw(7), draw(7), draw(8)
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, other)
    assert_local_geometry_kept(first, pos, ligands, copies=copies)
    # Centroids ~ centre + N(0, 19² I).
    centroids = graph_mean(first, atom_graph, num_graphs)
    assert torch.allclose(centroids.mean(0), center, atol=4 * 19 / math.sqrt(num_graphs))
    assert 17.0 < float(centroids.std()) < 21.0
    # Every torsion is shifted by U(−π, π), so its dihedral is uniform.
    offset, shifts = 0, []
    for ligand in [ligand for ligand in ligands for _ in range(copies)]:
        rows = slice(offset, offset + ligand.num_atoms)
        shifts.append(
            wrap(
                dihedral_angles(first[rows], ligand.dihedrals) - dihedral_angles(pos[rows], ligand.dihedrals)
            )
        )
        offset += ligand.num_atoms
    assert stats.kstest(torch.cat(shifts).numpy(), stats.uniform(-math.pi, 2 * math.pi).cdf).statistic < 0.04
    # Orientations are Haar-uniform: the rotation angle of each copy has CDF (ω − sin ω)/π.
    rotation, _ = kabsch(
        pos - graph_mean(pos, atom_graph, num_graphs)[atom_graph], first, atom_graph, num_graphs
    )
    # (Haar R times the independent best rotation onto the twisted conformer is again Haar.)
    angle = matrix_to_axis_angle(rotation).norm(dim=-1).numpy()
    assert stats.kstest(angle, lambda w: (w - np.sin(w)) / np.pi).statistic < 0.1


def test_repeat_equals_building_the_copies(ligands: list[Ligand]) -> None:
    _, _, single = batch_of(ligands)
    _, _, built = batch_of(ligands * 4)
    repeated = single.repeat(4, sum(ligand.num_atoms for ligand in ligands), len(ligands))
    for name in ("edges", "graph", "rank", "moving_torsion", "moving_atom"):
        assert torch.equal(getattr(repeated, name), getattr(built, name)), name
    assert repeated.num_ranks == single.num_ranks == max(ligand.num_torsions for ligand in ligands)
