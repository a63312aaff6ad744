"""Reading study files (TOML) into a validated StudySpec."""

from __future__ import annotations

import tomllib
from pathlib import Path

from bitnas.errors import SpecError
from bitnas.studies.spec import StudySpec

__all__ = ["load_spec"]


def load_spec(path: str | Path) -> StudySpec:
    """Load and validate the study file at ``path``; every problem is a SpecError naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"no study file at {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read study file {p}: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{p} is not valid TOML: {e}") from None
    return StudySpec.from_dict(data, source=str(p))
