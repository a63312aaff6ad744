from __future__ import annotations

import re

import matplotlib.image
import optuna
import pytest

from bitnas.search import Problem, optimize
from bitnas.spaces import Budget
from bitnas.spaces.allocation import ALLOCATIONS, ORDER, allocation_of, restrict
from bitnas.spaces.architecture import Architecture
from bitnas.studies.cli import main
from bitnas.studies.reporting import (
    Record,
    Source,
    _source,
    hypervolume_history,
    iso_budget,
    knee,
    pareto_front,
    write_report,
)
from tests.conftest import SpyEvaluator, small_space

SPACE = small_space(abits=(1, 2, 4), timesteps=(1, 2, 4), depth=(1, 3))
BUDGET = 120_000


def rec(number: int, val: float, bitops: float, **kw: object) -> Record:
    base: dict[str, object] = dict(
        study="s",
        allocation="binary_spikes",
        test=None,
        event_bitops=None,
        timesteps=2,
        abits=(1,),
        densities=None,
        feasible=True,
        summary="",
        key=f"k{number}",
    )
    base.update(kw)
    return Record(number=number, val=val, bitops=bitops, **base)  # type: ignore[arg-type]


def test_front_drops_dominated_infeasible_and_repeated_architectures():
    recs = [
        rec(0, 0.5, 100),
        rec(1, 0.4, 200),
        rec(2, 0.9, 50, feasible=False),
        rec(3, 0.7, 1000),
        rec(4, 0.7, 1000, key="k3"),
    ]
    assert [r.number for r in pareto_front(recs)] == [0, 3]


def test_knee_is_the_point_farthest_above_the_chord():
    # log10 costs 1..4 scale to x = 0, 1/3, 2/3, 1; accuracies to y = 0, 0.9, 0.95, 1:
    # distance above the chord y = x is largest at x = 1/3
    front = [rec(0, 0.0, 10), rec(1, 0.9, 100), rec(2, 0.95, 1000), rec(3, 1.0, 10_000)]
    k = knee(front)
    assert k is not None and k.number == 1
    assert knee(front[:2]) is None
    assert knee([rec(0, 0.1, 10), rec(1, 0.2, 100), rec(2, 0.3, 1000)]) is None  # a straight line


def test_hypervolume_history_matches_hand_computed_areas():
    # log cost axis from 1 (x = 0) to the budget 10_000 (x = 1): 100 -> 0.5, 1000 -> 0.75
    recs = [
        rec(0, 0.5, 100),  # box 0.5 x (1 - 0.5) = 0.25
        rec(1, 0.9, 50_000, feasible=False),  # ignored
        rec(2, 0.8, 1000),  # adds (0.8 - 0.5) x (1 - 0.75) = 0.075
        rec(3, 0.6, 2000),  # dominated: nothing
    ]
    hist = hypervolume_history(recs, 10_000, 1)
    assert [n for n, _ in hist] == [0, 1, 2, 3]
    assert [round(h, 10) for _, h in hist] == [0.25, 0.25, 0.325, 0.325]


def test_hypervolume_history_equals_the_hypervolume_of_every_trial_so_far():
    # the history keeps only the front so far; it must equal the volume of all points
    import random

    from bitnas.search.pareto import front_hypervolume

    rng = random.Random(3)
    recs = [
        rec(i, rng.random(), rng.choice([10, 50, 100, 500, 2000, 9000, 20_000]),
            feasible=rng.random() > 0.2)
        for i in range(120)
    ]  # fmt: skip
    hist = hypervolume_history(recs, 10_000, 1)
    for i, (n, h) in enumerate(hist):
        done = [r for r in recs[: i + 1] if r.feasible]
        want = front_hypervolume([r.val for r in done], [r.bitops for r in done],
                                 budget=10_000, cost_min=1) if done else 0.0  # fmt: skip
        assert n == i and abs(h - want) < 1e-12


