from __future__ import annotations

from bitnas.studies.bitplanes import bitplane_section, plane_rows
from bitnas.studies.reporting import _md_table


def test_plane_rows_and_densities():
    rows = plane_rows("#3", {"plane_densities": [[0.5, 0.5], [0.3, 0.1], []]})
    assert [(r.layer, r.planes) for r in rows] == [(0, (0.5, 0.5)), (1, (0.3, 0.1))]
    assert abs(rows[1].density - 0.2) < 1e-12
    assert plane_rows("#4", {}) == []


def test_sparse_hidden_planes_contradict_the_50_percent_premise():
    trials = [
        ("#1", {"plane_densities": [[0.5, 0.48], [0.3, 0.1], [0.2, 0.0]]}),
        ("#2", {"plane_densities": [[0.5, 0.5], [0.2]]}),
    ]
    text = "\n".join(bitplane_section(trials, _md_table))
    assert "| #1 | 1 | 30 / 10 | 20.0% | 5.0x |" in text
    assert "| #1 | 2 | 20 / 0 | 10.0% | 10.0x |" in text
    assert "| #2 | input | 50 / 50 | 50.0% | 2.0x |" in text
    # hidden mean (0.2 + 0.1 + 0.2) / 3 = 16.7%: a 6x saving, the premise does not hold
    assert "carry 16.7% 1-bits on average (range 10.0-20.0%)" in text
    assert "would save 6.0x on them (range 5.0x-10.0x)" in text
    assert "the premise does not hold here." in text
    assert "In 2 of 2 multi-bit inputs the most significant plane is sparser" in text


def test_dense_hidden_planes_keep_the_premise():
    trials = [("#1", {"plane_densities": [[0.5], [0.5, 0.45]]})]
    text = "\n".join(bitplane_section(trials, _md_table))
    assert "the premise holds here (within 10 points of 50%)." in text
    assert "No trial" in "\n".join(bitplane_section([("#1", {})], _md_table))
