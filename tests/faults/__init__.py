"""Fault scenarios: workers as processes, killed, cut off, or fed hostile input."""

import pytest

# The harness's checks are plain asserts: a failure must say what differed.
pytest.register_assert_rewrite("tests.faults.harness")
