"""The registry and the runtime: install, activate, roll back, and refuse what does not fit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from deltaomega.config import Settings
from deltaomega.errors import ModelError
from deltaomega.models.export import random_inputs
from deltaomega.models.features import MODEL_NAMES
from deltaomega.models.registry import ModelRegistry, shipped_versions_dir
from deltaomega.models.runtime import CPU, CUDA, ModelRuntime, choose_providers
from deltaomega.streams.ticks import warm_up_sizes

SHIPPED = sorted(p.name for p in shipped_versions_dir().iterdir() if p.is_dir())


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models")
    registry.ensure_installed()
    return registry


def copy_version(registry: ModelRegistry, name: str) -> Path:
    target = registry.versions_dir / name
    shutil.copytree(registry.versions_dir / SHIPPED[-1], target)
    return target


def test_shipped_version_is_installed_and_active(registry: ModelRegistry) -> None:
    assert len(SHIPPED) == 1
    assert registry.versions() == SHIPPED
    assert registry.active() == SHIPPED[0]
    loaded = registry.load(SHIPPED[0])
    assert sorted(loaded.models) == sorted(MODEL_NAMES)
    assert all(m.manifest["version"] == SHIPPED[0] for m in loaded.models.values())
    registry.ensure_installed()  # idempotent
    assert registry.versions() == SHIPPED


def test_activate_and_roll_back(registry: ModelRegistry) -> None:
    copy_version(registry, "v2")
    registry.activate("v2")
    assert registry.active() == "v2"
    assert json.loads(registry.active_file.read_text()) == {"active": "v2", "history": SHIPPED}
    assert registry.rollback() == SHIPPED[0]
    assert registry.active() == SHIPPED[0]
    with pytest.raises(ModelError, match="no earlier version"):
        registry.rollback()


def test_mismatched_feature_spec_is_refused(registry: ModelRegistry) -> None:
    bad = copy_version(registry, "bad-spec")
    manifest_path = bad / "conflict_predictor.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["feature_spec_hash"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(
        ModelError, match="conflict_predictor was built for feature spec 000000000000"
    ):
        registry.activate("bad-spec")
    assert registry.active() == SHIPPED[0]


def test_tampered_model_is_refused(registry: ModelRegistry) -> None:
    bad = copy_version(registry, "bad-bytes")
    onnx = bad / "pattern_classifier.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="pattern_classifier: sha256 .* does not match"):
        registry.activate("bad-bytes")


def test_runtime_refuses_a_bad_active_version_and_keeps_serving(registry: ModelRegistry) -> None:
    runtime = ModelRuntime(registry)
    assert runtime.start().name == SHIPPED[0]
    bad = copy_version(registry, "bad-spec")
    manifest_path = bad / "emergence_detector.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["feature_spec_hash"] = "f" * 64
    manifest_path.write_text(json.dumps(manifest))
    # Someone edits active.json by hand, bypassing `models activate`'s checks.
    registry.active_file.write_text(json.dumps({"active": "bad-spec", "history": SHIPPED}))
    assert runtime.refresh() is False
    assert runtime.current.name == SHIPPED[0]
    copy_version(registry, "v3")
    registry.activate("v3")
    assert runtime.refresh() is True
    assert runtime.current.name == "v3"
    assert runtime.refresh() is False


def test_runtime_runs_every_model_batched(registry: ModelRegistry) -> None:
    runtime = ModelRuntime(registry)
    runtime.start()
    rng = np.random.default_rng(5)
    mean, std = runtime.run("voice_state_predictor", random_inputs("voice_state_predictor", rng, 9))
    assert mean.shape == (9, 4) and std.shape == (9, 4) and np.all(std > 0)
    inputs = random_inputs("conflict_predictor", rng, 3)
    (probability,) = runtime.run("conflict_predictor", inputs)
    n = inputs["nodes"].shape[1]
    assert probability.shape == (3, n, n)
    assert np.all((probability >= 0) & (probability <= 1))
    assert np.all(probability[:, np.arange(n), np.arange(n)] == 0)
    p, types, error = runtime.run("emergence_detector", random_inputs("emergence_detector", rng, 4))
    assert p.shape == (4,) and types.shape == (4, 7) and error.shape == (4,)
    np.testing.assert_allclose(types.sum(axis=1), 1.0, rtol=1e-5)
    classes, complexity, novelty = runtime.run(
        "pattern_classifier", random_inputs("pattern_classifier", rng, 2)
    )
    assert classes.shape == (2, 8) and complexity.shape == (2,) and novelty.shape == (2,)


def test_cuda_first_when_present() -> None:
    assert choose_providers([CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers(["TensorrtExecutionProvider", CPU]) == [CPU]
    assert choose_providers([CPU]) == [CPU]


def test_models_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deltaomega.cli import main

    monkeypatch.setenv("DELTAOMEGA_DATA_DIR", str(tmp_path))
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"* {SHIPPED[0]}  predictor MAE ")
    registry = ModelRegistry(tmp_path / "models")
    copy_version(registry, "v2")
    assert main(["models", "activate", "v2"]) == 0
    assert registry.active() == "v2"
    assert main(["models", "activate", "nope"]) == 1
    assert registry.active() == "v2"
    assert main(["models", "rollback"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"rolled back to {SHIPPED[0]}"
    assert main(["models", "rollback"]) == 1


def test_runtime_warms_each_session_at_the_ticks_largest_shapes(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    shapes: list[tuple[str, tuple[int, ...]]] = []
    real_run = ort.InferenceSession.run

    def recording_run(self: ort.InferenceSession, *args: Any, **kwargs: Any) -> Any:
        feeds = args[1]
        shapes.extend((name, feed.shape) for name, feed in feeds.items())
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "run", recording_run)
    sizes = warm_up_sizes(Settings(conflict_max_graph_voices=128, inference_warm_up_voices=5000))
    assert sizes == {
        "voice_state_predictor": {"voices": 5000},
        "conflict_predictor": {"graphs": 8, "voices": 128},
    }
    assert warm_up_sizes(Settings(inference_warm_up_voices=300)) == {
        "voice_state_predictor": {"voices": 300},
        "conflict_predictor": {"graphs": 1, "voices": 256},
    }
    assert warm_up_sizes(Settings(inference_warm_up_voices=0)) == {}
    ModelRuntime(registry, warm_up=sizes).start()
    predictor = ("history", (5000, 8, 22))
    conflict = [("nodes", (8, 128, 22)), ("edges", (8, 128, 128, 10)), ("mask", (8, 128))]
    assert shapes == [predictor, predictor, *conflict, *conflict]


def test_runtime_refuses_a_version_that_fails_its_warm_up(registry: ModelRegistry) -> None:
    runtime = ModelRuntime(registry, warm_up={"conflict_predictor": {"graphs": 0}})
    with pytest.raises(ModelError, match=r"conflict_predictor: fails on zeros of \{'graphs': 0\}"):
        runtime.start()
