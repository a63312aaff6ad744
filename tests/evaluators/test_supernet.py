"""The supernet: sub-networks are exactly their architectures, share weights, and resume."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random

import numpy as np
import pytest
import torch

from bitnas.errors import EvaluationError, SpecError
from bitnas.evaluators.config import TrainSpec
from bitnas.evaluators.datasets import Splits
from bitnas.evaluators.opcount import count_ops
from bitnas.evaluators.supernet import SupernetEvaluator, SupernetSpec
from bitnas.evaluators.supernet.evaluator import measure_subnet
from bitnas.evaluators.supernet.slots import largest, slot_keys, smallest
from bitnas.evaluators.supernet.train import (
    MEASURE_ONLY,
    build_supernet,
    fingerprint,
    train_supernet,
)
from bitnas.spaces import CNN1DSpace, CNN2DSpace, MLPSpace, ResNetSpace, bitops
from bitnas.studies.spec import StudySpec

SPACES = {
    "mlp": MLPSpace(
        input_shape=(1, 4, 4), num_classes=3, depth=(1, 3), width=(4, 8),
        width_per_layer=True, wbits=(1, 2, 4, 8), abits=(1, 2, 32), timesteps=(1, 3),
        input_encoding=("direct", "rate"), norm=True,
    ),
    "cnn1d": CNN1DSpace(
        input_shape=(1, 16), num_classes=3, stages=(1, 2), depth=(1, 2), width=(2, 4),
        kernel=(3, 5), wbits=(2, 4), abits=(1, 2), timesteps=(1, 2), readout="flatten",
    ),
    "cnn2d": CNN2DSpace(
        input_shape=(1, 8, 8), num_classes=3, stages=(1, 2), depth=(1, 2), width=(2, 4),
        kernel=(1, 3), wbits=(2, 8), abits=(1, 4), timesteps=(1, 2), readout="gap",
    ),
    "resnet": ResNetSpace(
        input_shape=(3, 8, 8), num_classes=3, stem="cifar", stages=2, depth=(1, 2),
        width=(2, 4), wbits=(2, 4), abits=(1, 2), timesteps=(1, 2),
    ),
}  # fmt: skip


def _archs(space, n=4):
    rng = random.Random(0)
    return [largest(space), smallest(space)] + [space.sample_uniform(rng) for _ in range(n)]


@pytest.mark.parametrize("family", sorted(SPACES))
def test_a_subnetwork_is_exactly_its_architecture(family):
    space = SPACES[family]
    net = build_supernet(space, seed=0).eval()
    x = torch.rand(4, *space.input_shape)
    for arch in _archs(space):
        model = net.extract(arch)
        counted = count_ops(arch, x, model=model)
        assert all(not c.checks for c in counted), [c.checks for c in counted]
        assert sum(c.bitops(len(x)) for c in counted) == bitops(arch)
        assert [c.wbits for c in counted] == [lay.wbits for lay in arch.layers]
        for lay, layer in zip(arch.layers, model.layers, strict=True):
            want = (lay.out_ch, lay.in_ch // lay.groups, *lay.kernel)
            assert tuple(layer.weight.shape) == want
        assert {int(k): n.abits for k, n in model.neurons.items()} == {
            i: lay.abits for i, lay in enumerate(arch.layers) if lay.abits is not None
        }
        # what training runs through the shared weights is the extracted network
        torch.manual_seed(1)
        a = net(arch, x)
        torch.manual_seed(1)
        assert torch.equal(a, model(x))


def test_thresholds_per_timesteps_are_their_own_and_the_default_shares_them():
    space = SPACES["mlp"]
    arch = {T: space.from_params(
        {"depth": 1, "width_0": 4, "wbits_0": 8, "wbits_out": 8, "abits_0": 1,
         "timesteps": T, "input_encoding": "direct"}
    ) for T in (1, 3)}  # fmt: skip
    shared = build_supernet(space, seed=0)
    own = build_supernet(space, seed=0, spec=SupernetSpec(thresholds="bits_t"))
    theta = "neurons.0.theta"
    assert shared.tensors(arch[1])[theta] is shared.tensors(arch[3])[theta]
    assert own.tensors(arch[1])[theta] is not own.tensors(arch[3])[theta]
    assert len(own.neurons) == len(space.timesteps) * len(shared.neurons)
    x = torch.rand(4, *space.input_shape)
    before = {T: own.extract(arch[T]).eval()(x) for T in arch}
    with torch.no_grad():  # T=3's threshold: the T=1 sub-network does not see it
        own.tensors(arch[3])[theta].mul_(100.0)  # silences it
    assert torch.equal(own.extract(arch[1]).eval()(x), before[1])
    assert not torch.equal(own.extract(arch[3]).eval()(x), before[3])
    with pytest.raises(SpecError, match="`thresholds` must be one of"):
        SupernetSpec(thresholds="layer")


@pytest.mark.parametrize("norms", ["bits", "bits_t"])
def test_switchable_norms_are_their_own_per_precision_and_the_default_shares_them(norms):
    space = SPACES["mlp"]

    def arch(wbits, abits, T=1):
        return space.from_params(
            {"depth": 1, "width_0": 4, "wbits_0": wbits, "wbits_out": 8, "abits_0": abits,
             "timesteps": T, "input_encoding": "direct"}
        )  # fmt: skip

    shared = build_supernet(space, seed=0)
    own = build_supernet(space, seed=0, spec=SupernetSpec(norms=norms))

    def gamma(net, sub):  # where the sub-network's batch-norm weight lives
        return net.tensors(sub)["norms.0.weight"].data_ptr()

    a, b, c = arch(2, 1), arch(4, 1), arch(2, 2)  # b: other weight bits, c: other act bits
    assert gamma(shared, a) == gamma(shared, b) == gamma(shared, c)
    assert len({gamma(own, a), gamma(own, b), gamma(own, c)}) == 3
    per_t = gamma(own, arch(2, 1, T=3)) != gamma(own, a)
    assert per_t == (norms == "bits_t")
    # per hidden slot, one copy per (weight bits, activation bits[, T]); the read-out has none
    copies = len(space.wbits) * len(space.abits) * (len(space.timesteps) if per_t else 1)
    copies *= space.depth[1]
    assert len(own.norms) == copies
    x = torch.rand(4, *space.input_shape)
    for sub in (a, b, c, largest(space), smallest(space)):  # still exactly its architecture
        torch.manual_seed(1)
        out = own(sub, x)
        torch.manual_seed(1)
        assert torch.equal(out, own.extract(sub)(x))
    before = {k: own.extract(k).eval()(x) for k in (a, b)}
    with torch.no_grad():  # a's batch norm: b does not see it
        own.tensors(a)["norms.0.bias"].add_(5.0)
    assert torch.equal(own.extract(b).eval()(x), before[b])
    assert not torch.equal(own.extract(a).eval()(x), before[a])
    with pytest.raises(SpecError, match="`norms` must be one of"):
        SupernetSpec(norms="width")


def test_switchable_norms_change_the_fingerprint():
    # (that the default keeps checkpoints made before `norms` existed: the test below pins
    # the old format's hash)
    space, train, data = SPACES["mlp"], TrainSpec(epochs=1), None
    base = fingerprint(space, train, SupernetSpec(), data, 0)
    assert fingerprint(space, train, SupernetSpec(norms="bits"), data, 0) != base
    assert fingerprint(space, train, SupernetSpec(norms="bits_t"), data, 0) != base


def test_weight_sharing_is_real():
    space = SPACES["mlp"]
    net = build_supernet(space, seed=0).eval()
    arch = space.from_params(
        {"depth": 1, "width_0": 4, "wbits_0": 8, "wbits_out": 8, "abits_0": 32,
         "timesteps": 1, "input_encoding": "direct"}
    )  # fmt: skip
    key = slot_keys(arch)[0]
    x = torch.rand(8, *space.input_shape)
    before = net.extract(arch)(x)
    with torch.no_grad():  # a channel the sub-network does not have: nothing changes
        net.layers[key].weight[5].add_(1.0)
    assert torch.equal(net.extract(arch)(x), before)
    with torch.no_grad():  # one of its own: its output changes
        net.layers[key].weight[0].mul_(-3.0)
    assert not torch.allclose(net.extract(arch)(x), before)


def _splits(space, n=96, seed=0):
    rng = np.random.default_rng(seed)
    shape = space.input_shape

    def part(m):
        y = rng.integers(0, space.num_classes, m)
        x = rng.random((m, *shape)).astype(np.float32) * 0.3
        x[:, 0] += (y * 0.3).reshape(-1, *[1] * (x.ndim - 2))  # learnable: the label shifts row 0
        return x.astype(np.float32), y.astype(np.int64)

    (a, b), (c, d), (e, f) = part(n), part(32), part(32)
    return Splits(a, b, c, d, e, f)


def test_resume_from_a_checkpoint_gives_the_same_result(tmp_path):
    space = SPACES["cnn1d"]
    splits = _splits(space)
    train = TrainSpec(batch_size=32, lr=1e-2)
    spec = SupernetSpec(epochs=2, random_subnets=1, distill=True, progress=False)
    straight, _ = train_supernet(space, splits, train, spec, seed=3, checkpoint=None)
    ck = tmp_path / "s.pt"
    train_supernet(space, splits, train, spec, seed=3, checkpoint=ck, stop_after=1)
    resumed, log = train_supernet(space, splits, train, spec, seed=3, checkpoint=ck)
    assert log.epochs == 2
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a checkpoint of other settings is refused, naming the file
    other = dataclasses.replace(spec, random_subnets=2)
    with pytest.raises(SpecError, match=r"s\.pt"):
        train_supernet(space, splits, train, other, seed=3, checkpoint=ck)


def test_evaluate_measures_like_the_trained_evaluator(tmp_path):
    space = SPACES["cnn1d"]
    splits = _splits(space)
    train = TrainSpec(batch_size=32, lr=1e-2)
    spec = SupernetSpec(epochs=3, random_subnets=1, calib_batches=2, progress=False)
    net, _ = train_supernet(space, splits, train, spec, seed=0, checkpoint=None)
    arch = smallest(space)
    r = measure_subnet(net, arch, splits, train, spec, seed=0)
    assert set(r.metrics) == {"val_accuracy", "test_accuracy", "train_loss"}
    assert r.densities is not None and len(r.densities) == len(arch.layers)
    assert r.metrics["val_accuracy"] > 1 / space.num_classes  # it learned something
    again = measure_subnet(net, arch, splits, train, spec, seed=0)
    assert again.metrics == r.metrics and again.densities == r.densities


def test_sub_networks_standardize_their_input_as_the_trained_evaluator_does():
    space = SPACES["mlp"]  # no batch norm in front of the first layer: the input scale shows
    raw = _splits(space)
    norm = (float(raw.x_train.mean()), float(raw.x_train.std()))
    std = dataclasses.replace(raw, input_norm=norm)
    train = TrainSpec(batch_size=32, lr=1e-2)
    spec = SupernetSpec(epochs=1, random_subnets=1, calib_batches=0, progress=False)
    plain, _ = train_supernet(space, raw, train, spec, seed=0, checkpoint=None)
    net, _ = train_supernet(space, std, train, spec, seed=0, checkpoint=None)
    arch = largest(space)
    assert plain.extract(arch).input_norm is None
    model = net.extract(arch)
    assert model.input_norm == norm
    x = torch.from_numpy(std.x_val)
    torch.manual_seed(1)
    through = net.eval()(arch, x)
    torch.manual_seed(1)
    assert torch.equal(through, model.eval()(x))  # training saw what measuring sees
    r = measure_subnet(net, arch, std, train, spec, seed=0)
    assert r.info["input_norm"] == std.norm_record()
    # a checkpoint of a standardized study written before the supernet standardized is refused
    data = StudySpec.from_dict({"study": {"name": "x"}}).data
    assert data.standardize
    old = json.dumps(
        [repr(space), repr(train), {k: v for k, v in vars(spec).items() if k not in MEASURE_ONLY
         and k not in ("thresholds", "norms")}, repr(data), 0], sort_keys=True, default=str,
    )  # fmt: skip
    assert fingerprint(space, train, spec, data, 0) != hashlib.sha1(old.encode()).hexdigest()[:16]
    raw_data = dataclasses.replace(data, standardize=False)
    old = old.replace(repr(data), repr(raw_data))
    assert (
        fingerprint(space, train, spec, raw_data, 0) == hashlib.sha1(old.encode()).hexdigest()[:16]
    )


def test_finetuning_trains_a_copy_and_leaves_the_supernet_and_its_checkpoint_alone(tmp_path):
    space = SPACES["cnn1d"]
    splits = _splits(space)
    train = TrainSpec(batch_size=32, lr=1e-2)
    spec = SupernetSpec(epochs=1, random_subnets=1, calib_batches=2, progress=False)
    ck = tmp_path / "s.pt"
    net, _ = train_supernet(space, splits, train, spec, seed=0, checkpoint=ck)
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    arch = smallest(space)
    plain = measure_subnet(net, arch, splits, train, spec, seed=0)
    tuned_spec = dataclasses.replace(spec, finetune_steps=40, finetune_lr=3e-2)
    tuned = measure_subnet(net, arch, splits, train, tuned_spec, seed=0)
    assert tuned.info["finetune_steps"] == 40 and plain.info["finetune_steps"] == 0
    # 40 steps on a learnable task move the loss; the supernet itself is untouched
    assert tuned.metrics["train_loss"] < plain.metrics["train_loss"]
    assert all(torch.equal(v, weights[k]) for k, v in net.state_dict().items())
    again = measure_subnet(net, arch, splits, train, tuned_spec, seed=0)
    assert again.metrics == tuned.metrics  # seeded
    # measuring settings do not make the checkpoint foreign: it loads without training
    _, log = train_supernet(space, splits, train, tuned_spec, seed=0, checkpoint=ck)
    assert log.epochs == 1
    with pytest.raises(SpecError, match="finetune_steps"):
        SupernetSpec(finetune_steps=-1)


def test_a_foreign_architecture_is_a_clear_error():
    net = build_supernet(SPACES["cnn1d"], seed=0)
    wide = dataclasses.replace(SPACES["cnn1d"], width=(2, 4, 8))
    with pytest.raises(EvaluationError, match="does not fit supernet slot"):
        net.extract(largest(wide))


def _spec(extra):
    return StudySpec.from_dict(
        {
            "study": {"name": "s", "storage": "sqlite:///x/s.db"},
            "space": {"family": "mlp", "depth": [1, 2], "width": [8, 16]},
            **extra,
        }
    )


def test_the_study_file_chooses_the_supernet():
    spec = _spec({"supernet": {"epochs": 2, "distill": True}})
    ev = spec.evaluator()
    assert isinstance(ev, SupernetEvaluator)
    assert ev.checkpoint == "x/s.supernet.pt" and ev.supernet.distill
    assert spec.to_dict()["supernet"]["epochs"] == 2
    assert not isinstance(_spec({}).evaluator(), SupernetEvaluator)
    with pytest.raises(SpecError, match=r"`calib_batches`.*-1.*\[supernet\]"):
        _spec({"supernet": {"calib_batches": -1}})
    with pytest.raises(SpecError, match="unknown key `epoch`"):
        _spec({"supernet": {"epoch": 2}})
    with pytest.raises(SpecError, match=r"absmax.*'lsq'"):
        _spec({"supernet": {}, "train": {"weight_quant": "lsq"}})
    with pytest.raises(SpecError, match=r"\[supernet\] and \[table\]"):
        _spec({"supernet": {}, "table": {"path": "t.parquet"}})


def test_a_smaller_kernel_is_the_centre_of_the_largest():
    space = SPACES["cnn1d"]
    net = build_supernet(space, seed=0)
    arch = largest(space, {"kernel": 3})
    model = net.extract(arch)
    for key, lay, layer in zip(slot_keys(arch), arch.layers, model.layers, strict=True):
        if lay.kernel:
            host = net.layers[key].weight
            assert host.shape[2] == 5
            assert torch.equal(layer.weight, host[: lay.out_ch, : lay.in_ch, 1:4])
