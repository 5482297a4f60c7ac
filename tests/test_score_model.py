"""Tests of the score network (:mod:`discodock.model.score_model`) and of the model configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from discodock.data.batch import ComplexBatch, collate
from discodock.data.cache import ComplexCache
from discodock.errors import InputError
from discodock.geometry.pose import apply_pose_updates
from discodock.model import score_model
from discodock.model.config import ModelConfig, ScoreModelConfig, dataclass_from_dict, load_config
from discodock.model.latents import LatentAssignment, TokenLogits, sample_tokens
from discodock.model.score_model import (
    FIT_REGULARIZATION,
    ScoreModel,
    ScoreOutput,
    bond_twists,
    rigid_rotation,
)

from .conftest import double

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def random_rotation(seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(
        torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    q = q * torch.sign(torch.diagonal(r))
    return q * torch.sign(torch.det(q))


def moved(batch: ComplexBatch, rotation: torch.Tensor, shift: torch.Tensor) -> ComplexBatch:
    """The whole complex rotated about the origin, then shifted (receptor edges are rotation-invariant)."""
    poses = ("residue_pos", "ligand_pos", "conformer_pos", "crystal_pos", "matched_pos")
    changes = {
        name: getattr(batch, name) @ rotation.T + shift for name in poses if getattr(batch, name) is not None
    }
    return dataclasses.replace(batch, residue_frame=batch.residue_frame @ rotation.T, **changes)


def permuted_atoms(batch: ComplexBatch, permutation: torch.Tensor) -> ComplexBatch:
    """The batch with ligand atom ``i`` taken from old atom ``permutation[i]`` (within graphs)."""
    new_index = torch.argsort(permutation)
    poses = ("ligand_pos", "conformer_pos", "crystal_pos", "matched_pos")
    changes = {name: getattr(batch, name)[permutation] for name in poses if getattr(batch, name) is not None}
    torsions = dataclasses.replace(
        batch.torsions,
        edges=new_index[batch.torsions.edges],
        moving_atom=new_index[batch.torsions.moving_atom],
    )
    return dataclasses.replace(
        batch,
        atom_features=batch.atom_features[permutation],
        bond_index=new_index[batch.bond_index],
        torsions=torsions,
        **changes,
    )


def within_graph_permutation(atom_graph: torch.Tensor, seed: int) -> torch.Tensor:
    keys = atom_graph * 2.0 + torch.rand(len(atom_graph), generator=torch.Generator().manual_seed(seed))
    return torch.argsort(keys)


def tiny_config() -> ScoreModelConfig:
    return load_config(CONFIGS / "tiny.yaml").score


def random_tokens(batch: ComplexBatch, num_tokens: int, seed: int) -> LatentAssignment:
    generator = torch.Generator().manual_seed(seed)
    dtype = batch.ligand_pos.dtype
    logits = TokenLogits(
        torch.randn(len(batch.atom_graph), num_tokens, generator=generator, dtype=dtype),
        torch.randn(len(batch.residue_graph), num_tokens, generator=generator, dtype=dtype),
    )
    return sample_tokens(logits, batch, generator=generator)


def eval_model(config: ScoreModelConfig, seed: int = 0) -> ScoreModel:
    torch.manual_seed(seed)
    return ScoreModel(config).eval()


def assert_outputs_close(actual: ScoreOutput, expected: ScoreOutput) -> None:
    for name in ("tr", "rot", "tor"):
        torch.testing.assert_close(getattr(actual, name), getattr(expected, name), atol=1e-9, rtol=1e-7)


def test_small_config_forward_on_a_real_complex(cache: ComplexCache) -> None:
    config = load_config(CONFIGS / "small.yaml").score
    model = eval_model(config)
    batch = collate(cache, [1])
    t = torch.tensor([0.6])
    with torch.no_grad():
        output = model(batch, t, random_tokens(batch, config.latent_tokens, seed=0))
    assert output.tr.shape == (1, 3) and output.rot.shape == (1, 3)
    assert output.tor.shape == (batch.torsions.num_torsions,)
    assert all(torch.isfinite(getattr(output, name)).all() for name in ("tr", "rot", "tor"))


def test_receptor_encoding_ignores_pose_and_is_reused(cache: ComplexCache, float64: None) -> None:
    """The encoding depends on the receptor only; ``for_receptors`` gives the same scores as ``forward``."""
    config = tiny_config()
    model = eval_model(config)
    batch = double(collate(cache, [0, 1]))
    shifted = batch.with_ligand_pos(batch.ligand_pos + 5.0)
    tokens = random_tokens(batch, config.latent_tokens, seed=5)
    t = torch.tensor([0.7, 0.4])
    with torch.no_grad():
        encoding = model.encode_receptor(batch)
        torch.testing.assert_close(model.encode_receptor(shifted), encoding, atol=0.0, rtol=0.0)
        assert encoding.shape == (len(batch.residue_graph), model.trunk.irreps_out.dim)
        bound = model.for_receptors(batch)
        assert_outputs_close(bound(shifted, t, tokens), model(shifted, t, tokens))


def test_bond_twists_recover_small_twists_under_a_rigid_motion(
    cache: ComplexCache, float64: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small twists of all bonds at once (Kabsch-aligned), plus a rotation and a shift of the whole
    ligand, give back the twists: the joint fit separates overlapping bonds and ignores rigid motion.
    Exactly without the ridge term; within a few % with it (it shrinks bonds with small moving sides)."""
    batch = double(collate(cache, [0, 1]))
    torsions = batch.torsions
    assert torsions.num_torsions >= 4
    scale = 1e-5
    angles = torch.linspace(-1.0, 1.0, torsions.num_torsions, dtype=torch.float64)
    rotation = torch.tensor([[0.3, -0.2, 0.5], [-0.4, 0.1, 0.2]], dtype=torch.float64)
    shift = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 0.0]], dtype=torch.float64)
    moved_pos = apply_pose_updates(
        batch.ligand_pos, batch.atom_graph, 2, scale * shift, scale * rotation, scale * angles, torsions
    )
    displacement = (moved_pos - batch.ligand_pos) / scale
    torch.testing.assert_close(bond_twists(batch, displacement), angles, atol=0.05, rtol=0.05)
    monkeypatch.setattr(score_model, "FIT_REGULARIZATION", 1e-12)
    torch.testing.assert_close(bond_twists(batch, displacement), angles, atol=1e-3, rtol=1e-3)
    # Only the rigid part: no twist at all.
    rigid = apply_pose_updates(
        batch.ligand_pos, batch.atom_graph, 2, scale * shift, scale * rotation, None, None
    )
    rigid_twists = bond_twists(batch, (rigid - batch.ligand_pos) / scale)
    torch.testing.assert_close(rigid_twists, torch.zeros_like(angles), atol=1e-4, rtol=0.0)


