"""Checkpoint files: atomic writes, small weight exports and the random-number state of a process.

Two kinds of file are written during training:

* a **resume checkpoint** (``last.pt``): everything needed to continue a run exactly as if it had never
  stopped (networks, EMA, optimiser, scheduler, step, data order, and the random-number generators
  of every process);
* a **weights file** (``weights.pt``): the experiment's model config and fp32
  state dicts of the networks, without optimiser state, for inference and for the next stage;
* a **network folder** (e.g. ``checkpoints/disco_small/`` in the repository): the same networks, one file
  each (``<name>.pt``, small enough to commit), and the training state of each stage (stage, steps,
  epochs, last validation): ``training_state.json`` for the score stage, ``<stage>_training_state.json``
  for the prior and confidence stages, so that the networks of all stages can share one folder. It is
  what ships, what inference loads, and what a later training run warm-starts from
  (``discodock train --init-from FOLDER``) when the full resume checkpoint is not at hand.

Every file is written to a temporary name in the same folder and then renamed with :func:`os.replace`,
so a run killed mid-write never leaves a truncated file. All payloads hold only tensors and plain
Python values and are read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from discodock.errors import InputError

WEIGHTS_FORMAT_VERSION = 1
NETWORK_FORMAT = "discodock-network"
TRAINING_STATE_FILE = "training_state.json"
"""Training state of the score stage in a network folder (:func:`training_state_file`)."""


def training_state_file(stage: str) -> str:
    """Name of a stage's training-state file in a network folder: ``training_state.json`` for the score
    stage, ``<stage>_training_state.json`` for the others."""
    return TRAINING_STATE_FILE if stage == "score" else f"{stage}_{TRAINING_STATE_FILE}"


def save_atomic(payload: Mapping[str, Any], path: str | Path) -> None:
    """``torch.save`` ``payload`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(dict(payload), temporary)
    os.replace(temporary, path)


def load_payload(path: str | Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a file written by :func:`save_atomic`; a missing or unreadable file is an :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file
        raise InputError(path, f"not a discodock checkpoint ({type(error).__name__})") from None
    if not isinstance(payload, dict):
        raise InputError(path, "not a discodock checkpoint")
    return payload


def fp32_state_dict(network: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of ``network`` on the CPU, floating tensors as float32 (integer buffers unchanged)."""
    return {
        key: (value.detach().float() if value.is_floating_point() else value.detach()).cpu().clone()
        for key, value in network.state_dict().items()
    }


def save_weights(path: str | Path, config: Mapping[str, Any], networks: Mapping[str, nn.Module]) -> None:
    """Write a weights file: the experiment config and an fp32 state dict per named network.

    Parameters
    ----------
    path
        Destination file.
    config
        Plain-dict experiment config (``{"model": …, "train": …}``) the networks were built from.
    networks
        E.g. ``{"score_model": …, "score_model_ema": …, "encoder": …}``.
    """
    payload = {
        "format": "discodock-weights",
        "version": WEIGHTS_FORMAT_VERSION,
        "config": dict(config),
        "state_dicts": {name: fp32_state_dict(network) for name, network in networks.items()},
    }
    save_atomic(payload, path)


def load_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Read a weights file written by :func:`save_weights`, or a network folder (:func:`save_network_folder`).

    Returns
    -------
    config
        The experiment config (plain dict).
    state_dicts
        Network name → CPU state dict.
    """
    path = Path(path)
    if path.is_dir():
        networks = [load_network(file) for file in sorted(path.glob("*.pt"))]
        if not networks:
            raise InputError(path, "no network files (*.pt) in this folder")
        return networks[0][0], {name: state for _, name, state in networks}
    payload = load_payload(path)
    if payload.get("format") != "discodock-weights" or payload.get("version") != WEIGHTS_FORMAT_VERSION:
        raise InputError(path, f"not a discodock weights file of version {WEIGHTS_FORMAT_VERSION}")
    return payload["config"], payload["state_dicts"]


def save_network(path: str | Path, config: Mapping[str, Any], name: str, network: nn.Module) -> None:
    """Write one network's fp32 state dict with the experiment config it was built from."""
    payload = {"format": NETWORK_FORMAT, "config": dict(config), "name": name}
    save_atomic({**payload, "state_dict": fp32_state_dict(network)}, path)


def load_network(path: str | Path) -> tuple[dict[str, Any], str, dict[str, torch.Tensor]]:
    """Read a file of :func:`save_network`: ``(experiment config, network name, state dict)``."""
    payload = load_payload(path)
    if payload.get("format") != NETWORK_FORMAT:
        raise InputError(path, "not a discodock network file")
    return payload["config"], payload["name"], payload["state_dict"]


def save_network_folder(
    folder: str | Path,
    config: Mapping[str, Any],
    networks: Mapping[str, nn.Module],
    training_state: Mapping[str, Any],
) -> None:
    """Write ``folder/<name>.pt`` for every network and the stage's training state
    (:func:`training_state_file` of ``training_state["stage"]``)."""
    folder = Path(folder)
    for name, network in networks.items():
        save_network(folder / f"{name}.pt", config, name, network)
    state_path = folder / training_state_file(str(training_state["stage"]))
    state_path.write_text(json.dumps(dict(training_state), indent=2) + "\n")


def load_training_state(folder: str | Path, stage: str = "score") -> dict[str, Any]:
    """The training state of ``stage`` in a network folder (:func:`training_state_file`)."""
    path = Path(folder) / training_state_file(stage)
    if not path.is_file():
        raise InputError(path, "training state not found (is this a network folder?)")
    return json.loads(path.read_text())


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """The global random-number state of this process: torch CPU, CUDA ``device`` (if any), numpy, Python."""
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Set the global random-number state captured by :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
