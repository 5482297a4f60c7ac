"""Rotations and the IGSO(3) kernel, checked against scipy and an independent closed form.

The independent reference is the Poisson-resummed form of the code's series (method.md §1.4): with
``n = 2l + 1`` the series is a theta function, and

    f_ε(ω) ∝ Σ_k (−1)^k (ω − 2πk) exp(−(ω − 2πk)² / (4ε²)) / sin(ω/2),

which shares no code or numerics with the tabulated sum over ``l``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.integrate import cumulative_trapezoid
from scipy.spatial.transform import Rotation

from discodock.geometry.so3 import (
    axis_angle_to_matrix,
    igso3_sample,
    igso3_score,
    igso3_score_norm,
    matrix_to_axis_angle,
    random_rotation_matrices,
)


def closed_form_series(omega: np.ndarray, eps: float, exponent_scale: float = 1.0) -> np.ndarray:
    """``f_ε(ω)`` up to a constant; ``exponent_scale = 0.5`` gives the usual ``l(l+1)ε²/2`` convention."""
    variance = 2 * exponent_scale * eps**2  # exp(-l(l+1)·c·ε²) ↔ Gaussian images of variance 2cε²
    k = np.arange(-10, 11)[:, None]
    image = omega[None, :] - 2 * np.pi * k
    total = ((-1.0) ** k * image * np.exp(-(image**2) / (2 * variance))).sum(0)
    return total / np.sin(omega / 2)


def snapped(eps: float) -> float:
    """The ε of method.md's grid (1000 log-spaced values in [0.01, 2]) nearest to ``eps`` in log scale."""
    grid = np.logspace(np.log10(0.01), np.log10(2.0), 1000)
    return float(grid[np.abs(np.log(grid) - np.log(eps)).argmin()])


def closed_form_angle_cdf(eps: float, exponent_scale: float = 1.0):
    """CDF of the angle density ``(1 − cos ω) f_ε(ω)`` on ``[0, π]``, normalised numerically."""
    omega = np.linspace(1e-6, np.pi, 50_001)
    density = (1 - np.cos(omega)) * closed_form_series(omega, eps, exponent_scale)
    cdf = cumulative_trapezoid(density, omega, initial=0.0)
    return lambda x: np.interp(x, omega, cdf / cdf[-1])


def test_axis_angle_round_trip_including_near_zero_and_pi() -> None:
    generator = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(
        torch.randn(600, 3, generator=generator, dtype=torch.float64), dim=-1
    )
    angle = torch.cat(
        [
            torch.rand(400, generator=generator, dtype=torch.float64) * math.pi,
            torch.full((100,), 1e-9, dtype=torch.float64),
            torch.full((100,), math.pi - 1e-7, dtype=torch.float64),
        ]
    )
    rotvec = axis * angle[:, None]
    matrix = axis_angle_to_matrix(rotvec)
    torch.testing.assert_close(matrix, torch.from_numpy(Rotation.from_rotvec(rotvec.numpy()).as_matrix()))
    torch.testing.assert_close(matrix_to_axis_angle(matrix), rotvec, atol=1e-7, rtol=0)
    # Exactly π: the axis is defined up to sign, so compare the rotations.
    half_turn = axis[:5] * math.pi
    recovered = matrix_to_axis_angle(axis_angle_to_matrix(half_turn))
    torch.testing.assert_close(axis_angle_to_matrix(recovered), axis_angle_to_matrix(half_turn))
    torch.testing.assert_close(recovered.norm(dim=-1), torch.full((5,), math.pi, dtype=torch.float64))
    # Zero rotation.
    torch.testing.assert_close(
        matrix_to_axis_angle(torch.eye(3, dtype=torch.float64)), torch.zeros(3, dtype=torch.float64)
    )