def test_iso_budget_takes_the_best_of_each_family_within_each_budget():
    src = Source(
        study=optuna.create_study(study_name="plain"),
        records=(
            rec(0, 0.6, 100),
            rec(1, 0.8, 300),
            rec(2, 0.7, 100, allocation="multibit_spikes"),
            rec(3, 0.99, 150, feasible=False),
        ),
    )
    cells = {(c.allocation, c.budget): c for c in iso_budget([src], [200, 400])}
    assert cells[("binary_spikes", 200)].best[0].number == 0  # type: ignore[union-attr]
    assert cells[("binary_spikes", 400)].best[0].number == 1  # type: ignore[union-attr]
    assert cells[("binary_spikes", 200)].n == (1,)
    assert cells[("multibit_spikes", 400)].mean_val == 0.7
    assert cells[("multibit_single_step", 400)].mean_val is None


def synthetic_study(name: str, space, budget: int, trials: int = 14) -> optuna.Study:
    problem = Problem(space=space, evaluator=SpyEvaluator(), budget=Budget(budget))
    study = optuna.create_study(
        study_name=name,
        directions=problem.directions,
        sampler=optuna.samplers.RandomSampler(seed=1),
    )
    study.set_metric_names(problem.metric_names)
    optimize(study, problem, trials, progress=False)
    return study


def iso_rows(md: str) -> dict[str, list[float | None]]:
    rows = {}
    for a in ORDER:
        line = next(x for x in md.splitlines() if x.startswith(f"| {ALLOCATIONS.get(a).label} |"))
        cells = line.strip("|").split("|")[1:]
        rows[a] = [
            float(m.group(1)) if (m := re.match(r"\s*(?:\*\*)?([0-9]\.[0-9]+)", c)) else None
            for c in cells
        ]
    return rows


def best_in(study: optuna.Study, family: str, budget: float) -> float | None:
    vals = []
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        arch = Architecture.from_json(t.user_attrs["architecture"])
        if (
            allocation_of(arch.timesteps, arch.abits) == family
            and t.values[1] <= budget
            and all(v <= 0 for v in t.constraints.values())
        ):
            vals.append(t.values[0])
    return max(vals) if vals else None


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_report_of_one_study_matches_its_trials(tmp_path):
    study = synthetic_study("plain", SPACE, BUDGET, trials=30)
    md_path = write_report([_source(study, BUDGET)], tmp_path / "r", title="t")
    md = md_path.read_text()
    for f in ("pareto.png", "density.png", "hypervolume.png"):
        assert_png(tmp_path / "r" / f)
        assert f"]({f})" in md
    budgets = [BUDGET / 4, BUDGET / 2, BUDGET]
    rows = iso_rows(md)
    table = md.split("## Iso-budget")[1].split("\n\n")[2]
    for col in range(len(budgets)):  # one bold cell per budget: its winner
        bold = [
            ln.strip("|").split("|")[1 + col].strip().startswith("**")
            for ln in table.splitlines()[2:]
        ]
        assert sum(bold) == 1, table
    seen = 0
    for a in ORDER:
        want = [best_in(study, a, b) for b in budgets]
        assert rows[a] == [None if w is None else round(w, 3) for w in want]
        seen += sum(w is not None for w in want)
    assert seen >= 4  # the synthetic study fills most cells, so the comparison is not vacuous
    # every front trial is listed, with its event-driven saving (Spy densities are 0.25)
    front_numbers = {int(m) for m in re.findall(r"^\| #(\d+)", md.split("## Knee")[0], re.M)}
    assert front_numbers
    assert "| 0.25 | 75% |" in md.split("## Event-driven")[1]
    assert "0.25 / 0.25" in md


