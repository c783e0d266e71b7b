"""ONNX export with a dynamic batch axis, and the parity check against torch."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from deltaomega.models.features import (
    EDGE_CHANNELS,
    PATTERN_CHANNELS,
    PATTERN_VOICES,
    PATTERN_WINDOWS,
    SEQUENCE_WINDOWS,
    SYSTEM_FEATURES,
    VOICE_FEATURES,
)
from deltaomega.models.graph_io import DYNAMIC_AXES, IO_NAMES

OPSET = 17
#: Largest |onnxruntime − torch| accepted on any output.
PARITY_TOLERANCE = 1e-4


def random_inputs(name: str, rng: np.random.Generator, rows: int = 5) -> dict[str, np.ndarray]:
    """Fresh inputs in the ranges the feature builder produces (not the export example)."""
    if name == "voice_state_predictor":
        return {"history": rng.uniform(-1, 1, (rows, SEQUENCE_WINDOWS, len(VOICE_FEATURES)))}
    if name == "conflict_predictor":
        n = int(rng.integers(3, 12))
        shape = (rows, n, n, EDGE_CHANNELS)
        edges = rng.uniform(-0.5, 1, shape) * (rng.random(shape) < 0.3)
        mask = (rng.random((rows, n)) < 0.9).astype(np.float64)
        return {
            "nodes": rng.uniform(-1, 1, (rows, n, len(VOICE_FEATURES))),
            "edges": edges,
            "mask": mask,
        }
    if name == "emergence_detector":
        return {"system": rng.normal(0, 1, (rows, len(SYSTEM_FEATURES)))}
    shape = (rows, PATTERN_WINDOWS * len(PATTERN_CHANNELS), PATTERN_VOICES, PATTERN_VOICES)
    return {"matrices": rng.uniform(0, 1, shape)}


def export_onnx(name: str, model: nn.Module, path: Path) -> bytes:
    """Write ``model`` as ONNX to ``path``; returns the bytes written."""
    model.eval()
    example = random_inputs(name, np.random.default_rng(0), rows=2)
    inputs, outputs = IO_NAMES[name]
    args = tuple(torch.from_numpy(example[i].astype(np.float32)) for i in inputs)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on LSTM batch sizes and such
        torch.onnx.export(
            model,
            args,
            buffer,  # type: ignore[arg-type]  # file-like objects are accepted
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=DYNAMIC_AXES[name],
            opset_version=OPSET,
            dynamo=False,
        )
    data = buffer.getvalue()
    path.write_bytes(data)
    return data


def parity_error(
    name: str, model: nn.Module, onnx_bytes: bytes, inputs: dict[str, np.ndarray]
) -> float:
    """Largest absolute difference between torch and onnxruntime over all outputs."""
    model.eval()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names, _ = IO_NAMES[name]
    feed = {n: inputs[n].astype(np.float32) for n in names}
    got = session.run(None, feed)
    with torch.no_grad():
        expected = model(*(torch.from_numpy(feed[n]) for n in names))
    if isinstance(expected, torch.Tensor):
        expected = (expected,)
    return max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected, strict=True))
