"""Docking new complexes: the Python API (:class:`DockingModel`), output files and the batch runner."""

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
