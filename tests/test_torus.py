"""The wrapped normal on the circle, checked against a direct sum over 201 images as in the original."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from discodock.geometry.torus import (
    torus_sample,
    torus_score,
    torus_score_second_moment,
    wrapped_normal_log_density,
)


def direct_density(x: np.ndarray | float, sigma: float) -> np.ndarray:
    """``p_σ(x)`` as the plain sum over images ``k = −100..100`` (the original code's truncation)."""
    k = np.arange(-100, 101)
    images = np.asarray(x, dtype=np.float64)[..., None] + 2 * np.pi * k
    return np.exp(-(images**2) / (2 * sigma**2)).sum(-1) / (sigma * np.sqrt(2 * np.pi))


@pytest.mark.parametrize("sigma", [0.03, 0.3, 1.0, 3.14])
def test_log_density_is_the_normalised_wrapped_sum(sigma: float) -> None:
    x = np.linspace(-np.pi, np.pi, 101)
    found = wrapped_normal_log_density(torch.from_numpy(x), torch.tensor(sigma, dtype=torch.float64))
    expected = np.log(np.maximum(direct_density(x, sigma), 1e-300))
    finite = expected > -600  # the direct sum underflows far in the tail at small σ
    np.testing.assert_allclose(found.numpy()[finite], expected[finite], rtol=1e-10)
    total, _ = quad(lambda value: direct_density(value, sigma), -np.pi, np.pi, points=[0.0], limit=200)
    assert total == pytest.approx(1.0, rel=1e-8)


@pytest.mark.parametrize("sigma", [0.03, 0.3, 1.0, 3.14])
def test_score_is_the_derivative_of_the_log_density(sigma: float) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torus_sample(torch.full((300,), sigma, dtype=torch.float64), generator)
    score = torus_score(x, torch.tensor(sigma, dtype=torch.float64)).numpy()
    step = 1e-6 * sigma
    values = x.numpy()
    derivative = (
        np.log(direct_density(values + step, sigma)) - np.log(direct_density(values - step, sigma))
    ) / (2 * step)
    np.testing.assert_allclose(score, derivative, rtol=1e-5, atol=1e-6 / sigma)


def test_score_is_odd_periodic_and_finite_in_float32() -> None:
    x = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64)
    sigma = torch.tensor(0.7, dtype=torch.float64)
    torch.testing.assert_close(torus_score(-x, sigma), -torus_score(x, sigma))
    torch.testing.assert_close(torus_score(x + 4 * math.pi, sigma), torus_score(x, sigma))
    # Far from the mode at the smallest σ: no overflow or 0/0 in single precision.
    tail = torus_score(torch.tensor([3.1, -3.1, 3.14159, 50.0]), torch.tensor(0.03))
    assert bool(torch.isfinite(tail).all())
    assert float(tail[2]) == pytest.approx(
        float(torus_score(torch.tensor(3.14159 - 2 * math.pi), torch.tensor(0.03)))
    )


@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.25, 0.5, 1.0, 2.0, 3.14])
def test_score_second_moment_matches_an_independent_quadrature(sigma: float) -> None:
    def integrand(value: float) -> float:
        step = 1e-6 * sigma
        derivative = (
            np.log(direct_density(value + step, sigma)) - np.log(direct_density(value - step, sigma))
        ) / (2 * step)
        return float(derivative**2 * direct_density(value, sigma))

    limit = min(np.pi, 12 * sigma)  # beyond 12σ the integrand is below 1e-30
    expected, _ = quad(integrand, -limit, limit, points=[0.0], limit=400, epsrel=1e-9)
    found = float(torus_score_second_moment(torch.tensor([sigma], dtype=torch.float64)))
    assert found == pytest.approx(expected, rel=3e-4)


def test_score_second_moment_limits() -> None:
    small = torch.tensor([1e-3, 0.03, 0.1], dtype=torch.float64)
    torch.testing.assert_close(torus_score_second_moment(small), 1 / small**2)
    moments = torus_score_second_moment(torch.linspace(0.05, 3.14, 50))
    assert moments.dtype == torch.float32
    assert bool((moments[1:] < moments[:-1]).all())  # a wider kernel has a flatter score


def test_samples_are_unwrapped_gaussians() -> None:
    sigma = torch.full((20_000,), 3.0, dtype=torch.float64)
    samples = torus_sample(sigma, torch.Generator().manual_seed(1))
    assert float(samples.abs().max()) > math.pi  # no wrapping
    assert float(samples.mean()) == pytest.approx(0.0, abs=0.1)
    assert float(samples.std()) == pytest.approx(3.0, rel=0.02)
