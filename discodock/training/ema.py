"""Exponential moving average of a network's weights (method.md §1.5).

After every optimiser step ``n = 1, 2, …`` the averaged parameters ``θ̄`` move towards the live ones
``θ``:

.. math::

    d_n = \\min\\bigl(d, \\tfrac{1 + n}{10 + n}\\bigr), \\qquad θ̄ ← d_n θ̄ + (1 − d_n) θ,

with ``d = 0.999`` in the released configs; the warm-up makes the first averages follow the fast early
changes. Buffers (batch-norm running statistics) are not averaged but copied from the live network, so
the averaged copy is always a complete, usable network.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ExponentialMovingAverage:
    """A frozen copy of ``network`` whose parameters track the live ones' moving average.

    Parameters
    ----------
    network
        The live network; it is deep-copied once, so the average starts at its current weights.
    decay
        Asymptotic decay ``d`` (0.999 in the released configs).

    Attributes
    ----------
    averaged
        The averaged copy, in eval mode with ``requires_grad`` off; use it for validation and export.
    num_updates
        Number ``n`` of :meth:`update` calls so far.
    """

    def __init__(self, network: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.averaged = copy.deepcopy(network).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """``d_n = min(d, (1 + n) / (10 + n))`` for the current ``n``."""
        return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """Count one more step, then ``θ̄ ← θ̄ + (1 − d_n)(θ − θ̄)`` and copy the buffers of ``network``."""
        self.num_updates += 1
        weight = 1.0 - self.current_decay()
        averaged = list(self.averaged.parameters())
        live = [p.detach() for p in network.parameters()]
        if len(averaged) != len(live):
            raise ValueError("network does not match the averaged copy")
        torch._foreach_lerp_(averaged, live, weight)
        for averaged_buffer, live_buffer in zip(self.averaged.buffers(), network.buffers(), strict=True):
            averaged_buffer.copy_(live_buffer)

    def state_dict(self) -> dict[str, Any]:
        """Decay, update count and the averaged network's state dict."""
        return {"decay": self.decay, "num_updates": self.num_updates, "network": self.averaged.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        self.averaged.load_state_dict(state["network"])