def test_random_rotations_are_haar_uniform() -> None:
    rotations = random_rotation_matrices(
        20_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    identity = torch.eye(3, dtype=torch.float64).expand_as(rotations)
    torch.testing.assert_close(rotations @ rotations.transpose(-1, -2), identity)
    torch.testing.assert_close(torch.linalg.det(rotations), torch.ones(20_000, dtype=torch.float64))
    # Haar angle density (1 − cos ω)/π, CDF (ω − sin ω)/π.
    angle = matrix_to_axis_angle(rotations).norm(dim=-1).numpy()
    assert stats.kstest(angle, lambda w: (w - np.sin(w)) / np.pi).statistic < 0.015


@pytest.mark.parametrize("eps", [0.1, 0.5, 1.2])
def test_igso3_angles_follow_the_code_convention(eps: float) -> None:
    samples = igso3_sample(torch.full((8000,), eps, dtype=torch.float64), torch.Generator().manual_seed(2))
    angle = samples.norm(dim=-1).numpy()
    assert stats.kstest(angle, closed_form_angle_cdf(eps)).statistic < 0.02
    # The usual ½ convention is a clearly different distribution, which this test would catch.
    assert stats.kstest(angle, closed_form_angle_cdf(eps, exponent_scale=0.5)).statistic > 0.1


def test_igso3_axes_are_uniform_and_sampling_is_reproducible() -> None:
    eps = torch.full((8000,), 0.7, dtype=torch.float64)
    samples = igso3_sample(eps, torch.Generator().manual_seed(3))
    torch.testing.assert_close(samples, igso3_sample(eps, torch.Generator().manual_seed(3)))
    axis = torch.nn.functional.normalize(samples, dim=-1)
    # Uniform on the sphere: each coordinate is U(−1, 1).
    for column in axis.T.numpy():
        assert stats.kstest(column, stats.uniform(-1, 2).cdf).statistic < 0.02


@pytest.mark.parametrize("eps", [0.03, 0.05, 0.1])
def test_small_eps_rotation_vectors_have_variance_two_eps_squared(eps: float) -> None:
    samples = igso3_sample(torch.full((20_000,), eps, dtype=torch.float64), torch.Generator().manual_seed(4))
    ratio = (samples**2).mean() / (2 * eps**2)
    assert abs(float(ratio) - 1) < 0.03


@pytest.mark.parametrize("eps", [0.05, 0.3, 1.0, 1.55])
def test_igso3_score_is_the_derivative_of_the_log_series(eps: float) -> None:
    rotvec = igso3_sample(torch.full((200,), eps, dtype=torch.float64), torch.Generator().manual_seed(5))
    score = igso3_score(rotvec, torch.full((200,), eps, dtype=torch.float64))
    omega = rotvec.norm(dim=-1).numpy()
    step, table_eps = 1e-5, snapped(eps)
    derivative = (
        np.log(closed_form_series(omega + step, table_eps))
        - np.log(closed_form_series(omega - step, table_eps))
    ) / (2 * step)
    expected = derivative[:, None] * rotvec.numpy() / omega[:, None]
    np.testing.assert_allclose(score.numpy(), expected, rtol=2e-3, atol=2e-3 * np.abs(derivative).max())
    # The score points back towards the identity.
    assert bool(((score * rotvec).sum(-1) < 0).all())


@pytest.mark.parametrize("eps", [0.03, 0.2, 0.8, 1.55])
def test_igso3_score_norm_matches_an_independent_quadrature(eps: float) -> None:
    omega = np.linspace(0, np.pi, 2001)[1:]
    table_eps = snapped(eps)
    series = closed_form_series(omega, table_eps)
    density = (1 - np.cos(omega)) * series
    useful = density > 1e-200  # the closed form underflows to 0 far in the tail at small ε
    step = 1e-6
    score = (
        np.log(closed_form_series(omega[useful] + step, table_eps))
        - np.log(closed_form_series(omega[useful] - step, table_eps))
    ) / (2 * step)
    expected = np.sqrt((score**2 * density[useful]).sum() / density.sum() / np.pi)
    found = float(igso3_score_norm(torch.tensor([eps], dtype=torch.float64)))
    assert found == pytest.approx(expected, rel=1e-4)


def test_eps_snaps_to_the_grid_ends() -> None:
    values = igso3_score_norm(torch.tensor([1e-4, 0.01, 2.0, 10.0]))
    assert values[0] == values[1] and values[2] == values[3]
    assert values.dtype == torch.float32
