"""Noise schedules of the three pose components and diffusion-time sampling (method.md §1.3, §1.5).

One scalar time ``t ∈ [0, 1]`` is shared by translation, rotation and torsions. Each component ``c``
has a geometric noise scale and the diffusion coefficient of the variance-exploding SDE with zero
drift,

.. math::

    σ_c(t) = σ_{c,\\min}^{1-t} σ_{c,\\max}^{t}, \\qquad
    g_c(t) = σ_c(t) \\sqrt{2 \\ln(σ_{c,\\max} / σ_{c,\\min})}, \\quad g_c^2 = \\frac{dσ_c^2}{dt}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class GeometricSchedule:
    """Geometric noise scale ``σ(t) = σ_min^(1−t) σ_max^t`` of one pose component.

    Attributes
    ----------
    sigma_min
        Noise scale at ``t = 0``.
    sigma_max
        Noise scale at ``t = 1``.
    """

    sigma_min: float
    sigma_max: float

    def __post_init__(self) -> None:
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")

    @property
    def log_ratio(self) -> float:
        """``ln(σ_max / σ_min)``."""
        return math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Noise scale ``σ(t) = σ_min exp(t ln(σ_max/σ_min))``; same shape, dtype and device as ``t``."""
        return self.sigma_min * torch.exp(t * self.log_ratio)

    def diffusion_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        """``g(t) = σ(t) sqrt(2 ln(σ_max/σ_min))``, so that ``g² = dσ²/dt``; same shape as ``t``."""
        return self.sigma(t) * math.sqrt(2.0 * self.log_ratio)


@dataclass(frozen=True)
class NoiseSchedule:
    """Noise schedules of translation (Å), rotation (IGSO(3) ε) and torsions (rad).

    Defaults are the released DiffDock-S / DisCo-DiffDock-S values (method.md §1.3, §5).

    Attributes
    ----------
    tr, rot, tor
        :class:`GeometricSchedule` of each component; ``schedule.tr.sigma(t)`` is ``σ_tr(t)``.
    """

    tr: GeometricSchedule = field(default_factory=lambda: GeometricSchedule(0.1, 19.0))
    rot: GeometricSchedule = field(default_factory=lambda: GeometricSchedule(0.03, 1.55))
    tor: GeometricSchedule = field(default_factory=lambda: GeometricSchedule(0.03, 3.14))

    def displacement_sigma(self, t: torch.Tensor, gyration_radius: torch.Tensor) -> torch.Tensor:
        """``ρ``: typical size (Å) of an atom's rotation and torsion displacement at time ``t`` for a
        ligand of radius of gyration ``r_g`` (same shape as ``t``).

        ``ρ² = r_g² · m / (1 + m/2)`` with ``m = 4σ_rot(t)² + σ_tor(t)²``. A rotation vector of
        IGSO(3)(ε) has variance ``2ε²`` per axis, so it moves an atom at distance ``r`` from the centroid
        by ``E|δ × r|² = 4ε² r²``; a twist of ``σ_tor`` moves it by about ``σ_tor r``. At large noise the
        mean square displacement saturates at ``2 r_g²``, that of a uniformly random rotation
        (``tests/test_noising.py`` checks it against the measured one at several ``t``).
        """
        rotation, torsion = self.rot.sigma(t), self.tor.sigma(t)
        spread = 4 * rotation.square() + torsion.square()
        return gyration_radius * (spread / (1 + spread / 2)).sqrt()


def sample_times(
    n: int,
    alpha: float = 2.0,
    beta: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Draw ``n`` diffusion times ``t ~ Beta(α, β)`` on ``device``.

    Only positive integer ``α, β`` are supported (the released configs use Beta(2, 1), the code default
    Beta(1, 1)); then ``t`` is exactly the ``α``-th smallest of ``α + β − 1`` independent uniforms, which
    draws from ``generator`` on the device without any host round trip.

    Parameters
    ----------
    n
        Number of times.
    alpha, beta
        Beta parameters (positive integers, possibly given as floats such as ``2.0``).
    generator
        Optional ``torch.Generator`` living on ``device``.
    device, dtype
        Where and in which floating dtype to return the times.

    Returns
    -------
    torch.Tensor
        ``dtype[n]`` in ``[0, 1]``.
    """
    if not (float(alpha).is_integer() and float(beta).is_integer() and alpha >= 1 and beta >= 1):
        raise ValueError(f"sample_times supports positive integer Beta parameters, got ({alpha}, {beta})")
    rank, count = int(alpha), int(alpha) + int(beta) - 1
    uniforms = torch.rand(n, count, generator=generator, device=device, dtype=dtype)
    return torch.kthvalue(uniforms, rank, dim=1).values