def test_rigid_rotation_recovers_an_exact_small_rotation(cache: ComplexCache, float64: None) -> None:
    """Displacements ``ω × r_i`` of a rigid rotation about the centroid give back ``ω`` (up to the ridge)."""
    batch = double(collate(cache, [0, 1]))
    omega = torch.tensor([[0.3, -0.2, 0.5], [-0.1, 0.4, 0.2]], dtype=torch.float64)
    centroid = torch.stack([batch.ligand_pos[batch.atom_graph == b].mean(0) for b in range(2)])
    arm = batch.ligand_pos - centroid[batch.atom_graph]
    displacement = torch.linalg.cross(omega[batch.atom_graph], arm, dim=-1)
    fitted = rigid_rotation(batch, displacement)
    inertia = [
        (arm[batch.atom_graph == b].square().sum() * torch.eye(3, dtype=torch.float64))
        - arm[batch.atom_graph == b].T @ arm[batch.atom_graph == b]
        for b in range(2)
    ]
    for b in range(2):
        expected = torch.linalg.solve(
            inertia[b] + FIT_REGULARIZATION * torch.eye(3, dtype=torch.float64), inertia[b] @ omega[b]
        )
        torch.testing.assert_close(fitted[b], expected)
        torch.testing.assert_close(fitted[b], omega[b], atol=0.02, rtol=0.02)
    # A pure translation of every atom has no rotational part.
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64).expand_as(arm)
    torch.testing.assert_close(rigid_rotation(batch, shift), torch.zeros(2, 3, dtype=torch.float64))


