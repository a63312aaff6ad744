"""GPU check: the evaluator trains on CUDA and agrees with the CPU up to float tolerance.

    python bench/gpu_check.py            # on a machine with a CUDA GPU

1. One forward pass of the same network (same weights, same input) on CPU and CUDA: logits
   must agree to 1e-4 and every layer's measured bit density to 1e-3. (Codes can differ
   where a membrane potential lands within float error of a threshold.)
2. A short training run of a cnn1d on MNIST-1D and of a spiking MLP on digits, with
   ``device = "cpu"`` and ``device = "cuda"``: accuracies are printed side by side with each
   run's wall time (training diverges slowly between devices, so accuracies agree only
   roughly).
Exits 1 if check 1 fails, 2 if no GPU is visible.
"""

from __future__ import annotations

import sys
import time

import torch

from bitnas.evaluators import DataSpec, TrainedEvaluator, TrainSpec
from bitnas.evaluators.model import build_model
from bitnas.spaces import CNN1DSpace, MLPSpace


def one(space):  # type: ignore[no-untyped-def]
    (arch,) = list(space.grid())
    return arch


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device visible")
        return 2
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    cnn = one(CNN1DSpace(input_shape=(1, 40), num_classes=10, stages=3, depth=(1,), width=(32,),
                         kernel=(5,), wbits=(4,), abits=(2,), timesteps=(4,)))  # fmt: skip
    mlp = one(MLPSpace(input_shape=(1, 8, 8), num_classes=10, depth=2, width=(128,), wbits=(4,),
                       abits=(1,), timesteps=(8,)))  # fmt: skip
    ok = True
    for arch in (cnn, mlp):
        torch.manual_seed(0)
        model = build_model(arch).eval()
        for n in model.neurons.values():
            n.initialized.fill_(True)
            with torch.no_grad():
                n.theta.fill_(0.3)
        x = torch.rand(256, *arch.input_shape)
        with torch.no_grad():
            meter = model.start_measuring()
            cpu = model(x)
            d_cpu = meter.densities()
            model.cuda()
            meter = model.start_measuring()
            gpu = model(x.cuda()).cpu()
            d_gpu = meter.densities()
        err = (cpu - gpu).abs().max().item()
        derr = max(abs(a - b) for a, b in zip(d_cpu, d_gpu, strict=True))
        good = err < 1e-4 and derr < 1e-3
        ok &= good
        print(f"forward {arch.summary()}: max |logit diff| {err:.2e}, density diff {derr:.2e} "
              f"{'OK' if good else 'MISMATCH'}")  # fmt: skip
    for name, arch, data, epochs in (
        ("cnn1d/mnist1d", cnn, "mnist1d", 10),
        ("mlp/digits", mlp, "digits", 20),
    ):
        for device in ("cpu", "cuda"):
            ev = TrainedEvaluator(
                data=DataSpec(name=data), train=TrainSpec(epochs=epochs, device=device)
            )
            t0 = time.perf_counter()
            r = ev.evaluate(arch, seed=0)
            print(f"train {name} on {device}: test accuracy {r.metrics['test_accuracy']:.4f} "
                  f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
