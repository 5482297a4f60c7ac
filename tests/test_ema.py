"""Exponential moving average of network weights with the DiffDock warm-up."""

from __future__ import annotations

import torch
from torch import nn

from discodock.training.ema import ExponentialMovingAverage


def small_network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def flat(network: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in network.parameters()])


def test_average_follows_the_warmed_up_recursion() -> None:
    network = small_network()
    ema = ExponentialMovingAverage(network, decay=0.999)
    expected = flat(network).clone()
    for n in range(1, 6):
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.add_(torch.randn_like(parameter))
        ema.update(network)
        decay = min(0.999, (1 + n) / (10 + n))
        expected = decay * expected + (1 - decay) * flat(network)
        assert ema.num_updates == n
        torch.testing.assert_close(flat(ema.averaged), expected)
    assert ema.current_decay() == (1 + 5) / (10 + 5)


def test_decay_reaches_its_asymptote() -> None:
    ema = ExponentialMovingAverage(small_network(), decay=0.9)
    ema.num_updates = 1000
    assert ema.current_decay() == 0.9


def test_average_of_constant_weights_converges_to_them() -> None:
    network = small_network()
    ema = ExponentialMovingAverage(network, decay=0.99)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.fill_(2.0)
    for _ in range(2000):
        ema.update(network)
    torch.testing.assert_close(flat(ema.averaged), flat(network), atol=1e-6, rtol=0)


def test_averaged_copy_is_frozen_independent_and_takes_the_live_buffers() -> None:
    network = small_network()
    ema = ExponentialMovingAverage(network)
    assert not ema.averaged.training
    assert all(not p.requires_grad for p in ema.averaged.parameters())
    network.train()
    network(torch.randn(16, 3))  # updates the batch-norm running statistics
    with torch.no_grad():
        network[0].weight.add_(1.0)
    assert not torch.equal(ema.averaged[0].weight, network[0].weight)
    assert not torch.equal(ema.averaged[1].running_mean, network[1].running_mean)
    ema.update(network)
    torch.testing.assert_close(ema.averaged[1].running_mean, network[1].running_mean)
    assert ema.averaged[1].num_batches_tracked == network[1].num_batches_tracked


def test_state_dict_round_trip() -> None:
    network = small_network()
    ema = ExponentialMovingAverage(network, decay=0.995)
    with torch.no_grad():
        network[2].bias.add_(3.0)
    ema.update(network)
    restored = ExponentialMovingAverage(small_network(), decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.decay == 0.995 and restored.num_updates == 1
    torch.testing.assert_close(flat(restored.averaged), flat(ema.averaged))
