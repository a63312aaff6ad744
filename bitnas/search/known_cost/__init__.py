"""The known-cost sampler: cost is an exact function, only accuracy is modelled.

Generic multi-objective samplers (TPE, NSGA-II/III, GP) treat BitOps as a black-box objective
to be learnt from trials, and propose over-budget or already-trained points. Yet the cost of an
architecture is known exactly before training. This sampler keeps every candidate within the
budget (enumerated for small spaces, generated around the front and repaired to the budget for
large ones), models the accuracy objective alone with a Gaussian process on robustly scaled
values, and proposes the candidate with the largest expected hypervolume improvement of the
(accuracy, cost) front beyond the model's noise.

It is a true ``optuna.samplers.BaseSampler``: pass it, with a cost function of a trial's
parameters and a budget, to any Optuna study over a finite categorical/integer space::

    sampler = KnownCostSampler(cost=lambda p: p["width"] * p["bits"], budget=512,
                               search_space={"width": IntDistribution(8, 64, step=8),
                                             "bits": CategoricalDistribution([2, 4, 8])})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

Parts: ``_candidates`` (the space interface, moves, crossover, budget repair), ``_pool``
(what an ask scores), ``_surrogate`` (the model), ``_acquisition`` (EHVI, the warp),
``_sampler`` (Optuna's interface).
"""

from bitnas.search.known_cost._acquisition import (
    Warp,
    expected_improvement_2d,
    expected_improvement_warped,
    front_segments,
)
from bitnas.search.known_cost._candidates import CandidateSpace, ProductSpace, key_of
from bitnas.search.known_cost._sampler import CHOSEN_ATTR, NOT_RUN_ATTRS, KnownCostSampler
from bitnas.search.known_cost._surrogate import Surrogate

_key = key_of  # the name the bitnas adapter and older callers use

__all__ = [
    "CHOSEN_ATTR",
    "NOT_RUN_ATTRS",
    "CandidateSpace",
    "KnownCostSampler",
    "ProductSpace",
    "Surrogate",
    "Warp",
    "expected_improvement_2d",
    "expected_improvement_warped",
    "front_segments",
    "key_of",
]
