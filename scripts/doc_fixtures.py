"""What ``scripts/regenerate_docs.py --check`` runs instead of the repository's study files
(``FIXTURES``), and its ``bitnas cost`` draws: the cheap version of every documented command."""

from __future__ import annotations

#: ``--check``'s study files: (old, new) replacements of the repository's, each of which must
#: apply (a study file changed under them is noticed, not silently run at full size).
FIXTURES: dict[str, tuple[tuple[str, str], ...]] = {
    "studies/digits.toml": (
        ("\nepochs = 30\n", "\nepochs = 1\n"),
        ("\ntrials = 60\n", "\ntrials = 8\n"),
        ("\ndepth = [1, 3] ", "\ndepth = [1, 2] "),  # a smaller space: `cost` counts it fast
    ),
    # the sweep: 6 cells of 2 trials, one budget (its cells' names keep their shape)
    "studies/spikes_vs_bits.toml": (
        ("\nepochs = 6\n", "\nepochs = 1\n"),
        ("\ntrials = 10 ", "\ntrials = 2 "),
        ("\nbudgets = [500_000, 1_000_000, 2_000_000]\n", "\nbudgets = [500_000]\n"),
    ),
    "bench/tables/digits_mlp.toml": (  # README's `bench-table` line: 27 architectures, not 324
        ("\nepochs = 20\n", "\nepochs = 1\n"),
        ("\ndepth = [1, 3]\n", "\ndepth = [1, 1]\n"),
        ("\nwidth = [16, 32, 64, 128]\n", "\nwidth = [16]\n"),
    ),
    "bench/spaces/tiny_mlp.toml": (("\nepochs = 10\n", "\nepochs = 1\n"),),
    "bench/spaces/tiny_mlp_table.toml": (("\nepochs = 10\n", "\nepochs = 1\n"),),
}
#: ``--check``'s ``bitnas cost`` draws for a space too large to enumerate.
CHECK_SAMPLES = 2_000
