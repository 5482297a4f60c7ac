"""Shared fixtures: the real example complexes shipped in ``data/examples``."""

from __future__ import annotations

from pathlib import Path

import pytest

from discodock.data.cache import ComplexCache
from discodock.data.complex import ComplexData
from discodock.data.layout import find_complexes

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
