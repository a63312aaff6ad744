"""Real training on digits: spiking and quantized networks both learn."""

from __future__ import annotations

import pytest

from bitnas.errors import EvaluationError, SpecError
from bitnas.evaluators import DataSpec, TrainedEvaluator, TrainSpec
from bitnas.evaluators.datasets import load_splits
from bitnas.spaces import Architecture, LayerSpec

pytestmark = pytest.mark.slow


def mlp(t, abits, wbits=4, width=64, enc="direct"):
    layers = (
        LayerSpec("linear", 64, width, wbits, abits),
        LayerSpec("linear", width, 10, wbits, None),
    )
    return Architecture("mlp", (64,), 10, layers, t, enc, 8)


def test_split_is_seeded_and_disjoint():
    a, b = load_splits(DataSpec(seed=0)), load_splits(DataSpec(seed=1))
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 1797
    assert a.x_train.min() >= 0 and a.x_train.max() <= 1
    assert not (a.y_test == b.y_test).all()


@pytest.mark.parametrize(
    ("t", "abits", "enc"),
    [(1, 2, "direct"), (4, 1, "direct"), (4, 1, "rate")],
    ids=["T1-2bit-ANN", "T4-binary-spikes", "T4-binary-rate"],
)
def test_quantized_and_spiking_both_learn(t, abits, enc):
    ev = TrainedEvaluator(train=TrainSpec(epochs=20))
    r = ev.evaluate(mlp(t, abits, enc=enc), seed=0)
    # chance is 10%; both must be far above it
    assert r.metrics["test_accuracy"] > 0.85, r.metrics
    assert r.metrics["val_accuracy"] > 0.85, r.metrics
    assert r.densities is not None and len(r.densities) == 2
    assert all(0 < d < 1 for d in r.densities)


def test_same_seed_same_accuracy_and_report_stops():
    ev = TrainedEvaluator(train=TrainSpec(epochs=4))
    a = ev.evaluate(mlp(2, 2), seed=3)
    b = ev.evaluate(mlp(2, 2), seed=3)
    assert a.metrics == b.metrics and a.densities == b.densities
    calls = []

    def report(step, metrics):
        calls.append((step, metrics["val_accuracy"]))
        return step == 2

    r = ev.evaluate(mlp(2, 2), seed=3, report=report)
    assert [c[0] for c in calls] == [1, 2] and r.stopped and r.epochs == 2


def test_divergence_is_an_evaluation_error():
    ev = TrainedEvaluator(train=TrainSpec(epochs=2, lr=1e30, optimizer="sgd"))
    with pytest.raises(EvaluationError, match="training diverged: loss is"):
        ev.evaluate(mlp(1, 32, wbits=32), seed=0)


def test_cuda_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ev = TrainedEvaluator(train=TrainSpec(epochs=1, device="cuda"))
    with pytest.raises(SpecError, match="no CUDA device is available"):
        ev.evaluate(mlp(1, 2), seed=0)


def _fixed(space):
    (arch,) = list(space.grid())
    return arch


def test_quality_mlp_on_digits_full_precision_and_w8a8():
    from bitnas.spaces import MLPSpace

    def mlp(bits):
        return _fixed(MLPSpace(input_shape=(1, 8, 8), num_classes=10, depth=1, width=(256,),
                               wbits=(bits,), abits=(bits,), timesteps=(1,),
                               input_bits=bits))  # fmt: skip

    ev = TrainedEvaluator(train=TrainSpec(epochs=60, optimizer="adamw", weight_decay=1e-4))
    fp = ev.evaluate(mlp(32), seed=0).metrics["test_accuracy"]
    q8 = ev.evaluate(mlp(8), seed=0).metrics["test_accuracy"]
    assert fp >= 0.97
    assert q8 >= fp - 0.02


def test_quality_cnn1d_on_mnist1d_full_precision_and_w8a8():
    from bitnas.spaces import CNN1DSpace

    def cnn(bits):
        return _fixed(CNN1DSpace(input_shape=(1, 40), num_classes=10, stages=3, depth=(1,),
                                 width=(32,), kernel=(5,), wbits=(bits,), abits=(bits,),
                                 timesteps=(1,), input_bits=bits))  # fmt: skip

    ev = TrainedEvaluator(
        data=DataSpec(name="mnist1d"),
        train=TrainSpec(epochs=20, optimizer="adamw", weight_decay=1e-4),
    )
    fp = ev.evaluate(cnn(32), seed=0).metrics["test_accuracy"]
    q8 = ev.evaluate(cnn(8), seed=0).metrics["test_accuracy"]
    assert fp >= 0.90
    assert q8 >= fp - 0.02


def test_resnet_and_cnn2d_train_on_digits():
    from bitnas.spaces import CNN2DSpace, ResNetSpace

    ev = TrainedEvaluator(train=TrainSpec(epochs=12))  # 8 left the binary cnn2d at 79% (standardized inputs)
    res = _fixed(ResNetSpace(input_shape=(1, 8, 8), num_classes=10, depth=(1,), width=(8,),
                             wbits=(4,), abits=(2,), timesteps=(2,)))  # fmt: skip
    cnn = _fixed(CNN2DSpace(input_shape=(1, 8, 8), num_classes=10, stages=2, depth=(1,),
                            width=(8,), kernel=(3,), wbits=(4,), abits=(1,), timesteps=(4,)))  # fmt: skip
    for arch in (res, cnn):
        r = ev.evaluate(arch, seed=0)
        assert r.metrics["test_accuracy"] > 0.8, (arch.summary(), r.metrics)
        assert r.densities is not None and len(r.densities) == len(arch.layers)


