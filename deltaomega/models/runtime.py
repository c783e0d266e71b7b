"""onnxruntime serving: sessions made once per version, CUDA first where it exists.

The worker's model process calls :meth:`ModelRuntime.run` from one thread; :meth:`refresh`
swaps in a newly activated version (sessions are built before the swap, so a tick never
sees a half-loaded version, and a version that fails its checks is refused and logged
while the old one keeps serving).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from deltaomega.errors import ModelError
from deltaomega.metrics import INFERENCE_BATCH, INFERENCE_SECONDS, MODEL_VERSION_INFO
from deltaomega.models.graph_io import IO_NAMES
from deltaomega.models.registry import ModelRegistry, ModelVersion

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


#: (model, seconds, rows) of one batched call.
Observe = Callable[[str, float, int], None]

#: model → its inputs' symbolic dimension (``voices``, ``graphs``…) → size to warm up at.
WarmUp = dict[str, dict[str, int]]


def observe_call(model: str, seconds: float, rows: int) -> None:
    INFERENCE_SECONDS.labels(model).observe(seconds)
    INFERENCE_BATCH.labels(model).observe(rows)


def mark_serving(previous: str | None, current: str) -> None:
    if previous is not None and previous != current:
        MODEL_VERSION_INFO.labels(previous).set(0)
    MODEL_VERSION_INFO.labels(current).set(1)


def choose_providers(available: list[str] | None = None) -> list[str]:
    """CUDA first when onnxruntime-gpu sees a GPU, CPU always as the fallback."""
    available = ort.get_available_providers() if available is None else available
    return [CUDA, CPU] if CUDA in available else [CPU]


def _warm(session: ort.InferenceSession, dims: dict[str, int]) -> None:
    """Two calls on zeros, each symbolic dimension at its size in ``dims`` (else 1): the
    first plans the memory for the shape, the second allocates the arena it then reuses
    for every shape up to that size."""
    feeds = {
        i.name: np.zeros(
            [d if isinstance(d, int) else dims.get(d, 1) for d in i.shape], dtype=np.float32
        )
        for i in session.get_inputs()
    }
    session.run(None, feeds)
    session.run(None, feeds)


@dataclass
class LoadedVersion:
    version: ModelVersion
    sessions: dict[str, ort.InferenceSession]

    @property
    def name(self) -> str:
        return self.version.version


class ModelRuntime:
    def __init__(
        self,
        registry: ModelRegistry,
        threads: int = 1,
        observe: Observe = observe_call,
        warm_up: WarmUp | None = None,
    ) -> None:
        self.registry = registry
        self.threads = threads
        #: Sees every batched call (Prometheus here; the model process reports them).
        self.observe = observe
        #: Each version's sessions run at these sizes before they serve: a session's first
        #: calls at a large shape plan and grow its memory arena, page by page; the first
        #: 10,000-voice ticks of a model process took up to 1.4 s of CPU, later ones 0.5 s.
        self.warm_up = warm_up or {}
        self.providers = choose_providers()
        self._lock = threading.Lock()
        self._loaded: LoadedVersion | None = None
        self._refused: tuple[str, int] | None = None
        log.info("onnxruntime %s, execution providers %s", ort.__version__, self.providers)

    def _session(self, path: str) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # The worker's consumers need the cores the pool's idle threads would spin on.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(path, sess_options=options, providers=self.providers)

    def load(self, version: str) -> LoadedVersion:
        """Check and open every model of ``version``; raises :class:`ModelError`."""
        checked = self.registry.load(version)
        sessions = {}
        for name, model in checked.models.items():
            try:
                session = self._session(str(model.path))
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own bare types
                raise ModelError(f"{version}/{name}: onnxruntime cannot load it: {exc}") from exc
            expected_inputs, expected_outputs = IO_NAMES[name]
            inputs = tuple(i.name for i in session.get_inputs())
            outputs = tuple(o.name for o in session.get_outputs())
            if inputs != expected_inputs or outputs != expected_outputs:
                raise ModelError(
                    f"{version}/{name}: graph has inputs {inputs} and outputs {outputs}, "
                    f"serving needs {expected_inputs} and {expected_outputs}"
                )
            sessions[name] = session
        for name, dims in self.warm_up.items():
            if name not in sessions:
                continue
            try:
                _warm(sessions[name], dims)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own bare types
                raise ModelError(f"{version}/{name}: fails on zeros of {dims}: {exc}") from exc
        return LoadedVersion(checked, sessions)

    def start(self) -> LoadedVersion:
        self.registry.ensure_installed()
        active = self.registry.active()
        if active is None:
            raise ModelError("no active model version")
        loaded = self.load(active)
        self._swap(loaded)
        return loaded

    def _swap(self, loaded: LoadedVersion) -> None:
        with self._lock:
            previous, self._loaded = self._loaded, loaded
        mark_serving(previous.name if previous is not None else None, loaded.name)
        log.info("serving model version %s", loaded.name)

    @property
    def current(self) -> LoadedVersion:
        with self._lock:
            if self._loaded is None:
                raise ModelError("the model runtime has not been started")
            return self._loaded

    def refresh(self) -> bool:
        """Load the registry's active version if it changed; True when it was swapped in."""
        active = self.registry.active()
        if active is None:
            return False
        marker = (active, self.registry.active_file.stat().st_mtime_ns)
        if marker == self._refused:
            return False
        if self._loaded is not None and active == self._loaded.name:
            return False
        try:
            loaded = self.load(active)
        except ModelError as exc:
            log.error("refusing model version %s: %s", active, exc)
            self._refused = marker  # said once, until active.json is written again
            return False
        self._refused = None
        self._swap(loaded)
        return True

    def run(
        self, name: str, feeds: dict[str, np.ndarray], loaded: LoadedVersion | None = None
    ) -> list[np.ndarray]:
        """One batched call; its latency and batch size go to ``observe``."""
        loaded = loaded or self.current
        session = loaded.sessions[name]
        first = next(iter(feeds.values()))
        started = time.perf_counter()
        outputs = session.run(
            None, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()}
        )
        self.observe(
            name,
            time.perf_counter() - started,
            first.shape[0] * (first.shape[1] if name == "conflict_predictor" else 1),
        )
        return [np.asarray(o) for o in outputs]