def test_scores_are_se3_equivariant(cache: ComplexCache, float64: None) -> None:
    config = tiny_config()
    model = eval_model(config)
    batch = double(collate(cache, [0, 1]))
    t = torch.tensor([0.9, 0.2])
    tokens = random_tokens(batch, config.latent_tokens, seed=1)
    rotation, shift = random_rotation(2), torch.tensor([3.0, -7.0, 11.0])
    with torch.no_grad():
        for latents in (tokens, None):
            output = model(batch, t, latents)
            moved_output = model(moved(batch, rotation, shift), t, latents)
            torch.testing.assert_close(moved_output.tr, output.tr @ rotation.T, atol=1e-9, rtol=1e-7)
            torch.testing.assert_close(moved_output.rot, output.rot @ rotation.T, atol=1e-9, rtol=1e-7)
            torch.testing.assert_close(moved_output.tor, output.tor, atol=1e-9, rtol=1e-7)
    assert output.tr.abs().min() > 1e-6 and output.tor.abs().min() > 1e-9  # nothing trivially zero


def test_permuting_ligand_atoms_changes_nothing(cache: ComplexCache, float64: None) -> None:
    config = tiny_config()
    model = eval_model(config)
    batch = double(collate(cache, [0, 1]))
    t = torch.tensor([0.5, 0.1])
    tokens = random_tokens(batch, config.latent_tokens, seed=3)
    permutation = within_graph_permutation(batch.atom_graph, seed=4)
    permuted_tokens = LatentAssignment(tokens.ligand[permutation], tokens.residue, tokens.unconditional)
    with torch.no_grad():
        assert_outputs_close(
            model(permuted_atoms(batch, permutation), t, permuted_tokens), model(batch, t, tokens)
        )


def test_batched_equals_one_at_a_time(cache: ComplexCache, float64: None) -> None:
    config = tiny_config()
    model = eval_model(config)
    singles = [double(collate(cache, [index])) for index in (0, 1)]
    tokens = [random_tokens(single, config.latent_tokens, seed=index) for index, single in enumerate(singles)]
    times = [torch.tensor([0.8]), torch.tensor([0.3])]
    batch = double(collate(cache, [0, 1]))
    batch_tokens = LatentAssignment(
        torch.cat([tokens[0].ligand, tokens[1].ligand]),
        torch.cat([tokens[0].residue, tokens[1].residue]),
        torch.zeros(2, dtype=torch.bool),
    )
    with torch.no_grad():
        together = model(batch, torch.cat(times), batch_tokens)
        apart = [
            model(single, time, token) for single, time, token in zip(singles, times, tokens, strict=True)
        ]
    expected = ScoreOutput(
        tr=torch.cat([output.tr for output in apart]),
        rot=torch.cat([output.rot for output in apart]),
        tor=torch.cat([output.tor for output in apart]),
    )
    assert_outputs_close(together, expected)


def test_tokens_and_null_flag_condition_the_scores(cache: ComplexCache, float64: None) -> None:
    config = tiny_config()
    model = eval_model(config)
    batch = double(collate(cache, [0, 1]))
    t = torch.tensor([0.4, 0.4])
    with torch.no_grad():
        first = model(batch, t, random_tokens(batch, config.latent_tokens, seed=5))
        second = model(batch, t, random_tokens(batch, config.latent_tokens, seed=6))
        assert not torch.allclose(first.tr, second.tr)
        assert not torch.allclose(first.tor, second.tor)

        # latents=None is the explicit null assignment
        assert_outputs_close(model(batch, t, None), model(batch, t, LatentAssignment.null(batch, 2)))

        # null embeddings start at zero: the flag alone changes nothing until they are learned
        null = LatentAssignment.null(batch, 2)
        zero_channels = LatentAssignment(null.ligand, null.residue, torch.zeros(2, dtype=torch.bool))
        assert_outputs_close(model(batch, t, null), model(batch, t, zero_channels))
        for parameter in model.trunk.null_embeddings.values():
            parameter.normal_()
        unconditional = model(batch, t, null)
        conditional = model(batch, t, zero_channels)
        assert not torch.allclose(unconditional.tr, conditional.tr)

        # the flag of one graph only affects that graph
        only_first = model(batch, t, LatentAssignment(null.ligand, null.residue, torch.tensor([True, False])))
        torch.testing.assert_close(only_first.tr[0], unconditional.tr[0])
        torch.testing.assert_close(only_first.tr[1], conditional.tr[1])


