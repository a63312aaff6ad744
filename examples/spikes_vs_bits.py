"""T binary spikes against one multi-bit step, at equal hidden-layer BitOps, on MNIST-1D.

    python examples/spikes_vs_bits.py [--seeds 3] [--epochs 20]

Trains the same cnn1d (3 stages of 32 channels, kernel 5, 4-bit weights, 8-bit first and last
layers) with different activation bits and timesteps, several seeds each, and prints test
accuracy (mean and spread), dense and event BitOps, and each layer's measured input bit density.
Pairs with equal hidden BitOps: T=4 x 1 bit vs T=1 x 4 bits vs T=2 x 2 bits; T=2 x 1 bit vs
T=1 x 2 bits. Uses the evaluator directly, without a study.
"""

from __future__ import annotations

import argparse
import statistics

from bitnas.evaluators import DataSpec, TrainedEvaluator, TrainSpec
from bitnas.spaces import CNN1DSpace, bitops, event_bitops

VARIANTS = [(4, 1), (1, 4), (2, 2), (2, 1), (1, 2)]  # (timesteps, abits)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    ev = TrainedEvaluator(
        data=DataSpec(name="mnist1d"),
        train=TrainSpec(epochs=args.epochs, optimizer="adamw", weight_decay=1e-4),
    )
    print(f"{'T x abits':10s} {'levels':>6s} {'dense BitOps':>13s} {'event BitOps':>13s} "
          f"{'test acc (mean ± sd)':>22s}  densities per layer input")  # fmt: skip
    for t, abits in VARIANTS:
        space = CNN1DSpace(input_shape=(1, 40), num_classes=10, stages=3, depth=(1,), width=(32,),
                           kernel=(5,), wbits=(4,), abits=(abits,), timesteps=(t,),
                           first_wbits=8, last_wbits=8)  # fmt: skip
        (arch,) = list(space.grid())
        runs = [ev.evaluate(arch, seed=s) for s in range(args.seeds)]
        accs = [r.metrics["test_accuracy"] for r in runs]
        dens = [statistics.mean(r.densities[i] for r in runs) for i in range(len(arch.layers))]  # type: ignore[index]
        ev_ops = statistics.mean(event_bitops(arch, r.densities) for r in runs)  # type: ignore[arg-type]
        levels = t * (2**abits - 1) + 1
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        acc = statistics.mean(accs)
        print(f"{t} x {abits:<6d} {levels:6d} {bitops(arch):13,d} {ev_ops:13,.0f} "
              f"{acc:10.4f} ± {sd:.4f}  {[round(d, 3) for d in dens]}")  # fmt: skip


if __name__ == "__main__":
    main()
