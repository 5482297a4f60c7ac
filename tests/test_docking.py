"""The docking API: loading a checkpoint folder, batched sampling, ranking, tokens, frames, caching."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from rdkit import Chem

import discodock.inference.docking as docking
import discodock.inference.networks as networks
from discodock import DockingModel
from discodock.data.batch import ComplexBatch
from discodock.data.complex import crop_receptor
from discodock.data.conformers import generate_conformer
from discodock.data.layout import find_complexes
from discodock.data.ligand import read_ligand
from discodock.data.protein import read_protein
from discodock.errors import InputError
from discodock.geometry.pose import graph_mean
from discodock.inference.docking import DEFAULT_POCKET_SIGMA, SamplingOptions, as_ligand, ligand_centroid
from discodock.inference.ranking import DEFAULT_CONSENSUS_WEIGHT, neighbour_counts, rank_scores
from discodock.model.config import ModelConfig
from discodock.model.score_model import ScoreModel

from .conftest import EXAMPLE_IDS, EXAMPLES, REPO

PROTEIN = EXAMPLES / "6moa" / "6moa_protein.pdb.gz"
LIGAND = EXAMPLES / "6moa" / "6moa_ligand.sdf"
SMILES = "CC(=O)Nc1ccc(O)cc1 paracetamol"


def _script(name: str) -> ModuleType:
    """A script of ``benchmarks/`` imported as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_test_checkpoint = _script("make_test_checkpoint").make_test_checkpoint
"""Writes a checkpoint folder of randomly initialised tiny networks (``configs/tiny.yaml``)."""


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: the networks here are tiny, and threads only contend on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def centroid_confidence(batch: ComplexBatch) -> torch.Tensor:
    """A stand-in confidence model: minus the distance of each ligand centroid from the protein centre."""
    return -graph_mean(batch.ligand_pos, batch.atom_graph, batch.num_graphs).norm(dim=1)


def positions(mol: Chem.Mol) -> np.ndarray:
    return mol.GetConformer().GetPositions()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> DockingModel:
    return DockingModel.load(make_test_checkpoint(tmp_path_factory.mktemp("checkpoint")), device="cpu")


@pytest.fixture(scope="module")
def ranking_model(model: DockingModel) -> DockingModel:
    return DockingModel(model.score_model, model.prior, centroid_confidence, device="cpu")


def test_load_without_prior_and_confidence_warns_once_each_and_samples_unranked_null_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        model = DockingModel.load(
            make_test_checkpoint(tmp_path, without=("prior", "confidence")), device="cpu"
        )
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "no prior" in messages[0] and "no confidence model" in messages[1]
    (result,) = model.dock(PROTEIN, SMILES, samples=3, steps=1, seed=0, consensus_weight=0.0)
    assert not result.ranked
    assert [pose.sample_index for pose in result.poses] == [0, 1, 2]  # sampling order
    assert all(np.isnan(pose.confidence) for pose in result.poses)
    assert all(str(token) == "null" for pose in result.poses for token in pose.tokens)
    assert len(result.best.tokens) == model.num_tokens == 2


def test_load_reports_a_missing_folder_or_denoiser(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="checkpoint folder not found"):
        DockingModel.load(tmp_path / "absent")
    with pytest.raises(InputError, match=r"score_model_ema\.pt: checkpoint file not found"):
        DockingModel.load(tmp_path)


def test_default_checkpoint_docks_with_the_shipped_weights() -> None:
    (result,) = DockingModel.load(device="cpu").dock(PROTEIN, LIGAND, samples=1, steps=1)
    assert np.isfinite(positions(result.best.mol)).all()


