"""Docking new complexes: the Python API (:class:`DockingModel`), output files and the batch runner.

The names below are imported from :mod:`discodock.inference.docking` on first use (module ``__getattr__``,
PEP 562), so that :mod:`discodock.inference.networks` can be imported where RDKit is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from discodock.inference.docking import (
        DEFAULT_CHECKPOINT,
        TEMPERATURE_PRESETS,
        DockedPose,
        DockingJob,
        DockingModel,
        DockingResult,
        SamplingOptions,
        TokenTarget,
        as_ligand,
        ligand_centroid,
    )

__all__ = [
    "DEFAULT_CHECKPOINT",
    "TEMPERATURE_PRESETS",
    "DockedPose",
    "DockingJob",
    "DockingModel",
    "DockingResult",
    "SamplingOptions",
    "TokenTarget",
    "as_ligand",
    "ligand_centroid",
]


def __getattr__(name: str) -> Any:
    """Import the names of :data:`__all__` from :mod:`discodock.inference.docking` lazily."""
    if name in __all__:
        from discodock.inference import docking

        return getattr(docking, name)
    raise AttributeError(f"module 'discodock.inference' has no attribute {name!r}")
