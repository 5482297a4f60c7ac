"""Poses docked by trained networks, sampled once, on which the confidence model trains and is validated.

DiffDock trains its confidence model on poses its score model docked (method.md §2.7): the ranking has to
tell apart the poses the sampler actually produces, not only noised crystal poses. Docking is the costly
part (20 score-network passes per pose), so the poses are sampled once
(:func:`~discodock.inference.dock_cache.dock_cache`, ``discodock dock-cache``) and stored:

* ``S`` poses per complex in **blind** mode (whole receptor, translation prior on the protein centre);
* ``S`` poses in **pocket** mode (receptor cropped to a training pocket, prior on its centre).

The confidence stage reads them (``train.docked_poses``, ``train.val_docked_poses``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from discodock.data.batch import WHOLE_RECEPTOR
from discodock.data.cache import COUNT_COLUMNS, ComplexCache, ragged_rows
from discodock.errors import InputError

DOCKED_POSES_FORMAT = 1
MODES = ("blind", "pocket")
"""The two sampling modes of every complex, in the order of its poses."""


@dataclass(frozen=True)
class DockedPoses:
    """``S`` blind and ``S`` pocket poses of each of ``C`` complexes, docked by trained networks.

    Sample ``s < S`` of a complex is blind, sample ``S + s`` its pocket pose ``s``.

    Attributes
    ----------
    names
        ``C`` complex names (those of the cache that was docked).
    atoms
        ``int64[C]``: ligand atoms ``A_c``.
    samples
        ``S``, poses per complex and mode.
    steps
        Reverse-diffusion steps they were sampled with.
    poses
        ``float32[Σ_c 2 S A_c, 3]``: complex-major, then sample, in each complex's frame (Å).
    pockets
        ``float32[C, 4]``: the pocket-mode crop of each complex, centre (frame, Å) and radius.
    confidences
        ``float32[C, 2 S]``: logits of the docking networks' own confidence model (``nan`` without one),
        the ranking to beat.
    """

    names: list[str]
    atoms: torch.Tensor
    samples: int
    steps: int
    poses: torch.Tensor
    pockets: torch.Tensor
    confidences: torch.Tensor

    def __len__(self) -> int:
        return len(self.names)

    @property
    def poses_per_complex(self) -> int:
        """``2 S``."""
        return len(MODES) * self.samples

    def to(self, device: torch.device | str) -> DockedPoses:
        """A copy with every tensor on ``device``."""
        return replace(
            self,
            atoms=self.atoms.to(device),
            poses=self.poses.to(device),
            pockets=self.pockets.to(device),
            confidences=self.confidences.to(device),
        )

    def pose_rows(self, complex_index: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """``int64[Σ_b A_b]``: rows of :attr:`poses` of the graphs ``(complex_index[b], sample[b])``."""
        atoms = self.atoms
        starts = torch.cumsum(atoms * self.poses_per_complex, 0) - atoms * self.poses_per_complex
        graph_starts = starts[complex_index] + sample * atoms[complex_index]
        rows, _, _ = ragged_rows(
            graph_starts, atoms[complex_index], torch.arange(len(complex_index), device=atoms.device)
        )
        return rows

    def crops(self, complex_index: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """``float32[B, 4]``: the receptor crop each graph was docked with (radius ``inf``: blind)."""
        crops = self.pockets[complex_index].clone()
        blind = sample < self.samples
        crops[blind] = crops.new_tensor(WHOLE_RECEPTOR)
        return crops

    def save(self, path: str | Path) -> None:
        """Write a ``.pt`` file (poses in float16: a millimetre-scale rounding)."""
        record = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        record["poses"] = self.poses.half()
        record["format"] = DOCKED_POSES_FORMAT
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(record, path)

    @classmethod
    def read(cls, path: str | Path) -> DockedPoses:
        """Read one file of :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "docked-poses file not found")
        try:
            record = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise InputError(path, f"not a docked-poses file ({error})") from None
        if not isinstance(record, dict) or record.get("format") != DOCKED_POSES_FORMAT:
            raise InputError(path, f"not a docked-poses file of format {DOCKED_POSES_FORMAT}")
        record["poses"] = record["poses"].float()
        return cls(**{field.name: record[field.name] for field in dataclasses.fields(cls)})

    @classmethod
    def for_cache(cls, paths: Sequence[str | Path], cache: ComplexCache) -> DockedPoses:
        """The docked poses of every complex of ``cache``, in its order, from one or more files (shards).

        Raises
        ------
        InputError
            A file is unreadable, the files disagree on samples or steps, or a complex of the cache is
            missing or has another number of ligand atoms.
        """
        parts = [cls.read(path) for path in paths]
        if not parts:
            raise ValueError("no docked-poses files given")
        samples, steps = parts[0].samples, parts[0].steps
        for path, part in zip(paths, parts, strict=True):
            if (part.samples, part.steps) != (samples, steps):
                raise InputError(
                    path,
                    f"has {part.samples} samples of {part.steps} steps, the first file {samples} of {steps}",
                )
        where = {name: (p, c) for p, part in enumerate(parts) for c, name in enumerate(part.names)}
        missing = [name for name in cache.names if name not in where]
        if missing:
            raise InputError(
                paths[0], f"no docked poses of {len(missing)} complexes of the cache, e.g. {missing[0]}"
            )
        cache_atoms = cache.counts[:, COUNT_COLUMNS.index("atoms")].cpu()
        poses, pockets, confidences = [], [], []
        for c, name in enumerate(cache.names):
            p, row = where[name]
            part = parts[p]
            if int(part.atoms[row]) != int(cache_atoms[c]):
                raise InputError(
                    paths[p], f"{name} has {int(part.atoms[row])} atoms, the cache {int(cache_atoms[c])}"
                )
            sample = torch.arange(part.poses_per_complex)
            poses.append(part.poses[part.pose_rows(torch.full_like(sample, row), sample)])
            pockets.append(part.pockets[row])
            confidences.append(part.confidences[row])
        return cls(
            list(cache.names),
            cache_atoms.clone(),
            samples,
            steps,
            torch.cat(poses),
            torch.stack(pockets),
            torch.stack(confidences),
        )
