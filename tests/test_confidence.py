"""Tests of the confidence model and its AUROC (:mod:`discodock.model.confidence`)."""

from __future__ import annotations

import pytest
import torch

from discodock.data.batch import collate
from discodock.data.cache import ComplexCache
from discodock.model.confidence import ConfidenceModel, binary_auroc
from discodock.model.config import ModelConfig
from tests.test_score_model import double, moved, permuted_atoms, random_rotation, within_graph_permutation


def eval_model(config: ModelConfig, seed: int = 0) -> ConfidenceModel:
    torch.manual_seed(seed)
    return ConfidenceModel(config.confidence).eval()


def test_one_finite_logit_per_graph_that_reads_the_current_pose(
    cache: ComplexCache, config: ModelConfig
) -> None:
    model = eval_model(config)
    batch = collate(cache, [0, 1, 1])
    with torch.no_grad():
        logits = model(batch)
        shifted = model(batch.with_ligand_pos(batch.ligand_pos + torch.tensor([4.0, 0.0, 0.0])))
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    assert torch.equal(logits[1], logits[2])
    assert not torch.allclose(shifted, logits)


def test_logits_are_invariant_to_moving_the_whole_complex(
    cache: ComplexCache, config: ModelConfig, float64: None
) -> None:
    model = eval_model(config)
    batch = double(collate(cache, [0, 1]))
    batch = batch.with_ligand_pos(batch.ligand_pos + torch.tensor([1.0, -2.0, 0.5]))  # an off-crystal pose
    with torch.no_grad():
        logits = model(batch)
        moved_logits = model(moved(batch, random_rotation(7), torch.tensor([-6.0, 12.0, 3.0])))
    torch.testing.assert_close(moved_logits, logits, atol=1e-9, rtol=1e-7)


def test_logits_are_invariant_to_permuting_ligand_atoms(
    cache: ComplexCache, config: ModelConfig, float64: None
) -> None:
    model = eval_model(config)
    batch = double(collate(cache, [0, 1]))
    permutation = within_graph_permutation(batch.atom_graph, seed=8)
    with torch.no_grad():
        torch.testing.assert_close(
            model(permuted_atoms(batch, permutation)), model(batch), atol=1e-9, rtol=1e-7
        )


def test_batched_equals_one_at_a_time(cache: ComplexCache, config: ModelConfig, float64: None) -> None:
    model = eval_model(config)
    with torch.no_grad():
        together = model(double(collate(cache, [0, 1])))
        apart = torch.cat([model(double(collate(cache, [index]))) for index in (0, 1)])
    torch.testing.assert_close(together, apart, atol=1e-9, rtol=1e-7)


def test_every_parameter_gets_a_gradient(cache: ComplexCache, config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = ConfidenceModel(config.confidence).train()
    model(collate(cache, [0, 1])).square().sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None and p.numel() > 0]
    assert not missing


def pairwise_auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """``P(s⁺ > s⁻) + ½ P(s⁺ = s⁻)`` over all positive–negative pairs, by brute force."""
    positive, negative = scores[labels][:, None], scores[~labels][None, :]
    return float(((positive > negative).double() + 0.5 * (positive == negative).double()).mean())


def test_auroc_counts_ties_as_one_half() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (200,), generator=generator).float()  # many ties
    labels = torch.rand(200, generator=generator) < 0.3 + 0.1 * scores
    assert float(binary_auroc(scores, labels)) == pytest.approx(pairwise_auroc(scores, labels), abs=1e-12)

    labels = torch.tensor([False, False, True, True])
    assert float(binary_auroc(torch.tensor([0.1, 0.2, 0.3, 0.4]), labels)) == 1.0
    assert float(binary_auroc(torch.tensor([0.4, 0.3, 0.2, 0.1]), labels)) == 0.0
    assert float(binary_auroc(torch.zeros(4), labels)) == 0.5
    assert binary_auroc(torch.rand(3), torch.ones(3, dtype=torch.bool)).isnan()
