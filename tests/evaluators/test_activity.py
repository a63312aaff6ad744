from __future__ import annotations

import torch

from bitnas.evaluators.activity import BitDensityMeter, popcount


def test_popcount_of_integer_codes():
    codes = torch.tensor([0.0, 1.0, 2.0, 3.0, 7.0, 15.0, 255.0])
    assert popcount(codes, 8).tolist() == [0, 1, 1, 2, 3, 4, 8]


def test_popcount_of_float32_bit_pattern():
    # 1.0f is 0x3F800000: seven 1-bits; 0.0f has none; -2.0f is 0xC0000000: two
    assert popcount(torch.tensor([1.0, 0.0, -2.0]), 32).tolist() == [7, 0, 2]


def test_density_meter_accumulates_over_batches():
    m = BitDensityMeter(2)
    m.add(0, torch.tensor([[3.0, 0.0]]), 2)  # 2 ones of 4 bits
    m.add(0, torch.tensor([[1.0, 1.0]]), 2)  # 2 ones of 4 bits
    m.add(1, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), 1)
    assert m.densities() == (0.5, 0.25)
    assert m.nonzero_rates() == (0.75, 0.25)
    # plane 0 (LSB) is 1 in 3 of 4 codes, plane 1 in 1 of 4
    assert m.plane_densities() == ((0.75, 0.25), (0.25,))


def test_per_step_and_per_plane_densities():
    m = BitDensityMeter(1)
    codes = torch.tensor([[[0.0, 0.0]], [[3.0, 1.0]], [[2.0, 2.0]]])  # 3 steps, batch 1, 2 units
    m.add(0, codes, 2)
    assert m.step_densities() == ((0.0, 0.75, 0.5),)
    assert m.plane_densities() == ((2 / 6, 3 / 6),)
    assert m.densities() == (5 / 12,)
    assert m.nonzero_rates() == (4 / 6,)