def test_dock_returns_input_ligand_poses_with_tokens_for_many_ligands(model: DockingModel) -> None:
    protein = read_protein(PROTEIN)
    inputs = [read_ligand(LIGAND), read_ligand(SMILES)]
    results = model.dock(PROTEIN, [LIGAND, SMILES], samples=3, steps=2, seed=1)
    assert [r.name for r in results] == ["ligand1", "paracetamol"]
    for result, ligand in zip(results, inputs, strict=True):
        assert len(result.poses) == 3
        assert sorted(pose.sample_index for pose in result.poses) == [0, 1, 2]
        for pose in result.poses:
            mol = pose.mol
            assert Chem.MolToSmiles(mol) == Chem.MolToSmiles(ligand)
            assert [a.GetAtomicNum() for a in mol.GetAtoms()] == [a.GetAtomicNum() for a in ligand.GetAtoms()]
            assert mol.GetNumConformers() == 1 and np.isfinite(positions(mol)).all()
            assert mol.GetProp("latent_tokens") == " ".join(str(token) for token in pose.tokens)
            assert len(pose.tokens) == 2
            for token in pose.tokens:
                if token.kind == "atom":
                    assert 0 <= token.index < ligand.GetNumAtoms()
                else:
                    assert token.kind == "residue" and 0 <= token.index < protein.num_residues
                    chain, number, name = token.residue_id.split(":")
                    assert chain == protein.chain_ids[token.index]
                    assert name == protein.residue_names[token.index]
                    assert int(number) == protein.residue_numbers[token.index]


def test_every_shipped_example_docks_through_the_api(model: DockingModel) -> None:
    examples, _ = find_complexes(EXAMPLES)
    assert [files.name for files in examples] == list(EXAMPLE_IDS)
    for files in examples:
        (result,) = model.dock(files.protein_path, files.ligand_path, samples=2, steps=1)
        ligand = read_ligand(files.ligand_path)
        assert result.ranked and len(result.poses) == 2
        assert result.best.mol.GetNumAtoms() == ligand.GetNumAtoms()
        assert np.isfinite(positions(result.best.mol)).all()


def test_same_seed_repeats_and_another_seed_differs(model: DockingModel) -> None:
    def poses(seed: int) -> np.ndarray:
        (result,) = model.dock(PROTEIN, SMILES, samples=2, steps=2, seed=seed)
        return np.stack([positions(pose.mol) for pose in result.poses])

    first = poses(3)
    np.testing.assert_array_equal(first, poses(3))
    assert np.abs(first - poses(4)).max() > 1.0


@pytest.mark.parametrize("pocket_radius", [None, 8.0])
def test_pocket_centre_moves_the_translation_prior_and_poses_are_in_the_input_frame(
    model: DockingModel, pocket_radius: float | None
) -> None:
    # With a zero score every pose is prior + noise, the same noise for both runs (same seed), so the
    # poses differ exactly by the shift of the prior centre, from the protein centre to the pocket (whose
    # cropped receptor keeps the frame origin), when the pocket prior keeps the blind spread (19 Å).
    zero_score = ScoreModel(model.score_model.config)
    zero_score.load_state_dict(model.score_model.state_dict())
    for last_layer in (zero_score.translation_magnitude[-1], zero_score.rotation_magnitude[-1]):
        torch.nn.init.zeros_(last_layer.weight)
        torch.nn.init.zeros_(last_layer.bias)
    torch.nn.init.zeros_(zero_score.torsion_output[-1].weight)
    torch.nn.init.zeros_(zero_score.atom_displacement.weight)
    torch.nn.init.zeros_(zero_score.translation_vectors.weight)
    blind_model = DockingModel(zero_score, model.prior, device="cpu")
    pocket = ligand_centroid(LIGAND)
    protein_centre = read_protein(PROTEIN).ca.mean(axis=0)

    def poses(
        pocket_center: np.ndarray | None, pocket_radius: float | None = None, steps: int = 3
    ) -> np.ndarray:
        (result,) = blind_model.dock(
            PROTEIN,
            LIGAND,
            samples=4,
            steps=steps,
            seed=0,
            pocket_center=pocket_center,
            pocket_radius=pocket_radius,
            latents="null",
            pocket_sigma=pocket_sigma,
        )
        return np.stack([positions(pose.mol) for pose in result.poses])

    def centroid_distances(poses: np.ndarray, centre: np.ndarray) -> np.ndarray:
        return np.linalg.norm(poses.mean(axis=1) - centre, axis=-1)

    pocket_sigma = 19.0
    blind, pocketed = poses(None), poses(pocket, pocket_radius)
    np.testing.assert_allclose(
        pocketed - blind, np.broadcast_to(pocket - protein_centre, blind.shape), atol=2e-3
    )
    # the ligand has left the origin of the model's frame: blind poses scatter around the protein centre
    assert np.linalg.norm(blind.mean(axis=(0, 1)) - protein_centre) < np.linalg.norm(protein_centre)
    # the default pocket prior (5 Å) starts the poses 19/5 times closer to the centre (one noise-free
    # step: the poses are the prior's)
    wide = poses(pocket, pocket_radius, steps=1)
    pocket_sigma = DEFAULT_POCKET_SIGMA
    narrow = poses(pocket, pocket_radius, steps=1)
    np.testing.assert_allclose(
        centroid_distances(narrow, pocket),
        centroid_distances(wide, pocket) * DEFAULT_POCKET_SIGMA / 19.0,
        atol=2e-3,
    )


