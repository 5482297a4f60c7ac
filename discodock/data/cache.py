"""A compact, single-file store of many featurized complexes.

:class:`ComplexCache` keeps every per-residue, per-atom, per-bond and per-torsion array of all its
complexes **concatenated** (ragged storage, as PyTorch Geometric's in-memory datasets do), plus one row
of counts per complex. That makes three things cheap:

* the file: one xz-compressed ``torch.save`` of a few tensors in compact dtypes (``uint8`` features,
  ``int16`` local indices, ``float16`` local-frame vectors), loaded in about a second;
* moving the whole data set to the GPU once (:meth:`ComplexCache.to`);
* reading it where RDKit is not installed (the GPU machine): this module imports only torch and numpy;
* building a training or sampling batch of any complexes, in any number of copies, with a handful of
  tensor gathers on the device (:func:`discodock.data.batch.collate`), with no Python work per complex.

Counts per complex (columns of ``counts``): residues ``R``, atoms ``N``, directed bonds ``2E``,
torsions ``T`` and moving-atom pairs ``P`` (the sparse form of ``mask_rotate``).
"""

from __future__ import annotations

import dataclasses
import io
import lzma
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from discodock.errors import InputError

if TYPE_CHECKING:  # featurization needs RDKit; reading a cache (e.g. on the GPU machine) must not
    from discodock.data.complex import ComplexData

CACHE_FORMAT_VERSION = 1
CACHE_COMPRESSION_PRESET = 3
"""xz preset of :meth:`ComplexCache.save` (higher presets gain 2–3 % at half the speed)."""
XZ_MAGIC = b"\xfd7zXZ\x00"
"""First bytes of an xz stream: a compressed cache file."""
COUNT_COLUMNS = ("residues", "atoms", "bonds", "torsions", "moving")

# field name -> (count column it is ragged over, dtype on disk, dtype in memory)
_RAGGED_FIELDS: dict[str, tuple[str, torch.dtype, torch.dtype]] = {
    "residue_types": ("residues", torch.uint8, torch.long),
    "residue_pos": ("residues", torch.float32, torch.float32),
    "residue_frame": ("residues", torch.float16, torch.float32),
    "atom_features": ("atoms", torch.uint8, torch.long),
    "conformer_pos": ("atoms", torch.float32, torch.float32),
    "crystal_pos": ("atoms", torch.float32, torch.float32),
    "matched_pos": ("atoms", torch.float32, torch.float32),
    "bond_index": ("bonds", torch.int16, torch.long),
    "bond_types": ("bonds", torch.uint8, torch.long),
    "torsion_edges": ("torsions", torch.int16, torch.long),
    "moving_torsion": ("moving", torch.int16, torch.long),
    "moving_atom": ("moving", torch.int16, torch.long),
}
_OPTIONAL_FIELDS = ("crystal_pos", "matched_pos")


def _ragged_arrays(complex_data: ComplexData) -> dict[str, np.ndarray | None]:
    """The ragged arrays of one complex, each with the ragged axis first."""
    moving_torsion, moving_atom = np.nonzero(complex_data.mask_rotate)
    return {
        "residue_types": complex_data.residue_types,
        "residue_pos": complex_data.residue_pos,
        "residue_frame": complex_data.residue_frame,
        "atom_features": complex_data.atom_features,
        "conformer_pos": complex_data.conformer_pos,
        "crystal_pos": complex_data.crystal_pos,
        "matched_pos": complex_data.matched_pos,
        "bond_index": complex_data.bond_index.T,
        "bond_types": complex_data.bond_types,
        "torsion_edges": complex_data.torsion_edges,
        "moving_torsion": moving_torsion,
        "moving_atom": moving_atom,
    }