def test_no_latent_model_runs_through_the_same_code(cache: ComplexCache) -> None:
    config = dataclasses.replace(tiny_config(), latent_tokens=0)
    model = eval_model(config)
    batch = collate(cache, [0, 1])
    t = torch.tensor([1.0, 0.0])
    assert model.trunk.null_embeddings is None
    with torch.no_grad():
        output = model(batch, t)
        assert torch.isfinite(output.tr).all() and output.tor.shape == (batch.torsions.num_torsions,)
        with pytest.raises(ValueError, match="no latent tokens"):
            model(batch, t, random_tokens(batch, 2, seed=0))
    with_latents = sum(p.numel() for p in eval_model(tiny_config()).parameters())
    assert sum(p.numel() for p in model.parameters()) < with_latents


def test_every_parameter_gets_a_gradient(cache: ComplexCache) -> None:
    config = tiny_config()
    torch.manual_seed(0)
    model = ScoreModel(config).train()
    batch = collate(cache, [0, 1])
    output = model(batch, torch.tensor([0.7, 0.2]))  # unconditional: the null embeddings are used too
    (output.tr.square().sum() + output.rot.square().sum() + output.tor.square().sum()).backward()
    # (e3nn's batch norm keeps an empty bias for irreps without scalars, such as the 2x1o+2x1e head)
    missing = [name for name, p in model.named_parameters() if p.grad is None and p.numel() > 0]
    assert not missing


def test_cross_cutoff_is_three_sigma_plus_twenty_capped() -> None:
    model = ScoreModel(tiny_config())
    cutoff = model.trunk.cross_cutoff(torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(cutoff, torch.tensor([20.3, 77.0]))
    capped = ScoreModel(dataclasses.replace(tiny_config(), cross_max_distance=50.0))
    torch.testing.assert_close(capped.trunk.cross_cutoff(torch.tensor([1.0])), torch.tensor([50.0]))


def test_small_yaml_holds_the_released_defaults_and_nolatent_differs_only_in_tokens() -> None:
    small = load_config(CONFIGS / "small.yaml")
    assert small == ModelConfig()
    no_latent = load_config(CONFIGS / "small_nolatent.yaml")
    assert no_latent == dataclasses.replace(small, score=dataclasses.replace(small.score, latent_tokens=0))


def test_config_round_trips_and_rejects_bad_keys(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "tiny.yaml")
    assert ModelConfig.from_dict(dataclasses.asdict(config)) == config
    assert dataclass_from_dict(ModelConfig, {"score": {"dropout": "1e-2"}}).score.dropout == 0.01

    with pytest.raises(ValueError, match=r"score\.schedule\.tr\.sigma_mni: unknown key"):
        ModelConfig.from_dict({"score": {"schedule": {"tr": {"sigma_mni": 1.0}}}})
    with pytest.raises(ValueError, match=r"score\.ns: expected an integer"):
        ModelConfig.from_dict({"score": {"ns": 2.5}})
    with pytest.raises(ValueError, match="sh_lmax"):
        ModelConfig.from_dict({"score": {"sh_lmax": 2}})

    path = tmp_path / "bad.yaml"
    path.write_text("encoder:\n  heads: 3\n")
    with pytest.raises(InputError, match=r"bad\.yaml: encoder\.heads: unknown key \(expected one of: .*nv"):
        load_config(path)