def test_the_checkpoint_confidence_model_ranks_the_poses(model: DockingModel) -> None:
    (result,) = model.dock(PROTEIN, LIGAND, samples=4, steps=1, seed=0, consensus_weight=0.0)
    confidences = [pose.confidence for pose in result.poses]
    assert result.ranked and np.isfinite(confidences).all()
    assert confidences == sorted(confidences, reverse=True)
    assert len(set(confidences)) == 4  # one logit per pose


def test_confidence_ranks_the_poses(ranking_model: DockingModel) -> None:
    (result,) = ranking_model.dock(PROTEIN, LIGAND, samples=5, steps=2, seed=0, consensus_weight=0.0)
    assert result.ranked
    confidences = [pose.confidence for pose in result.poses]
    assert confidences == sorted(confidences, reverse=True)
    assert [pose.mol.GetIntProp("rank") for pose in result.poses] == [1, 2, 3, 4, 5]
    centre = read_protein(PROTEIN).ca.mean(axis=0)
    for pose in result.poses:  # the confidence belongs to the pose it is stored with
        expected = -np.linalg.norm(positions(pose.mol).mean(axis=0) - centre)
        assert pose.confidence == pytest.approx(expected, abs=1e-3)
        assert pose.mol.GetDoubleProp("confidence") == pose.confidence


def test_by_default_the_samples_consensus_joins_the_confidence_in_the_rank_score(
    ranking_model: DockingModel,
) -> None:
    """Poses are sorted by their ``rank_score``, which is :func:`rank_scores` of the samples as docked."""
    (result,) = ranking_model.dock(PROTEIN, LIGAND, samples=6, steps=2, seed=0)
    scores = [pose.mol.GetDoubleProp("rank_score") for pose in result.poses]
    assert scores == sorted(scores, reverse=True)
    by_sample = sorted(result.poses, key=lambda pose: pose.sample_index)
    stacked = torch.as_tensor(np.stack([positions(pose.mol) for pose in by_sample]))
    confidences = torch.tensor([pose.confidence for pose in by_sample], dtype=torch.float64)
    expected = rank_scores(confidences, neighbour_counts(stacked), DEFAULT_CONSENSUS_WEIGHT)
    np.testing.assert_allclose(
        [pose.mol.GetDoubleProp("rank_score") for pose in by_sample], expected, atol=1e-5
    )
    neighbours = [pose.mol.GetIntProp("consensus_neighbours") for pose in by_sample]
    assert neighbours == neighbour_counts(stacked).int().tolist()


