"""discodock: protein-ligand docking with discrete-latent-conditioned diffusion."""

from discodock.errors import InputError

__all__ = ["InputError"]
__version__ = "0.1.0"
