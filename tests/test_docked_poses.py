"""The stored docked poses (:mod:`discodock.data.docked_poses`): layout, files and shards."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from discodock.data.cache import COUNT_COLUMNS, ComplexCache
from discodock.data.docked_poses import DockedPoses
from discodock.errors import InputError

SAMPLES = 3


def poses_of(cache: ComplexCache) -> DockedPoses:
    """Docked poses whose coordinates encode (complex, sample, atom): ``x = 1000 c + 10 s + a``."""
    atoms = cache.counts[:, COUNT_COLUMNS.index("atoms")]
    rows = []
    for c, count in enumerate(atoms.tolist()):
        for s in range(2 * SAMPLES):
            code = 1000.0 * c + 10.0 * s + torch.arange(count, dtype=torch.float32)
            rows.append(torch.stack([code, torch.zeros(count), torch.zeros(count)], dim=1))
    pockets = torch.tensor([[1.0, 2.0, 3.0, 25.0 + c] for c in range(len(cache))])
    confidences = torch.arange(len(cache) * 2 * SAMPLES, dtype=torch.float32).view(len(cache), -1)
    return DockedPoses(list(cache.names), atoms.clone(), SAMPLES, 20, torch.cat(rows), pockets, confidences)


def test_pose_rows_pick_each_graphs_atoms_and_crops_mark_blind_samples(cache: ComplexCache) -> None:
    docked = poses_of(cache)
    complexes, samples = torch.tensor([1, 0, 1]), torch.tensor([4, 0, 2])
    picked = docked.poses[docked.pose_rows(complexes, samples), 0]
    atoms = docked.atoms
    expected = [
        1000.0 * c + 10.0 * s + a
        for c, s in zip([1, 0, 1], [4, 0, 2], strict=True)
        for a in range(int(atoms[c]))
    ]
    assert picked.tolist() == expected
    crops = docked.crops(complexes, samples)
    assert crops[0].tolist() == [1.0, 2.0, 3.0, 26.0]  # sample 4 ≥ S: pocket
    assert crops[1, 3] == math.inf and crops[2, 3] == math.inf  # samples 0 and 2 < S: blind


def test_shards_join_in_cache_order_with_rounded_poses(cache: ComplexCache, tmp_path: Path) -> None:
    docked = poses_of(cache)
    for c in range(len(cache)):  # one file per complex, written in reverse order
        part = cache.subset([c])
        poses_of(part).save(tmp_path / f"shard-{len(cache) - c}.pt")
    joined = DockedPoses.for_cache(sorted(tmp_path.glob("shard-*.pt")), cache)
    assert joined.names == cache.names and joined.samples == SAMPLES and joined.steps == 20
    assert torch.equal(joined.atoms, docked.atoms)
    torch.testing.assert_close(joined.poses, docked.poses % 1000.0, atol=0.5, rtol=1e-3)  # float16 on disk
    assert torch.equal(joined.confidences, docked.confidences % len(joined.confidences[0]))


def test_files_that_do_not_fit_the_cache_are_named(cache: ComplexCache, tmp_path: Path) -> None:
    first = tmp_path / "first.pt"
    poses_of(cache.subset([0])).save(first)
    with pytest.raises(
        InputError, match=rf"first\.pt: no docked poses of 1 complexes of the cache, e.g. {cache.names[1]}"
    ):
        DockedPoses.for_cache([first], cache)
    other = tmp_path / "other.pt"
    shifted = poses_of(cache.subset([1]))
    DockedPoses(
        shifted.names, shifted.atoms, SAMPLES + 1, 20, shifted.poses, shifted.pockets, shifted.confidences
    ).save(other)
    with pytest.raises(InputError, match=r"other\.pt: has 4 samples of 20 steps, the first file 3 of 20"):
        DockedPoses.for_cache([first, other], cache)
    (tmp_path / "junk.pt").write_text("not a tensor file")
    with pytest.raises(InputError, match=r"junk\.pt: not a docked-poses file"):
        DockedPoses.read(tmp_path / "junk.pt")
    with pytest.raises(InputError, match=r"missing\.pt: docked-poses file not found"):
        DockedPoses.read(tmp_path / "missing.pt")