def test_many_complexes_in_small_batches_match_their_own_graphs(ranking_model: DockingModel) -> None:
    # Complexes of two receptors, cut into batches of 3 graphs that straddle complexes: every pose must
    # still be a pose of its own ligand (its confidence recomputed from its own coordinates).
    options = SamplingOptions(samples=2, steps=1, seed=0, graphs_per_batch=3)
    jobs = [
        ranking_model.prepare(PROTEIN, read_ligand(SMILES), name="a"),
        ranking_model.prepare(EXAMPLES / "6k05" / "6k05_protein.pdbqt.gz", read_ligand(LIGAND), name="b"),
        ranking_model.prepare(PROTEIN, read_ligand("c1ccccc1O"), name="c"),
    ]
    results = ranking_model.run(jobs, options)
    assert [r.name for r in results] == ["a", "b", "c"]
    for job, result in zip(jobs, results, strict=True):
        for pose in result.poses:
            assert pose.mol.GetNumAtoms() == job.ligand.GetNumAtoms()
            centroid = positions(pose.mol).mean(axis=0) - job.features.center
            assert pose.confidence == pytest.approx(-np.linalg.norm(centroid), abs=1e-3)


def test_receptor_is_read_and_featurized_once_per_protein(
    model: DockingModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = DockingModel(model.score_model, model.prior, device="cpu")
    reads = []

    def counting_read(path: object) -> object:
        reads.append(path)
        return read_protein(path)  # type: ignore[arg-type]

    monkeypatch.setattr(docking, "read_protein", counting_read)
    fresh.dock(PROTEIN, ["CCO", "CCN"], samples=1, steps=1)
    fresh.dock(str(PROTEIN), "CCC", samples=1, steps=1)
    assert len(reads) == 1
    protein = read_protein(PROTEIN)
    first, second = fresh.receptor(protein), fresh.receptor(protein)
    assert first[1] is second[1]


def test_models_without_latents_and_null_tokens_run_through_the_same_code(
    model: DockingModel, config: ModelConfig
) -> None:
    no_latent_config = dataclasses.replace(config.score, latent_tokens=0)
    no_latent = DockingModel(ScoreModel(no_latent_config), device="cpu")
    (result,) = no_latent.dock(PROTEIN, SMILES, samples=2, steps=1)
    assert result.best.tokens == () and result.best.mol.GetProp("latent_tokens") == ""
    (result,) = model.dock(PROTEIN, SMILES, samples=2, steps=1, latents="null")
    assert [str(token) for token in result.best.tokens] == ["null", "null"]


def test_rdkit_molecules_are_checked_like_files(model: DockingModel) -> None:
    with_hydrogens = Chem.AddHs(Chem.MolFromSmiles("OCC"))
    assert as_ligand(with_hydrogens).GetNumAtoms() == 3
    pentavalent = Chem.MolFromSmiles("CC(C)(C)(C)(C)C", sanitize=False)
    with pytest.raises(InputError, match="sanitisation failed"):
        model.dock(PROTEIN, pentavalent, samples=1, steps=1)
    with pytest.raises(InputError, match="no heavy atoms"):
        as_ligand(Chem.MolFromSmiles("[H][H]", sanitize=False))


def test_bad_pocket_centres_and_references(model: DockingModel, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="three finite coordinates"):
        model.dock(PROTEIN, SMILES, samples=1, steps=1, pocket_center=[1.0, 2.0])
    with pytest.raises(InputError, match="no 3D coordinates"):
        ligand_centroid("CCO")
    np.testing.assert_allclose(ligand_centroid(LIGAND), positions(read_ligand(LIGAND)).mean(axis=0))


def test_unavailable_device_is_a_clean_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError, match="CUDA is not available"):
        docking.resolve_device("cuda")
    with pytest.raises(InputError, match="not a device"):
        docking.resolve_device("gpu0")


