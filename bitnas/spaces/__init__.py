"""Search spaces, the resolved Architecture, the cost model and the budget.

Pure Python: nothing here imports torch, optuna or ray at module level.
"""

from __future__ import annotations

from bitnas._registry import Registry
from bitnas.spaces._base import SearchSpace
from bitnas.spaces.architecture import FULL_PRECISION, Architecture, LayerSpec, NeuronSpec
from bitnas.spaces.budget import Budget
from bitnas.spaces.choosers import Chooser, ParamsChooser, TrialChooser
from bitnas.spaces.cnn import CNN1DSpace, CNN2DSpace
from bitnas.spaces.cost import (
    COST_MODEL,
    CostBreakdown,
    bitops,
    cost_breakdown,
    event_bitops,
    in_bits,
    layer_bitops,
    macs,
    params,
    weight_bits,
)
from bitnas.spaces.mlp import MLPSpace
from bitnas.spaces.resnet import ResNetSpace

#: Model family name -> SearchSpace class.
SPACES: Registry[type[SearchSpace]] = Registry("model family")
for _cls in (MLPSpace, CNN1DSpace, CNN2DSpace, ResNetSpace):
    SPACES.add(_cls.family, _cls)

__all__ = [
    "COST_MODEL",
    "FULL_PRECISION",
    "SPACES",
    "Architecture",
    "Budget",
    "CNN1DSpace",
    "CNN2DSpace",
    "ResNetSpace",
    "Chooser",
    "CostBreakdown",
    "LayerSpec",
    "MLPSpace",
    "NeuronSpec",
    "ParamsChooser",
    "SearchSpace",
    "TrialChooser",
    "bitops",
    "cost_breakdown",
    "event_bitops",
    "in_bits",
    "layer_bitops",
    "macs",
    "params",
    "weight_bits",
]
