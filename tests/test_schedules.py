"""Noise schedules and diffusion-time sampling."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from discodock.geometry.schedules import GeometricSchedule, NoiseSchedule, sample_times


def test_default_schedule_is_the_released_one() -> None:
    schedule = NoiseSchedule()
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(schedule.tr.sigma(ends), torch.tensor([0.1, 19.0], dtype=torch.float64))
    torch.testing.assert_close(schedule.rot.sigma(ends), torch.tensor([0.03, 1.55], dtype=torch.float64))
    torch.testing.assert_close(schedule.tor.sigma(ends), torch.tensor([0.03, 3.14], dtype=torch.float64))


def test_sigma_is_geometric_and_g_squared_is_the_variance_rate() -> None:
    schedule = GeometricSchedule(0.1, 19.0)
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64, requires_grad=True)
    sigma = schedule.sigma(t)
    # Geometric: σ(t) = σ_min^(1−t) σ_max^t, checked against the product form.
    torch.testing.assert_close(sigma, 0.1 ** (1 - t.detach()) * 19.0 ** t.detach())
    (rate,) = torch.autograd.grad((sigma**2).sum(), t)
    torch.testing.assert_close(schedule.diffusion_coefficient(t.detach()) ** 2, rate)
    assert sigma.dtype == torch.float64


def test_invalid_schedule_is_refused() -> None:
    with pytest.raises(ValueError):
        GeometricSchedule(1.0, 0.5)


@pytest.mark.parametrize(("alpha", "beta"), [(2, 1), (1, 1), (3.0, 2.0)])
def test_sample_times_follow_the_beta_distribution(alpha: float, beta: float) -> None:
    generator = torch.Generator().manual_seed(0)
    times = sample_times(20_000, alpha, beta, generator=generator, dtype=torch.float64)
    assert times.shape == (20_000,) and times.dtype == torch.float64
    assert bool(((times >= 0) & (times <= 1)).all())
    statistic = stats.kstest(times.numpy(), stats.beta(alpha, beta).cdf).statistic
    assert statistic < 0.015
    # Beta(2, 1) has E[t] = 2/3; a uniform sampler (the code default) would fail this test.
    if (alpha, beta) == (2, 1):
        assert math.isclose(float(times.mean()), 2 / 3, abs_tol=0.01)


def test_sample_times_is_reproducible_and_refuses_non_integer_parameters() -> None:
    first = sample_times(100, generator=torch.Generator().manual_seed(5))
    second = sample_times(100, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(first, second)
    with pytest.raises(ValueError):
        sample_times(10, alpha=1.5)
