from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from discodock.data.batch import collate
from discodock.data.cache import COUNT_COLUMNS, XZ_MAGIC, ComplexCache, ragged_rows
from discodock.data.complex import ComplexData
from discodock.errors import InputError


def test_ragged_rows_matches_python_loop() -> None:
    counts = torch.tensor([3, 0, 2, 4])
    offsets = torch.cumsum(counts, 0) - counts
    index = torch.tensor([2, 0, 2, 1, 3])
    rows, segment, local = ragged_rows(offsets, counts, index)
    expected_rows, expected_segment, expected_local = [], [], []
    for position, i in enumerate(index.tolist()):
        for k in range(int(counts[i])):
            expected_rows.append(int(offsets[i]) + k)
            expected_segment.append(position)
            expected_local.append(k)
    assert rows.tolist() == expected_rows
    assert segment.tolist() == expected_segment
    assert local.tolist() == expected_local


def _assert_complex_stored(cache: ComplexCache, i: int, complex_data: ComplexData) -> None:
    """Row ``i`` of ``cache`` holds exactly ``complex_data``."""
    counts = dict(zip(COUNT_COLUMNS, cache.counts[i].tolist(), strict=True))

    def rows(key: str, column: str) -> np.ndarray:
        start = int(cache.offsets(column)[i])
        return cache.fields[key][start : start + counts[column]].cpu().numpy()

    assert cache.names[i] == complex_data.name
    assert cache.smiles[i] == complex_data.smiles
    np.testing.assert_array_equal(rows("residue_types", "residues"), complex_data.residue_types)
    np.testing.assert_array_equal(rows("residue_pos", "residues"), complex_data.residue_pos)
    # local frames are stored in float16: 1e-3 relative precision on ~1.5 Å vectors
    np.testing.assert_allclose(rows("residue_frame", "residues"), complex_data.residue_frame, atol=2e-3)
    np.testing.assert_array_equal(rows("atom_features", "atoms"), complex_data.atom_features)
    for key in ("conformer_pos", "crystal_pos", "matched_pos"):
        np.testing.assert_array_equal(rows(key, "atoms"), getattr(complex_data, key))
    np.testing.assert_array_equal(rows("bond_index", "bonds").T, complex_data.bond_index)
    np.testing.assert_array_equal(rows("bond_types", "bonds"), complex_data.bond_types)
    np.testing.assert_array_equal(rows("torsion_edges", "torsions"), complex_data.torsion_edges)
    mask = np.zeros_like(complex_data.mask_rotate)
    mask[rows("moving_torsion", "moving"), rows("moving_atom", "moving")] = True
    np.testing.assert_array_equal(mask, complex_data.mask_rotate)
    np.testing.assert_allclose(cache.center[i].numpy(), complex_data.center)


def test_save_load_round_trip(example_complexes: list[ComplexData], tmp_path: Path) -> None:
    cache = ComplexCache.from_complexes(example_complexes, failures=[("xxxx", "xxxx: broken")])
    path = tmp_path / "c.pt"
    cache.save(path)
    loaded = ComplexCache.load(path)
    assert loaded.failures == [("xxxx", "xxxx: broken")]
    assert loaded.has_crystal_pose
    for i, complex_data in enumerate(example_complexes):
        _assert_complex_stored(loaded, i, complex_data)


def test_saved_file_is_compressed_and_plain_torch_files_still_load(
    example_cache: ComplexCache, tmp_path: Path
) -> None:
    compressed, plain = tmp_path / "compressed.pt", tmp_path / "plain.pt"
    example_cache.save(compressed)
    torch.save(example_cache.payload(), plain)  # the format of caches written before compression
    assert compressed.read_bytes().startswith(XZ_MAGIC)
    assert compressed.stat().st_size < plain.stat().st_size
    first, second = ComplexCache.load(compressed), ComplexCache.load(plain)
    assert first.names == second.names
    for key, value in first.fields.items():
        assert torch.equal(value, second.fields[key])


def test_subset_keeps_complexes_whole(
    example_complexes: list[ComplexData], example_cache: ComplexCache
) -> None:
    subset = example_cache.subset([3, 1])
    assert len(subset) == 2
    _assert_complex_stored(subset, 0, example_complexes[3])
    _assert_complex_stored(subset, 1, example_complexes[1])


def test_load_rejects_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cache file not found"):
        ComplexCache.load(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a cache")
    with pytest.raises(InputError, match="not a discodock cache"):
        ComplexCache.load(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(InputError, match="format version"):
        ComplexCache.load(foreign)


def test_exact_payload_keeps_every_value_while_the_file_rounds_the_frames(
    example_cache: ComplexCache, tmp_path: Path
) -> None:
    exact = ComplexCache.from_payload(example_cache.payload(exact=True), "payload")
    for key, value in example_cache.fields.items():
        assert exact.fields[key].dtype == value.dtype and torch.equal(exact.fields[key], value), key
    assert exact.names == example_cache.names and torch.equal(exact.counts, example_cache.counts)
    example_cache.save(tmp_path / "c.pt")
    compact = ComplexCache.load(tmp_path / "c.pt")
    assert not torch.equal(compact.fields["residue_frame"], example_cache.fields["residue_frame"])  # float16
    with pytest.raises(InputError, match="payload: not a discodock cache of format version"):
        ComplexCache.from_payload({"version": 0}, "payload")


def test_cropped_cache_keeps_the_residues_that_collate_keeps_for_the_same_pockets(
    cache: ComplexCache,
) -> None:
    centers = torch.stack(
        [pos.mean(0) for pos in cache.fields["crystal_pos"].split(cache.counts[:, 1].tolist())]
    )
    radii = torch.tensor([12.0, math.inf])
    cropped = cache.cropped(centers, radii)
    pockets = torch.cat([centers, radii[:, None]], dim=1)
    index = torch.arange(len(cache))
    from_cache = collate(cropped, index)
    from_collate = collate(cache, index, pockets=pockets)
    for name in (
        "residue_pos",
        "residue_types",
        "residue_frame",
        "residue_graph",
        "receptor_edges",
        "ligand_pos",
    ):
        assert torch.equal(getattr(from_cache, name), getattr(from_collate, name)), name
    residues = cache.counts[:, COUNT_COLUMNS.index("residues")]
    kept = cropped.counts[:, COUNT_COLUMNS.index("residues")]
    assert 0 < kept[0] < residues[0] and kept[1] == residues[1]
    assert torch.equal(cropped.counts[:, 1:], cache.counts[:, 1:])
    assert torch.equal(from_collate.pockets, pockets) and from_cache.pockets is None