@dataclass
class ComplexCache:
    """Many complexes in ragged, concatenated tensors.

    Attributes
    ----------
    names, smiles
        One entry per complex.
    counts
        ``int64[C, 5]``: residues, atoms, directed bonds, torsions, moving pairs of each complex.
    center
        ``float32[C, 3]``: frame origin of each complex (input coordinates).
    matching_rmsd
        ``float32[C]``: torsion-fit RMSD of each complex (``nan`` without a crystal pose).
    fields
        Ragged tensors keyed by name (see ``_RAGGED_FIELDS``); local indices (bond ends, torsion atoms,
        moving atoms) count from 0 within each complex.
    failures
        ``(name, reason)`` of complexes that could not be prepared, kept for reports.
    """

    names: list[str]
    smiles: list[str]
    counts: torch.Tensor
    center: torch.Tensor
    matching_rmsd: torch.Tensor
    fields: dict[str, torch.Tensor]
    failures: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def device(self) -> torch.device:
        return self.counts.device

    @property
    def has_crystal_pose(self) -> bool:
        return "crystal_pos" in self.fields

    def offsets(self, column: str) -> torch.Tensor:
        """``int64[C]``: start of each complex's rows in the ragged tensors over ``column``."""
        counts = self.counts[:, COUNT_COLUMNS.index(column)]
        return torch.cumsum(counts, 0) - counts

    def to(self, device: torch.device | str) -> ComplexCache:
        """A copy with every tensor on ``device``."""
        return ComplexCache(
            names=self.names,
            smiles=self.smiles,
            counts=self.counts.to(device),
            center=self.center.to(device),
            matching_rmsd=self.matching_rmsd.to(device),
            fields={key: value.to(device) for key, value in self.fields.items()},
            failures=self.failures,
        )

    def subset(self, indices: Sequence[int]) -> ComplexCache:
        """A new cache holding the complexes ``indices`` (in that order)."""
        index = torch.as_tensor(list(indices), dtype=torch.long, device=self.device)
        fields = {}
        for key, value in self.fields.items():
            column = _RAGGED_FIELDS[key][0]
            rows, _, _ = ragged_rows(self.offsets(column), self.counts[:, COUNT_COLUMNS.index(column)], index)
            fields[key] = value[rows]
        return ComplexCache(
            names=[self.names[i] for i in index.tolist()],
            smiles=[self.smiles[i] for i in index.tolist()],
            counts=self.counts[index],
            center=self.center[index],
            matching_rmsd=self.matching_rmsd[index],
            fields=fields,
            failures=self.failures,
        )

    def cropped(self, centers: torch.Tensor, radii: torch.Tensor) -> ComplexCache:
        """A copy whose receptors keep only the residues near a centre (pocket mode).

        Residue ``r`` of complex ``c`` stays when ``‖x_r − centers[c]‖ ≤ radii[c]`` (``x_r`` its C-alpha,
        in the complex's frame): the crop of :func:`~discodock.data.batch.collate`'s ``pockets``, fixed
        in a cache (e.g. to sample in pocket mode with
        :meth:`~discodock.inference.networks.DockingNetworks.sample`).

        Parameters
        ----------
        centers
            ``float[C, 3]``: centre of each complex's crop, in its frame (Å).
        radii
            ``float[C]``: radius of each crop (Å; ``inf`` keeps the whole receptor).
        """
        residue_counts = self.counts[:, COUNT_COLUMNS.index("residues")]
        residue_complex = torch.repeat_interleave(torch.arange(len(self), device=self.device), residue_counts)
        centers, radii = centers.to(self.device), radii.to(self.device)
        offset = self.fields["residue_pos"] - centers[residue_complex]
        keep = offset.norm(dim=1) <= radii[residue_complex]
        counts = self.counts.clone()
        counts[:, COUNT_COLUMNS.index("residues")] = torch.bincount(
            residue_complex[keep], minlength=len(self)
        )
        fields = {
            key: value[keep] if _RAGGED_FIELDS[key][0] == "residues" else value
            for key, value in self.fields.items()
        }
        return dataclasses.replace(self, counts=counts, fields=fields)

    @classmethod
    def from_complexes(
        cls, complexes: Sequence[ComplexData], failures: Sequence[tuple[str, str]] = ()
    ) -> ComplexCache:
        """Concatenate featurized complexes.

        Optional poses (crystal, matched) are stored only when every complex has them.
        """
        if not complexes:
            raise ValueError("cannot build a cache from zero complexes")
        arrays = [_ragged_arrays(c) for c in complexes]
        fields: dict[str, torch.Tensor] = {}
        for key, (_, _, memory_dtype) in _RAGGED_FIELDS.items():
            parts = [a[key] for a in arrays]
            if any(p is None for p in parts):
                if key in _OPTIONAL_FIELDS:
                    continue
                raise ValueError(f"field {key} missing for some complexes")
            fields[key] = torch.as_tensor(np.concatenate(parts, axis=0)).to(memory_dtype)
        counts = torch.tensor(
            [
                [c.num_residues, c.num_atoms, c.bond_index.shape[1], c.num_torsions, len(a["moving_atom"])]
                for c, a in zip(complexes, arrays, strict=True)
            ],
            dtype=torch.long,
        )
        return cls(
            names=[c.name for c in complexes],
            smiles=[c.smiles for c in complexes],
            counts=counts,
            center=torch.as_tensor(np.stack([c.center for c in complexes])).float(),
            matching_rmsd=torch.tensor([c.matching_rmsd for c in complexes], dtype=torch.float32),
            fields=fields,
            failures=list(failures),
        )

    def payload(self, exact: bool = False) -> dict[str, object]:
        """The cache as plain tensors, lists and dicts on the CPU (what :meth:`save` writes).

        Parameters
        ----------
        exact
            Keep floating fields in their memory dtype (``float32``) instead of the compact ``float16`` of
            the local frames, so that :meth:`from_payload` gives back exactly the same values.
        """
        fields = {}
        for key, value in self.fields.items():
            _, disk_dtype, memory_dtype = _RAGGED_FIELDS[key]
            fields[key] = value.cpu().to(
                memory_dtype if exact and memory_dtype.is_floating_point else disk_dtype
            )
        return {
            "version": CACHE_FORMAT_VERSION,
            "names": self.names,
            "smiles": self.smiles,
            "counts": self.counts.cpu().to(torch.int32),
            "center": self.center.cpu(),
            "matching_rmsd": self.matching_rmsd.cpu(),
            "fields": fields,
            "failures": self.failures,
        }

    @classmethod
    def from_payload(cls, payload: object, source: str | Path) -> ComplexCache:
        """The cache of a :meth:`payload` (read from ``source``, named in errors), on the CPU.

        Raises
        ------
        InputError
            If ``payload`` is not a cache payload of this format version.
        """
        if not isinstance(payload, dict) or payload.get("version") != CACHE_FORMAT_VERSION:
            raise InputError(source, f"not a discodock cache of format version {CACHE_FORMAT_VERSION}")
        return cls(
            names=list(payload["names"]),
            smiles=list(payload["smiles"]),
            counts=payload["counts"].long(),
            center=payload["center"].float(),
            matching_rmsd=payload["matching_rmsd"].float(),
            fields={k: v.to(_RAGGED_FIELDS[k][2]) for k, v in payload["fields"].items()},
            failures=[tuple(f) for f in payload["failures"]],
        )

    def save(self, path: str | Path) -> None:
        """Write the cache atomically (temporary file, then rename) in compact dtypes, xz-compressed.

        The compression (about 20 % smaller for the training set) is what lets the cache travel to a GPU
        machine together with the code and the committed checkpoints; reading it back costs under a second.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(self.payload(), buffer)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_bytes(lzma.compress(buffer.getvalue(), preset=CACHE_COMPRESSION_PRESET))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> ComplexCache:
        """Read a cache written by :meth:`save`, with tensors in compute dtypes on ``device``."""
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "cache file not found")
        try:
            data = path.read_bytes()
            if data.startswith(XZ_MAGIC):  # caches written before compression are plain torch files
                data = lzma.decompress(data)
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as error:  # torch and lzma raise many types for a corrupt file
            raise InputError(path, f"not a discodock cache file ({type(error).__name__})") from None
        return cls.from_payload(payload, path).to(device)


def ragged_rows(
    offsets: torch.Tensor, counts: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of the ragged segments ``index`` refers to, concatenated in that order.

    Parameters
    ----------
    offsets, counts
        ``int64[C]``: start and length of every segment.
    index
        ``int64[B]``: segments to take; repeats give copies.

    Returns
    -------
    rows
        ``int64[S]`` with ``S = counts[index].sum()``: row numbers into the ragged tensor.
    segment
        ``int64[S]``: position in ``index`` (0..B−1) each row belongs to.
    local
        ``int64[S]``: position of each row within its segment.
    """
    lengths = counts[index]
    segment = torch.repeat_interleave(torch.arange(index.numel(), device=index.device), lengths)
    starts_in_output = torch.cumsum(lengths, 0) - lengths
    local = torch.arange(segment.numel(), device=index.device) - starts_in_output[segment]
    rows = offsets[index][segment] + local
    return rows, segment, local
