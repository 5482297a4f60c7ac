"""discodock: protein-ligand docking with discrete-latent-conditioned diffusion.

``from discodock import DockingModel`` gives the Python API (:mod:`discodock.inference`); it is imported
on first use, so that ``import discodock`` (e.g. for :class:`InputError`) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from discodock.errors import InputError

if TYPE_CHECKING:
    from discodock.inference.docking import DockingModel

__all__ = ["DockingModel", "InputError"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import :class:`DockingModel` lazily (module ``__getattr__``, PEP 562)."""
    if name == "DockingModel":
        from discodock.inference.docking import DockingModel

        return DockingModel
    raise AttributeError(f"module 'discodock' has no attribute {name!r}")
