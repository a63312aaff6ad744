"""Training throughput of one network in full precision, fake-quantized and spiking.

    python bench/train_throughput.py [--repeats 5] [--steps 30] [--json OUT]

A 784-256-256-10 MLP, batch 128, one torch thread, Adam; samples/s of whole training steps
(forward, backward, optimizer) on random inputs in [0, 1]. Every variant is measured in the
same run, interleaved round-robin so machine noise hits all alike; the table gives the median
of the repeats and the ratio of step time to full precision. snntorch's ``Leaky`` neuron (the
benchmark-only extra ``pip install -e '.[bench]'``) runs the same MLP in its tutorial form —
every layer, the first included, recomputed at every step — when it is installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bitnas.evaluators.model import build_model
from bitnas.spaces import MLPSpace

BATCH, IN, HIDDEN, OUT = 128, 784, 256, 10


def bitnas_model(wbits: int, abits: int, t: int, input_bits: int, enc: str = "direct") -> nn.Module:
    space = MLPSpace(
        input_shape=(IN,), num_classes=OUT, depth=2, width=(HIDDEN,),
        wbits=(wbits,), abits=(abits,), timesteps=(t,), input_bits=input_bits,
        input_encoding=enc,
    )  # fmt: skip
    (arch,) = list(space.grid())
    return build_model(arch)


class SnnTorchMLP(nn.Module):
    def __init__(self, t: int) -> None:
        import snntorch as snn

        super().__init__()
        self.t = t
        self.fc1, self.fc2, self.fc3 = (
            nn.Linear(IN, HIDDEN),
            nn.Linear(HIDDEN, HIDDEN),
            nn.Linear(HIDDEN, OUT),
        )
        self.lif1, self.lif2 = snn.Leaky(beta=0.9), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = 0.0
        for _ in range(self.t):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out = out + self.fc3(spk2)
        return out / self.t  # type: ignore[return-value]


def variants() -> dict[str, Callable[[], nn.Module]]:
    v: dict[str, Callable[[], nn.Module]] = {
        "full precision (w32a32, T=1)": lambda: bitnas_model(32, 32, 1, 32),
        "fake-quant W8A8 (T=1)": lambda: bitnas_model(8, 8, 1, 8),
        "fake-quant W4A4 (T=1)": lambda: bitnas_model(4, 4, 1, 8),
    }
    for t in (1, 2, 4, 8):
        v[f"bitnas spiking a1 T={t} (w8)"] = lambda t=t: bitnas_model(8, 1, t, 8)
    for t in (4, 8):  # rate coding: the first layer runs at every step, as in snntorch's loop
        v[f"bitnas spiking a1 T={t} rate (w8)"] = lambda t=t: bitnas_model(8, 1, t, 8, "rate")
    try:
        import snntorch  # noqa: F401

        for t in (1, 2, 4, 8):
            v[f"snntorch Leaky T={t} (fp32)"] = lambda t=t: SnnTorchMLP(t)
    except ImportError:
        pass
    return v


def make_step(model: nn.Module) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(BATCH, IN)
    y = torch.randint(0, OUT, (BATCH,))
    model.train()

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    steps = {name: make_step(factory()) for name, factory in variants().items()}
    for step in steps.values():  # warm-up: first-call allocations, LSQ/theta init
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - t0) / args.steps)
    base = statistics.median(times["full precision (w32a32, T=1)"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"variant": name, "samples_per_s": BATCH / med, "ratio_to_fp": med / base,
                     "step_ms": 1000 * med, "spread_ms": 1000 * (max(ts) - min(ts))})  # fmt: skip
    print(f"{'variant':34s} {'samples/s':>10s} {'step ms':>8s} {'x FP':>6s}")
    for r in rows:
        v, sps, ms, x = r["variant"], r["samples_per_s"], r["step_ms"], r["ratio_to_fp"]
        print(f"{v:34s} {sps:10.0f} {ms:8.2f} {x:6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"torch": torch.__version__, "threads": 1, "batch": BATCH, "rows": rows},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
