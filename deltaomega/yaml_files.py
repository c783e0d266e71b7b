"""Settings files in YAML (policies, alert routing), read into pydantic models with errors
that name the file and the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from deltaomega.errors import ConfigurationError

M = TypeVar("M", bound=BaseModel)


def load_model(
    path: Path, model: type[M], what: str, prepare: Callable[[Any], Any] | None = None
) -> M:
    """``path`` validated as ``model`` (after ``prepare``, if given, on the parsed YAML); a
    ConfigurationError ("<what> <path>: <where>: why") when it cannot be read, is not YAML
    or is not valid."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{what} {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{what} {path}: not YAML ({_first_line(exc)})") from exc
    raw = raw if raw is not None else {}
    if prepare is not None:
        raw = prepare(raw)
    try:
        return model.model_validate(raw)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise ConfigurationError(f"{what} {path}: {where}: {error['msg']}") from exc


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
