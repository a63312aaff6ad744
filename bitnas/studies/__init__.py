"""Study files, the Python API for launch scripts, and the command line."""

from __future__ import annotations

from bitnas.studies.api import StudyResult, open_result, run
from bitnas.studies.loader import load_spec
from bitnas.studies.spec import StudySection, StudySpec

__all__ = ["StudyResult", "StudySection", "StudySpec", "load_spec", "open_result", "run"]