def test_lsq_weights_train():
    ev = TrainedEvaluator(train=TrainSpec(epochs=15, weight_quant="lsq"))
    r = ev.evaluate(mlp(1, 2, wbits=2), seed=0)
    assert r.metrics["test_accuracy"] > 0.88, r.metrics


def test_training_to_convergence_stops_on_a_plateau_and_keeps_the_best_epoch():
    curve = []

    def report(step, metrics):
        curve.append(metrics["val_accuracy"])
        return False

    spec = TrainSpec(epochs=200, until="converged", patience=3, lr=1e-2)
    r = TrainedEvaluator(train=spec).evaluate(mlp(1, 2), seed=0, report=report)
    assert r.info["converged"] is True and r.info["until"] == "converged"
    assert r.epochs == len(curve) < 200
    best = max(range(len(curve)), key=lambda i: (curve[i], -i))
    assert r.info["best_epoch"] == best + 1 == r.epochs - 3  # patience epochs without a gain
    assert r.metrics["val_accuracy"] == curve[best] >= curve[-1]
    fixed = TrainedEvaluator(train=TrainSpec(epochs=3)).evaluate(mlp(1, 2), seed=0)
    assert fixed.epochs == 3 and fixed.info["converged"] is False
    assert fixed.info["input_norm"]["standardized"] is True


def test_a_list_of_learning_rates_keeps_the_best_on_validation():
    spec = TrainSpec(epochs=3, lr=[1e-6, 1e-2])
    r = TrainedEvaluator(train=spec).evaluate(mlp(1, 2), seed=0)
    (lo, v_lo), (hi, v_hi) = r.info["lr_val_accuracy"]
    assert (lo, hi) == (1e-6, 1e-2) and v_hi > v_lo + 0.3  # 1e-6 barely moves in 3 epochs
    assert r.info["lr"] == 1e-2 and r.metrics["val_accuracy"] == v_hi
    single = TrainedEvaluator(train=TrainSpec(epochs=3, lr=1e-2)).evaluate(mlp(1, 2), seed=0)
    assert single.metrics == r.metrics  # the kept rate trained exactly as it would alone


def _mnist1d_paper_mlp():
    """Greydanus (2020)'s MNIST-1D MLP: 40-100-100-10, ReLU, full precision."""
    layers = (
        LayerSpec("linear", 40, 100, 32, 32),
        LayerSpec("linear", 100, 100, 32, 32),
        LayerSpec("linear", 100, 10, 32, None),
    )
    return Architecture("mlp", (1, 40), 10, layers, 1, "direct", 32)


def _mnist1d_paper_cnn():
    """The paper's CNN (mnist1d's ConvBase): three 25-channel convolutions (kernel 5, 3, 3;
    stride 2, padding 1), ReLU, no batch norm, a linear read-out from 25 x 5."""
    convs, size = [], 40
    for i, k in enumerate((5, 3, 3)):
        convs.append(LayerSpec("conv1d", 1 if i == 0 else 25, 25, 32, 32, kernel=(k,),
                               stride=(2,), padding=(1,), in_size=(size,)))  # fmt: skip
        size = (size + 2 - k) // 2 + 1
    layers = (*convs, LayerSpec("linear", 25 * size, 10, 32, None))
    return Architecture("cnn1d", (1, 40), 10, layers, 1, "direct", 32)


# The paper's recipe: Adam, lr 1e-2, batch 100, no weight decay, 6000 steps (~150 epochs of
# 4000 samples; bitnas adds its cosine schedule), on standardized inputs; 5% of the training
# part is held out for validation. Published test accuracy: MLP ~68%, CNN ~94% (mnist1d's
# README). Measured here: docs/results/README.md (full-precision baselines).
MLP_EPOCHS = 150
CNN_EPOCHS = 150
MNIST1D_PAPER = DataSpec(name="mnist1d", val_fraction=0.05)


def test_baseline_mnist1d_paper_mlp_full_precision():
    spec = TrainSpec(epochs=MLP_EPOCHS, batch_size=100, lr=1e-2, optimizer="adam")
    r = TrainedEvaluator(data=MNIST1D_PAPER, train=spec).evaluate(_mnist1d_paper_mlp(), seed=0)
    assert r.metrics["test_accuracy"] >= 0.65, r.metrics  # published ~68%, within 3 points


def test_baseline_mnist1d_paper_cnn_full_precision():
    # with decoupled weight decay 1e-2 (AdamW): the plain recipe measured 90.2% here
    spec = TrainSpec(
        epochs=CNN_EPOCHS, batch_size=100, lr=1e-2, optimizer="adamw", weight_decay=1e-2
    )
    r = TrainedEvaluator(data=MNIST1D_PAPER, train=spec).evaluate(_mnist1d_paper_cnn(), seed=0)
    assert r.metrics["test_accuracy"] >= 0.91, r.metrics  # published ~94%, within 3 points
