"""Model versions on disk, and which one is active.

Layout of the registry directory::

    versions/<version>/<model>.onnx      the exported graph
    versions/<version>/<model>.json      its manifest (sha256, feature-spec hash, metrics …)
    active.json                          {"active": version, "history": [older actives]}

A version is the four models trained together. ``activate`` checks a version fully
(files, checksums, feature specs) before switching, so a running worker, which polls
``active.json``, never picks up a version it would then refuse. The versions shipped in
the package are installed into an empty registry on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from deltaomega.errors import ModelError
from deltaomega.models.features import MODEL_NAMES, spec_hash

log = logging.getLogger(__name__)

ACTIVE_FILE = "active.json"


@dataclass(frozen=True)
class ModelFile:
    name: str
    path: Path
    manifest: dict[str, Any]


@dataclass(frozen=True)
class ModelVersion:
    version: str
    path: Path
    models: dict[str, ModelFile]

    def metrics(self) -> dict[str, dict[str, Any]]:
        return {name: m.manifest.get("metrics", {}) for name, m in self.models.items()}


def shipped_versions_dir() -> Path:
    return Path(str(resources.files("deltaomega.models") / "shipped"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_version(path: Path) -> ModelVersion:
    """Read and check one version directory; raises :class:`ModelError` naming the problem."""
    if not path.is_dir():
        raise ModelError(f"no model version at {path}")
    models: dict[str, ModelFile] = {}
    for name in MODEL_NAMES:
        manifest_path = path / f"{name}.json"
        if not manifest_path.is_file():
            raise ModelError(f"{path.name}: {name}.json is missing")
        manifest = json.loads(manifest_path.read_text())
        onnx_path = path / str(manifest.get("file", f"{name}.onnx"))
        if not onnx_path.is_file():
            raise ModelError(f"{path.name}: {onnx_path.name} is missing")
        expected_spec = spec_hash(name)
        if manifest.get("feature_spec_hash") != expected_spec:
            built_for = str(manifest.get("feature_spec_hash"))[:12]
            raise ModelError(
                f"{path.name}/{name} was built for feature spec {built_for}, "
                f"this build has {expected_spec[:12]}"
            )
        actual = _sha256(onnx_path)
        if manifest.get("sha256") != actual:
            raise ModelError(
                f"{path.name}/{name}: sha256 {actual[:12]} does not match its manifest"
            )
        models[name] = ModelFile(name, onnx_path, manifest)
    return ModelVersion(path.name, path, models)


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions_dir = root / "versions"

    @property
    def active_file(self) -> Path:
        return self.root / ACTIVE_FILE

    def ensure_installed(self) -> None:
        """Install the shipped versions if missing; activate the newest if none is active."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        shipped = shipped_versions_dir()
        if shipped.is_dir():
            for source in sorted(p for p in shipped.iterdir() if p.is_dir()):
                target = self.versions_dir / source.name
                if not target.exists():
                    # Per process: the worker and an API process may install at once.
                    staging = self.versions_dir / f".{source.name}.{os.getpid()}.installing"
                    shutil.rmtree(staging, ignore_errors=True)
                    shutil.copytree(source, staging)
                    try:
                        staging.rename(target)
                    except OSError:
                        if not target.is_dir():
                            raise
                        shutil.rmtree(staging, ignore_errors=True)  # the other one won
                    else:
                        log.info("installed shipped model version %s", source.name)
        if self._state().get("active") is None:
            available = self.versions()
            if not available:
                raise ModelError(
                    f"no model versions in {self.versions_dir}; run `deltaomega train`"
                )
            self.activate(available[-1])

    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.versions_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def load(self, version: str) -> ModelVersion:
        return load_version(self.versions_dir / version)

    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.active_file.read_text())
        except FileNotFoundError:
            return {"active": None, "history": []}
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.active_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(temporary, self.active_file)

    def active(self) -> str | None:
        active = self._state().get("active")
        return None if active is None else str(active)

    def activate(self, version: str) -> ModelVersion:
        loaded = self.load(version)  # refuse before switching
        state = self._state()
        current = state.get("active")
        if current == version:
            return loaded
        history = list(state.get("history", []))
        if current is not None:
            history.append(current)
        self._write_state({"active": version, "history": history})
        log.info("model version %s is active (was %s)", version, current)
        return loaded

    def rollback(self) -> str:
        state = self._state()
        history = list(state.get("history", []))
        if not history:
            raise ModelError("no earlier version to roll back to")
        previous = history.pop()
        self.load(previous)
        self._write_state({"active": previous, "history": history})
        log.info("rolled back to model version %s (was %s)", previous, state.get("active"))
        return str(previous)

    def install(self, source: Path) -> str:
        """Copy a trained version directory (e.g. from ``deltaomega train --out``) in."""
        loaded = load_version(source)
        target = self.versions_dir / loaded.version
        if not target.exists():
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, target)
        return loaded.version
