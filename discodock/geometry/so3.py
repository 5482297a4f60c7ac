"""Rotations: axis-angle and quaternion conversions, uniform rotations and the IGSO(3) kernel.

Conventions
-----------
* A rotation vector (axis-angle) ``r = ω n`` with unit axis ``n`` and angle ``ω = |r|`` is the rotation
  by ``ω`` about ``n`` (right-hand rule); its matrix is ``R = exp([r]_×)``.
* Quaternions are ``(w, x, y, z)`` with the scalar first.

IGSO(3) in the convention of the DiffDock / DisCo-DiffDock code (method.md §1.4, §6.5)
-------------------------------------------------------------------------------------------
The angle of a perturbation with scale ``ε`` has density on ``[0, π]``

.. math::

    p_ε(ω) = \\frac{1 - \\cos ω}{π} f_ε(ω), \\qquad
    f_ε(ω) = \\sum_{l=0}^{L-1} (2l+1)\\, e^{-l(l+1)ε^2} \\frac{\\sin((l+½)ω)}{\\sin(ω/2)},

with ``L = 2000`` and **no ½ in the exponent** (so small-ε rotation vectors have variance ``≈ 2ε²``
per axis). The axis is uniform on the sphere. Everything is read from tables computed once per
process on the grids of the code: ``ε`` on 1000 log-spaced values in ``[0.01, 2]`` and ``ω`` on 2000
values ``ω_j = (j+1)π/2000``:

* CDF ``F(ω_j) = (π/2000) Σ_{i≤j} p_ε(ω_i)`` (a Riemann sum, as in the code); angles are drawn by
  inverse-CDF linear interpolation, clamped to ``[ω_0, π]``;
* score ``s_ε(ω) = d/dω ln f_ε(ω)`` (relative to Haar measure, hence without the ``1 − cos ω`` factor);
  the score vector of a rotation vector ``r`` is ``s_ε(|r|) r/|r|``, ``s`` linearly interpolated in ω;
* normaliser ``N_rot(ε) = sqrt( Σ_j s_ε(ω_j)² p_ε(ω_j) / Σ_j p_ε(ω_j) / π )`` (the ``/π`` is the code's).

A query ``ε`` is snapped to the grid value nearest in ``log ε`` (clamped to the grid ends).

Deviations from the original code, all below any practical consequence:

* the ``l``-sum is truncated once ``l(l+1)ε² > 45`` (Gaussian factors below ``e^{-45} ≈ 3·10^{-20}``),
  which equals the 2000-term sum to float64 round-off and builds all tables in ~0.1 s, so nothing is
  cached on disk;
* round-off makes the series slightly negative (``> −2·10^{-11}``) far in the tail at small ε; the
  density is clamped at 0 there so that the CDF is monotone. The score table is meaningless at such
  angles (probability ``< 10^{-10}``), as in the original;
* the original computes the ε index as ``round(u · 1000)`` for the fractional log-position ``u``,
  which is not quite the nearest of the 1000 grid points; here it is ``round(u · 999)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

IGSO3_EPS_MIN = 0.01
IGSO3_EPS_MAX = 2.0
IGSO3_NUM_EPS = 1000
IGSO3_NUM_OMEGA = 2000
IGSO3_NUM_TERMS = 2000
# Series terms with l(l+1)ε² above this are dropped (their weight is below e^-45 ≈ 3e-20).
_SERIES_LOG_CUTOFF = 45.0
# ε values whose series are evaluated together in one matrix product.
_EPS_CHUNK = 50


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of rotation vectors (Rodrigues' formula).

    ``R = I + a K + b K²`` with ``K = [r]_×``, ``a = sin ω / ω`` and
    ``b = (1 − cos ω)/ω² = ½ (sin(ω/2)/(ω/2))²``; both coefficients are evaluated with ``torch.sinc``,
    so the map is exact and smooth at ``ω = 0``.

    Parameters
    ----------
    rotvec
        ``float[..., 3]`` rotation vectors.

    Returns
    -------
    torch.Tensor
        ``float[..., 3, 3]`` rotation matrices (same dtype and device).
    """
    angle = torch.linalg.vector_norm(rotvec, dim=-1)[..., None, None]
    zero = torch.zeros_like(rotvec[..., 0])
    x, y, z = rotvec.unbind(-1)
    cross = torch.stack(
        [
            torch.stack([zero, -z, y], dim=-1),
            torch.stack([z, zero, -x], dim=-1),
            torch.stack([-y, x, zero], dim=-1),
        ],
        dim=-2,
    )
    first = torch.sinc(angle / math.pi)
    second = 0.5 * torch.sinc(angle / (2.0 * math.pi)) ** 2
    identity = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return identity + first * cross + second * (cross @ cross)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of quaternions ``(w, x, y, z)`` (normalised first).

    Parameters
    ----------
    quaternion
        ``float[..., 4]``, any non-zero norm.

    Returns
    -------
    torch.Tensor
        ``float[..., 3, 3]``.
    """
    w, x, y, z = torch.nn.functional.normalize(quaternion, dim=-1).unbind(-1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(w, x, y, z)``, ``w ≥ 0``, of rotation matrices.

    Four algebraically equivalent candidates are formed, each dividing by one of
    ``4w, 4x, 4y, 4z`` (Shepperd's method); the one with the largest divisor is kept, which is
    well conditioned for every rotation including angles near ``π``.

    Parameters
    ----------
    matrix
        ``float[..., 3, 3]`` rotation matrices.

    Returns
    -------
    torch.Tensor
        ``float[..., 4]``.
    """
    m = matrix
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # 4·q_i² for i = w, x, y, z, from the diagonal.
    four_squares = torch.stack(
        [
            1 + trace,
            1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
        ],
        dim=-1,
    )
    # Off-diagonal combinations: 4wx, 4wy, 4wz, 4xy, 4xz, 4yz.
    wx = m[..., 2, 1] - m[..., 1, 2]
    wy = m[..., 0, 2] - m[..., 2, 0]
    wz = m[..., 1, 0] - m[..., 0, 1]
    xy = m[..., 0, 1] + m[..., 1, 0]
    xz = m[..., 0, 2] + m[..., 2, 0]
    yz = m[..., 1, 2] + m[..., 2, 1]
    # Candidate k is 4 q_k · q; dividing by 4|q_k| gives ±q.
    candidates = torch.stack(
        [
            torch.stack([four_squares[..., 0], wx, wy, wz], dim=-1),
            torch.stack([wx, four_squares[..., 1], xy, xz], dim=-1),
            torch.stack([wy, xy, four_squares[..., 2], yz], dim=-1),
            torch.stack([wz, xz, yz, four_squares[..., 3]], dim=-1),
        ],
        dim=-2,
    )
    best = four_squares.argmax(dim=-1)
    chosen = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quaternion = torch.nn.functional.normalize(chosen, dim=-1)
    return torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """Rotation vectors with angle in ``[0, π]`` of quaternions ``(w, x, y, z)``.

    ``r = 2 atan2(|v|, w) v/|v|`` after flipping to ``w ≥ 0``; for ``|v| → 0`` the factor
    ``2 atan2(|v|, w)/|v|`` is replaced by its expansion ``(2/w)(1 − |v|²/(3w²))``.

    Parameters
    ----------
    quaternion
        ``float[..., 4]``, any non-zero norm.

    Returns
    -------
    torch.Tensor
        ``float[..., 3]``.
    """
    quaternion = torch.nn.functional.normalize(quaternion, dim=-1)
    quaternion = torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)
    w, vector = quaternion[..., 0], quaternion[..., 1:]
    sine = torch.linalg.vector_norm(vector, dim=-1)
    small = sine < 1e-6
    safe_sine = torch.where(small, torch.ones_like(sine), sine)
    factor = torch.where(
        small,
        (2.0 / w) * (1.0 - sine**2 / (3.0 * w**2)),
        2.0 * torch.atan2(sine, w) / safe_sine,
    )
    return factor[..., None] * vector


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation vectors (angle in ``[0, π]``) of rotation matrices ``float[..., 3, 3] -> float[..., 3]``."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def random_quaternions(
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` Haar-uniform unit quaternions ``float[n, 4]``: normalised standard normal 4-vectors."""
    gaussian = torch.randn(n, 4, generator=generator, device=device, dtype=dtype)
    return torch.nn.functional.normalize(gaussian, dim=-1)


def random_rotation_matrices(
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` Haar-uniform rotation matrices ``float[n, 3, 3]``."""
    return quaternion_to_matrix(random_quaternions(n, generator=generator, device=device, dtype=dtype))


@dataclass(frozen=True)
class _IGSO3Tables:
    """IGSO(3) lookup tables on one device, float64.

    Attributes
    ----------
    omega
        ``[W]`` angle grid ``ω_j = (j+1)π/W``.
    cdf
        ``[E, W]`` Riemann-sum CDF of the angle density per ε.
    score
        ``[E, W]`` ``d/dω ln f_ε(ω)``.
    score_norm
        ``[E]`` normaliser ``N_rot(ε)``.
    """

    omega: torch.Tensor
    cdf: torch.Tensor
    score: torch.Tensor
    score_norm: torch.Tensor

    def to(self, device: torch.device) -> _IGSO3Tables:
        tables = (self.omega, self.cdf, self.score, self.score_norm)
        return _IGSO3Tables(*(table.to(device) for table in tables))


def _build_igso3_tables() -> _IGSO3Tables:
    """Evaluate the IGSO(3) series on the (ε, ω) grid and derive CDF, score and normaliser.

    With ``S(ω) = Σ_l c_l sin((l+½)ω)`` and ``C(ω) = Σ_l c_l (l+½) cos((l+½)ω)``,
    ``c_l = (2l+1) e^{-l(l+1)ε²}``, one has ``f = S / sin(ω/2)`` and
    ``d/dω ln f = C/S − ½ cot(ω/2)``. Both sums are matrix products ``[ε, l] @ [l, ω]``, done in chunks
    of ε whose ``l`` range is cut where the weights vanish.
    """
    dtype = torch.float64
    eps = torch.logspace(math.log10(IGSO3_EPS_MIN), math.log10(IGSO3_EPS_MAX), IGSO3_NUM_EPS, dtype=dtype)
    omega = torch.linspace(0.0, math.pi, IGSO3_NUM_OMEGA + 1, dtype=dtype)[1:]
    # Smallest l with l(l+1)ε² > cutoff, per ε (ε ascending, so the first of each chunk needs the most).
    num_terms = torch.ceil(torch.sqrt(_SERIES_LOG_CUTOFF / eps**2 + 0.25) - 0.5).long() + 1
    num_terms = num_terms.clamp(max=IGSO3_NUM_TERMS)
    degree = torch.arange(int(num_terms.max()), dtype=dtype)
    phase = (degree + 0.5)[:, None] * omega
    sine_basis = torch.sin(phase)
    cosine_basis = (degree + 0.5)[:, None] * torch.cos(phase)

    sine_sum = torch.empty(IGSO3_NUM_EPS, IGSO3_NUM_OMEGA, dtype=dtype)
    cosine_sum = torch.empty_like(sine_sum)
    for start in range(0, IGSO3_NUM_EPS, _EPS_CHUNK):
        stop = start + _EPS_CHUNK
        terms = int(num_terms[start])
        chunk_degree = degree[:terms]
        weights = (2 * chunk_degree + 1) * torch.exp(
            -chunk_degree * (chunk_degree + 1) * eps[start:stop, None] ** 2
        )
        sine_sum[start:stop] = weights @ sine_basis[:terms]
        cosine_sum[start:stop] = weights @ cosine_basis[:terms]

    half_angle = omega / 2
    series = sine_sum / torch.sin(half_angle)
    score = cosine_sum / sine_sum - 0.5 / torch.tan(half_angle)
    density = (series * (1 - torch.cos(omega)) / math.pi).clamp(min=0.0)
    cdf = torch.cumsum(density, dim=1) * (math.pi / IGSO3_NUM_OMEGA)
    score_norm = torch.sqrt((score**2 * density).sum(1) / density.sum(1) / math.pi)
    return _IGSO3Tables(omega=omega, cdf=cdf, score=score, score_norm=score_norm)


_TABLES_BY_DEVICE: dict[torch.device, _IGSO3Tables] = {}


def _igso3_tables(device: torch.device) -> _IGSO3Tables:
    """The process-wide IGSO(3) tables on ``device`` (built on the CPU once, copied once per device)."""
    cpu = torch.device("cpu")
    if cpu not in _TABLES_BY_DEVICE:
        _TABLES_BY_DEVICE[cpu] = _build_igso3_tables()
    if device not in _TABLES_BY_DEVICE:
        _TABLES_BY_DEVICE[device] = _TABLES_BY_DEVICE[cpu].to(device)
    return _TABLES_BY_DEVICE[device]


def _eps_index(eps: torch.Tensor) -> torch.Tensor:
    """Index ``int64[...]`` of the grid ε nearest in log scale to each ``eps`` (clamped to the grid)."""
    position = (torch.log(eps.double()) - math.log(IGSO3_EPS_MIN)) / math.log(IGSO3_EPS_MAX / IGSO3_EPS_MIN)
    return torch.round(position * (IGSO3_NUM_EPS - 1)).long().clamp(0, IGSO3_NUM_EPS - 1)


def igso3_sample(eps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw IGSO(3) rotation vectors ``ω n``, one per scale.

    ``ω = F_ε^{-1}(u)`` with ``u ~ U(0, 1)`` by linear interpolation of the tabulated CDF (values of
    ``u`` outside the table's range give ``ω_0`` or ``π``), and ``n`` a normalised standard normal
    3-vector.

    Parameters
    ----------
    eps
        ``float[B]`` IGSO(3) scales ``ε = σ_rot``.
    generator
        Optional ``torch.Generator`` on ``eps.device``.

    Returns
    -------
    torch.Tensor
        ``float[B, 3]`` rotation vectors, dtype and device of ``eps``.
    """
    tables = _igso3_tables(eps.device)
    uniform = torch.rand(eps.shape, generator=generator, device=eps.device, dtype=torch.float64)
    row_start = _eps_index(eps) * IGSO3_NUM_OMEGA
    cdf = tables.cdf.reshape(-1)
    # Binary search for the first grid index j with F(ω_j) ≥ u (j = W if none), batched over samples.
    first, beyond = torch.zeros_like(row_start), torch.full_like(row_start, IGSO3_NUM_OMEGA)
    for _ in range(IGSO3_NUM_OMEGA.bit_length()):
        middle = (first + beyond) // 2
        below = cdf[row_start + middle.clamp(max=IGSO3_NUM_OMEGA - 1)] < uniform
        first = torch.where(below, middle + 1, first)
        beyond = torch.where(below, beyond, middle)
    upper = first.clamp(1, IGSO3_NUM_OMEGA - 1)
    cdf_low, cdf_high = cdf[row_start + upper - 1], cdf[row_start + upper]
    fraction = ((uniform - cdf_low) / (cdf_high - cdf_low).clamp(min=1e-300)).clamp(0.0, 1.0)
    angle = tables.omega[upper - 1] + fraction * (math.pi / IGSO3_NUM_OMEGA)
    axis = torch.randn(*eps.shape, 3, generator=generator, device=eps.device, dtype=torch.float64)
    axis = torch.nn.functional.normalize(axis, dim=-1)
    return (angle[:, None] * axis).to(eps.dtype)


