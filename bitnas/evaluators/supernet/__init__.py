"""The weight-sharing supernet evaluator (``[supernet]`` in a study file).

One supernet holds the largest architecture of a space; every architecture of the space is a
sub-network of it (first layers of each stage, first channels, centre of the kernel, any
weight/activation bits and timesteps). ``config`` and ``evaluator`` load without torch; the
modules that build and train (``model``, ``train``) import it.
"""

from __future__ import annotations

from bitnas.evaluators.supernet.config import SupernetSpec
from bitnas.evaluators.supernet.evaluator import SupernetEvaluator

__all__ = ["SupernetEvaluator", "SupernetSpec"]