def test_a_pocket_crops_the_receptor_graph_and_its_tokens_point_at_protein_residues(
    model: DockingModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    pocket = ligand_centroid(LIGAND)
    protein = read_protein(PROTEIN)
    distances = np.linalg.norm(protein.ca.astype(np.float64) - pocket, axis=1)
    conformer = positions(generate_conformer(read_ligand(LIGAND), seed=0))
    conformer_radius = np.linalg.norm(conformer - conformer.mean(axis=0), axis=1).max()
    batch_of = networks.batch_of
    residues_per_graph = []

    def recording_batch_of(*args, **kwargs):  # type: ignore[no-untyped-def]
        batch = batch_of(*args, **kwargs)
        residues_per_graph.extend(batch.residue_graph.bincount(minlength=batch.num_graphs).tolist())
        return batch

    monkeypatch.setattr(networks, "batch_of", recording_batch_of)
    for radius, expected_radius in ((None, docking.DEFAULT_POCKET_MARGIN + conformer_radius), (8.0, 8.0)):
        residues_per_graph.clear()
        (result,) = model.dock(
            PROTEIN, LIGAND, samples=6, steps=1, seed=0, pocket_center=pocket, pocket_radius=radius
        )
        expected_count = (distances <= expected_radius).sum()
        assert 0 < expected_count < protein.num_residues
        # the 6 sampled graphs, then the one-graph batch whose receptor is encoded once for all 6
        assert residues_per_graph == [expected_count] * (6 + 1)
    residue_tokens = [token for pose in result.poses for token in pose.tokens if token.kind == "residue"]
    assert residue_tokens
    for token in residue_tokens:  # a protein residue of the pocket, not a row of the cropped arrays
        assert distances[token.index] <= 8.0


def test_a_pocket_is_cropped_once_per_protein_centre_and_radius(
    model: DockingModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = DockingModel(model.score_model, model.prior, device="cpu")
    crops = []

    def counting_crop(*args, **kwargs):  # type: ignore[no-untyped-def]
        crops.append(args)
        return crop_receptor(*args, **kwargs)

    monkeypatch.setattr(docking, "crop_receptor", counting_crop)
    ligand, pocket = read_ligand(LIGAND), ligand_centroid(LIGAND)
    first, second = (fresh.prepare(PROTEIN, ligand, name=n, pocket_center=pocket) for n in "ab")
    assert first.features.residue_pos is second.features.residue_pos and len(crops) == 1
    smaller = fresh.prepare(PROTEIN, ligand, name="c", pocket_center=pocket, pocket_radius=8.0)
    moved = fresh.prepare(PROTEIN, ligand, name="d", pocket_center=pocket + 1.0, pocket_radius=8.0)
    assert len(crops) == 3 and smaller.features.num_residues < first.features.num_residues
    assert not np.array_equal(smaller.residue_index, moved.residue_index)
    whole = fresh.prepare(PROTEIN, ligand, name="e")
    assert whole.features.num_residues == read_protein(PROTEIN).num_residues
    np.testing.assert_array_equal(whole.features.center, first.features.center)  # one frame for all


def test_bad_pocket_radii_and_empty_pockets_are_clean_errors(model: DockingModel) -> None:
    far = ligand_centroid(LIGAND) + 500.0
    with pytest.raises(InputError, match=r"6moa_protein\.pdb\.gz: no residue within 8\.0 Å of the pocket"):
        model.dock(PROTEIN, SMILES, samples=1, steps=1, pocket_center=far, pocket_radius=8.0)
    with pytest.raises(InputError, match="no residue within"):
        model.dock(PROTEIN, SMILES, samples=1, steps=1, pocket_center=far)  # the default radius
    with pytest.raises(InputError, match="a pocket radius must be a positive number"):
        model.dock(PROTEIN, SMILES, samples=1, steps=1, pocket_center=far, pocket_radius=-1.0)
    with pytest.raises(InputError, match="a pocket radius needs a pocket centre"):
        model.dock(PROTEIN, SMILES, samples=1, steps=1, pocket_radius=10.0)
