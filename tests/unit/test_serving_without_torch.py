"""Serving needs onnxruntime, not torch (the `train` extra): `make demo` installs without it,
so nothing on the service's path may import it."""

from __future__ import annotations

import subprocess
import sys

BLOCK_TORCH = "import sys; sys.modules['torch'] = None; "


def test_the_service_and_the_model_process_import_without_torch() -> None:
    modules = (
        "deltaomega.cli",
        "deltaomega.service",
        "deltaomega.streams.model_process",
        "deltaomega.api.pattern_analysis",
        "deltaomega.control.app",
    )
    code = BLOCK_TORCH + "".join(f"import {m}; " for m in modules) + "print('ok')"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout, done.stderr[-2000:]) == (0, "ok\n", "")
