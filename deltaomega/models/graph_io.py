"""The models' ONNX input and output names and their dynamic axes: shared by the export
(torch) and serving (onnxruntime only), so serving never imports torch."""

from __future__ import annotations

#: ONNX input and output names per model (serving feeds and reads these).
IO_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "voice_state_predictor": (("history",), ("mean", "std")),
    "conflict_predictor": (("nodes", "edges", "mask"), ("probability",)),
    "emergence_detector": (
        ("system",),
        ("probability", "type_probability", "reconstruction_error"),
    ),
    "pattern_classifier": (("matrices",), ("class_probability", "complexity", "novelty")),
}
#: Axes that vary at serving time, per input and output.
DYNAMIC_AXES: dict[str, dict[str, dict[int, str]]] = {
    "voice_state_predictor": {
        "history": {0: "voices"},
        "mean": {0: "voices"},
        "std": {0: "voices"},
    },
    "conflict_predictor": {
        "nodes": {0: "graphs", 1: "voices"},
        "edges": {0: "graphs", 1: "voices", 2: "voices"},
        "mask": {0: "graphs", 1: "voices"},
        "probability": {0: "graphs", 1: "voices", 2: "voices"},
    },
    "emergence_detector": {
        "system": {0: "ticks"},
        "probability": {0: "ticks"},
        "type_probability": {0: "ticks"},
        "reconstruction_error": {0: "ticks"},
    },
    "pattern_classifier": {
        "matrices": {0: "ticks"},
        "class_probability": {0: "ticks"},
        "complexity": {0: "ticks"},
        "novelty": {0: "ticks"},
    },
}
