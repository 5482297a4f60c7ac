"""Shared fixtures: the real example complexes shipped in ``data/examples``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from discodock.data.batch import ComplexBatch
from discodock.data.cache import ComplexCache
from discodock.data.complex import ComplexData
from discodock.data.layout import find_complexes
from discodock.model.config import ModelConfig, load_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "data" / "examples"
EXAMPLE_IDS = ("1a0q", "1a46", "6k05", "6moa")


@pytest.fixture(scope="session")
def example_complexes() -> list[ComplexData]:
    """The four example complexes, featurized once per test session (sorted by name)."""
    from discodock.prepare import prepare_complex

    usable, _ = find_complexes(EXAMPLES)
    return [prepare_complex(files) for files in usable]


@pytest.fixture(scope="session")
def example_cache(example_complexes: list[ComplexData]) -> ComplexCache:
    return ComplexCache.from_complexes(example_complexes)


@pytest.fixture(scope="session")
def cache(example_cache: ComplexCache) -> ComplexCache:
    """The two quickest example complexes (6k05, 6moa; ~108 residues each) for network tests."""
    return example_cache.subset([example_cache.names.index(name) for name in ("6k05", "6moa")])


@pytest.fixture
def float64() -> Iterator[None]:
    """Run the test with float64 as torch's default dtype (equivariance checks to tight tolerances)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def config() -> ModelConfig:
    """The ``tiny`` model configuration."""
    return load_config(REPO / "configs" / "tiny.yaml")


def double(batch: ComplexBatch) -> ComplexBatch:
    """The batch with every floating tensor in float64 (for equivariance checks)."""
    floating = (
        "center",
        "residue_pos",
        "residue_frame",
        "ligand_pos",
        "conformer_pos",
        "crystal_pos",
        "matched_pos",
    )
    return dataclasses.replace(batch, **{name: getattr(batch, name).double() for name in floating})