def igso3_score(rotvec: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Score of the IGSO(3) kernel at rotation vectors: ``s_ε(|r|) r/|r|`` (zero at ``r = 0``).

    ``s_ε`` is linearly interpolated on the ω grid (constant beyond its ends, like ``np.interp``).

    Parameters
    ----------
    rotvec
        ``float[B, 3]`` rotation vectors (angles in ``[0, π]``).
    eps
        ``float[B]`` scales.

    Returns
    -------
    torch.Tensor
        ``float[B, 3]``, dtype of ``rotvec``.
    """
    score = _igso3_tables(rotvec.device).score.reshape(-1)
    row_start = _eps_index(eps) * IGSO3_NUM_OMEGA
    angle = torch.linalg.vector_norm(rotvec.double(), dim=-1)
    # ω_j = (j+1)·step, so the fractional grid position of ω is ω/step − 1.
    position = (angle / (math.pi / IGSO3_NUM_OMEGA) - 1.0).clamp(0.0, IGSO3_NUM_OMEGA - 1.0)
    low = position.floor().long().clamp(max=IGSO3_NUM_OMEGA - 2)
    fraction = position - low
    score_low, score_high = score[row_start + low], score[row_start + low + 1]
    magnitude = score_low + fraction * (score_high - score_low)
    direction = rotvec.double() / angle.clamp(min=1e-300)[:, None]
    return (magnitude[:, None] * direction).to(rotvec.dtype)


def igso3_score_norm(eps: torch.Tensor) -> torch.Tensor:
    """Normaliser ``N_rot(ε)`` of the rotation score (table value at the nearest grid ε), ``float[B]``."""
    return _igso3_tables(eps.device).score_norm[_eps_index(eps)].to(eps.dtype)
