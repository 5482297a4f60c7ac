"""Checkpoint files: atomic writes, fp32 weight exports and random-number state."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from discodock.errors import InputError
from discodock.training.checkpoint import (
    capture_rng_state,
    load_payload,
    load_weights,
    restore_rng_state,
    save_atomic,
    save_weights,
)


def test_atomic_save_round_trip_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.pt"
    save_atomic({"step": 1, "values": torch.arange(3)}, path)
    save_atomic({"step": 2, "values": torch.arange(4), "nested": {"name": "x", "pair": (1, 2.5)}}, path)
    payload = load_payload(path)
    assert payload["step"] == 2 and torch.equal(payload["values"], torch.arange(4))
    assert payload["nested"] == {"name": "x", "pair": (1, 2.5)}
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.pt"]


def test_missing_or_corrupt_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_payload(tmp_path / "absent.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a discodock checkpoint"):
        load_payload(corrupt)
    not_weights = tmp_path / "plain.pt"
    save_atomic({"step": 3}, not_weights)
    with pytest.raises(InputError, match="weights file"):
        load_weights(not_weights)


def test_weights_are_float32_state_dicts_with_the_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).half()
    config = {"model": {"score": {"ns": 8}}, "train": {"lr": 1e-3}}
    path = tmp_path / "weights.pt"
    save_weights(path, config, {"score_model": network})
    loaded_config, state_dicts = load_weights(path)
    assert loaded_config == config
    state = state_dicts["score_model"]
    assert state["0.weight"].dtype == torch.float32
    assert state["1.num_batches_tracked"].dtype == torch.int64
    torch.testing.assert_close(state["0.weight"], network[0].weight.float())
    restored = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    restored.load_state_dict(state)


def draws() -> tuple[torch.Tensor, np.ndarray, float]:
    return torch.rand(4), np.random.rand(4), random.random()


def test_random_state_restore_repeats_the_same_draws(tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    draws()
    save_atomic({"rng": capture_rng_state(cpu)}, tmp_path / "rng.pt")
    expected = draws()
    draws()
    restore_rng_state(load_payload(tmp_path / "rng.pt")["rng"], cpu)
    again = draws()
    assert torch.equal(again[0], expected[0])
    assert np.array_equal(again[1], expected[1])
    assert again[2] == expected[2]