def test_report_of_a_sweep_compares_families_at_each_budget(tmp_path):
    sources = []
    for b in (40_000, BUDGET):
        for a in ORDER:
            s = synthetic_study(f"sw/{a}/{b}", restrict(SPACE, a), b, trials=6)
            sources.append(_source(s, float(b), allocation=a, seed=0))
    md = write_report(sources, tmp_path, title="sweep", budgets=[40_000, BUDGET]).read_text()
    rows = iso_rows(md)
    for s in sources:
        col = [40_000, BUDGET].index(s.budget)
        assert rows[s.allocation][col] == round(best_in(s.study, s.allocation, s.budget), 3)
        assert f"n={len(s.records)})" in md
    answer = md.split("## Studies")[0]
    assert answer.count("BitOps: **") == 2  # one verdict per budget
    assert_png(tmp_path / "hypervolume.png")


@pytest.mark.slow
def test_bitnas_report_writes_a_report_for_a_stored_study(tmp_path, capsys):
    from tests.conftest import small_study_toml

    path = tmp_path / "s.toml"
    path.write_text(
        small_study_toml("s", bitops="60_000", epochs=1, storage=f"sqlite:///{tmp_path}/s.db")
    )
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "no study storage at" in capsys.readouterr().err
    assert main(["run", str(path), "--no-progress"]) == 0
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.startswith("# bitnas report: study 's'")
    assert "| `s` | all | 60k | 0 |" in md  # the study's seed, 0, is shown (was blank)
    assert_png(tmp_path / "out" / "pareto.png")
    # real trained trials store per-plane densities: the bit-plane section reads them
    planes = md.split("## Bit density per layer and bit plane")[1]
    assert re.search(r"^\| #\d+ \| input \| (\d+ / ){7}\d+ \| [0-9.]+% \| [0-9.]+x \|$", planes, re.M)
    assert "**Against the 50% premise.** Hidden-layer inputs" in planes


def test_only_the_winning_family_of_each_budget_is_bold():
    from bitnas.studies.reporting import IsoCell, _iso_text, _winners

    cells = [
        IsoCell("binary_spikes", 1e6, (rec(1, 0.80, 9e5),), (5,)),
        IsoCell("single_step", 1e6, (rec(2, 0.90, 8e5),), (5,)),
        IsoCell("binary_spikes", 2e6, (rec(3, 0.95, 1.9e6),), (5,)),
        IsoCell("single_step", 2e6, (None,), (0,)),
    ]
    wins = _winners(cells)
    assert wins == {("single_step", 1e6), ("binary_spikes", 2e6)}
    texts = [_iso_text(c, (c.allocation, c.budget) in wins) for c in cells]
    assert [t.startswith("**") for t in texts] == [False, True, True, False]


def test_studies_table_shows_seed_zero_of_a_plain_study(tmp_path):
    """A plain study's seed is the one it was run with, 0 included (it was left blank)."""
    from bitnas.studies.reporting import _stored_seed

    study = synthetic_study("plain0", SPACE, BUDGET, trials=4)
    assert _stored_seed(study) is None  # not run by bitnas: nothing recorded
    study.set_user_attr("bitnas_spec", {"study": {"seed": 0}})
    assert _stored_seed(study) == 0
    md = write_report([_source(study, BUDGET, seed=0)], tmp_path, title="t").read_text()
    assert "| `plain0` | all | 120k | 0 | 4 | 4 |" in md


def test_density_plot_has_integer_layer_ticks_and_distinct_colours():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bitnas.studies.reporting import density_figure

    front = [rec(i, 0.5 + i / 100, 1e4 * (i + 1), densities=(0.5, 0.3, 0.2, 0.4))
             for i in range(12)]  # fmt: skip
    fig = density_figure(front, {"s": "s"})
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if 0 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)  # no 0.5 between layers
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("#")]
    assert len(lines) == 12
    colours = [matplotlib.colors.to_hex(ln.get_color()) for ln in lines]
    assert len(set(colours[:10])) == 10  # ten distinct hues before any repeats
    # past ten, a hue comes back with another marker: every line is still told apart
    assert len({(c, ln.get_marker()) for c, ln in zip(colours, lines, strict=True)}) == 12
    # the ten hues are tab10's distinct ones, not tab20's light/dark pairs of one hue
    tab10 = [matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab10").colors]
    assert colours[:10] == tab10
    plt.close(fig)
