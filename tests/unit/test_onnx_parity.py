"""Every net exports to ONNX with its dynamic axes and matches torch on fresh inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from deltaomega.models.export import PARITY_TOLERANCE, export_onnx, parity_error, random_inputs
from deltaomega.models.features import MODEL_NAMES
from deltaomega.models.graph_io import IO_NAMES
from deltaomega.models.nets import build


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_onnx_matches_torch(name: str, tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = build(name).eval()
    data = export_onnx(name, model, tmp_path / f"{name}.onnx")
    assert (tmp_path / f"{name}.onnx").read_bytes() == data
    rng = np.random.default_rng(11)
    # other batch sizes (and graph sizes) than the export example used
    for rows in (1, 7, 33):
        error = parity_error(name, model, data, random_inputs(name, rng, rows=rows))
        assert error < PARITY_TOLERANCE, f"{name}: {error:.2e} at {rows} rows"
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inputs, outputs = IO_NAMES[name]
    assert tuple(i.name for i in session.get_inputs()) == inputs
    assert tuple(o.name for o in session.get_outputs()) == outputs
    assert isinstance(session.get_inputs()[0].shape[0], str)  # the batch axis is dynamic
