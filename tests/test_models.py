"""Model zoo: shapes, Keras-faithful details of the paper CNNs, and config-time errors."""

import time

import pytest
import torch
import torch.nn.functional as F
from reference_models import relu_then_torch_pool
from torch import nn

from fedmd_ray.errors import ConfigError
from fedmd_ray.model_registry import PAPER_MODELS, SMALL_MODELS, model_names
from fedmd_ray.models import (
    CHANNELS_LAST_POOL_ELEMENTS,
    KerasSameAvgPool2d,
    MaxPool2x2,
    build_model,
    check_model,
    eval_batch,
    output_layer,
)

MNIST = (1, 28, 28)


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_registry_order_and_sizes() -> None:
    assert len(PAPER_MODELS) == 10 and len(SMALL_MODELS) == 10
    assert model_names() == [*PAPER_MODELS, *SMALL_MODELS]
    assert PAPER_MODELS[0] == "paper-cnn2-128-256"
    assert PAPER_MODELS[-1] == "paper-cnn3-128-128-192-d0.3"


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_returns_logits(name: str) -> None:
    model = build_model(name, MNIST, 16)
    logits = model(torch.randn(3, *MNIST))
    assert logits.shape == (3, 16) and logits.dtype == torch.float32
    assert isinstance(model.output_layer, nn.Linear) and model.output_layer.bias is None
    assert model.output_l2 == (1e-3 if name.startswith("paper-") else 0.0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # cnn_2layer_fc_model(n1=128, n2=256), 28x28x1 -> 16 classes:
        #   Conv 3x3 same:   3*3*1*128 + 128     =   1_280
        #   BN(128): gamma+beta 2*128            =     256
        #     (Keras counts 4*C; moving mean/var are non-trainable there, buffers in torch)
        #   AvgPool same s1: 28x28 stays 28x28
        #   Conv 3x3 s2 valid: 3*3*128*256 + 256 = 295_168  (28 -> 13)
        #   BN(256): 2*256                       =     512
        #   Dense no bias: 13*13*256 * 16        = 692_224
        ("paper-cnn2-128-256", 1_280 + 256 + 295_168 + 512 + 692_224),  # 989_440
        # cnn_3layer_fc_model(n1=64, n2=128, n3=256), 28x28x1 -> 16 classes:
        #   Conv 3x3 same:   3*3*1*64 + 64       =     640;  BN(64)  2*64  =   128
        #   Conv 2x2 s2:     2*2*64*128 + 128    =  32_896;  BN(128) 2*128 =   256  (28 -> 14)
        #   AvgPool 2 s2 valid: 14 -> 7
        #   Conv 3x3 s2:     3*3*128*256 + 256   = 295_168;  BN(256) 2*256 =   512  (7 -> 3)
        #   Dense no bias:   3*3*256 * 16        =  36_864
        ("paper-cnn3-64-128-256", 640 + 128 + 32_896 + 256 + 295_168 + 512 + 36_864),  # 366_464
    ],
)
def test_paper_param_counts_match_keras(name: str, expected: int) -> None:
    assert trainable_params(build_model(name, MNIST, 16)) == expected


def test_paper_keras_defaults() -> None:
    model = build_model("paper-cnn2-256-512-d0.4", MNIST, 16)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(bn.momentum == 0.01 and bn.eps == 1e-3 for bn in bns)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None and not c.bias.any() for c in convs)
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.4}
    # Glorot-uniform bound sqrt(6 / (fan_in + fan_out)) = sqrt(6 / (9 + 256*9)) ~ 0.051;
    # torch's default for this conv would draw up to 1 / sqrt(fan_in) = 1/3.
    w = convs[0].weight  # (256, 1, 3, 3)
    assert 0.04 < w.abs().max() <= (6 / (9 + 256 * 9)) ** 0.5


@pytest.mark.parametrize(
    "shape",
    [(4, 3, 6, 6), (2, 2, 7, 5), (3, 1, 9, 8), (5, 4, 3, 2), (2, 1, 1, 4), (8, 4, 30, 29), (3, 7, 41, 40)],
)
def test_the_fast_max_pool_gives_torchs_values_and_gradients(shape: tuple[int, ...]) -> None:
    """`MaxPool2x2` is `nn.MaxPool2d(2)`: the same values without gradients (ties, NaN, infinities, odd sizes
    dropped, a map too small to pool refused alike) and the same values and gradient routing with them, on
    maps below and above `CHANNELS_LAST_POOL_ELEMENTS` (the last two shapes); with ``relu=True``, those of a
    ReLU then `nn.MaxPool2d(2)`."""
    g = torch.Generator().manual_seed(sum(shape))
    pool, reference = MaxPool2x2(), nn.MaxPool2d(2)
    for trial in range(20):
        x = torch.randint(-2, 3, shape, generator=g).float()  # small integers: many ties
        x[torch.rand(shape, generator=g) < 0.05 * (trial % 3)] = float("nan")
        x[torch.rand(shape, generator=g) < 0.05 * (trial % 2)] = float("-inf")
        if min(shape[-2:]) < 2:
            with pytest.raises(RuntimeError), torch.no_grad():
                reference(x)
            with pytest.raises(RuntimeError), torch.no_grad():
                pool(x)
            return
        with torch.no_grad():
            fast, expected = pool(x), reference(x)
            batched = torch.vmap(pool)(x[None].expand(2, *shape))  # as a batched party group runs it
        assert torch.equal(fast.isnan(), expected.isnan())
        assert torch.equal(fast.nan_to_num(0.0), expected.nan_to_num(0.0))
        assert torch.equal(batched[1].nan_to_num(0.0), expected.nan_to_num(0.0))
        ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
        upstream = torch.randn(expected.shape, generator=g)
        pool(ours).backward(upstream)
        reference(theirs).backward(upstream)
        assert torch.equal(ours.grad, theirs.grad)
        with torch.no_grad():  # relu=True: the ReLU before the pool, done after it
            fused, expected = MaxPool2x2(relu=True)(x), reference(torch.relu(x))
        assert torch.equal(fused.isnan(), expected.isnan())
        assert torch.equal(fused.nan_to_num(0.0), expected.nan_to_num(0.0))
        ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
        MaxPool2x2(relu=True)(ours).backward(upstream)
        reference(torch.relu(theirs)).backward(upstream)
        assert torch.equal(ours.grad, theirs.grad)


def test_the_built_in_cnns_pool_without_torchs_nchw_kernel_where_it_is_slow(monkeypatch) -> None:
    """Without gradients, and with them on large maps, the built-in CNNs' pools do not run torch's
    (N, C, H, W) kernel; training passes on small maps (a revisit's batch of 5) still do."""
    pools = [m for m in build_model("cnn2-8-16", MNIST, 10).modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 2 and all(type(m) is MaxPool2x2 for m in pools)

    def kernel(self: nn.MaxPool2d, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("torch's kernel")

    monkeypatch.setattr(nn.MaxPool2d, "forward", kernel)
    small, large = torch.rand(2, 3, 8, 8), torch.rand(64, 8, 28, 28)
    assert large.numel() >= CHANNELS_LAST_POOL_ELEMENTS > small.numel()
    with torch.no_grad():
        assert pools[0](small).shape == (2, 3, 4, 4)
    assert pools[0](large.requires_grad_()).shape == (64, 8, 14, 14)
    with pytest.raises(AssertionError, match="torch's kernel"):
        pools[0](small.requires_grad_())


@pytest.mark.parametrize(("name", "side", "pools"), [("cnn2-8-16", 16, 2), ("cnn4-4-8-16-32", 8, 3)])
def test_the_built_in_cnns_relu_inside_the_pool_computes_what_relu_before_it_did(
    name: str, side: int, pools: int
) -> None:
    """A built-in CNN stage that pools runs its ReLU in the pool, after it (a quarter of the elements):
    the same logits in eval and training mode, and the same gradient for every parameter, as the
    Conv-BN-ReLU-MaxPool stages with torch's own modules; and the same layer numbers and output sizes."""
    torch.manual_seed(0)
    model = build_model(name, (1, side, side), 5)  # on 8x8, cnn4's last stage has no pool
    before = relu_then_torch_pool(model)
    assert sum(type(m) is nn.MaxPool2d for m in before.modules()) == pools
    assert model.state_dict().keys() == before.state_dict().keys()
    x = torch.randint(-2, 3, (6, 1, side, side)).float()
    sizes: dict[str, list[int]] = {"ours": [], "theirs": []}
    for key, net in (("ours", model), ("theirs", before)):
        for leaf in net.features:
            leaf.register_forward_hook(lambda _m, _i, out, key=key: sizes[key].append(out.numel()))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), before.eval()(x))
    assert sizes["ours"] == sizes["theirs"]  # what `eval_batch` counts
    torch.manual_seed(1)
    model.train()(x).square().sum().backward()
    torch.manual_seed(1)  # the same dropout mask
    before.train()(x).square().sum().backward()
    for (param, ours), theirs in zip(model.named_parameters(), before.parameters()):
        assert ours.grad is not None and torch.equal(ours.grad, theirs.grad), param


def test_keras_same_avg_pool_ignores_padding() -> None:
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)
    out = KerasSameAvgPool2d()(x)
    # top-left: all four cells; right column / bottom row: two valid cells; corner: itself.
    expected = torch.tensor([[[[2.5, 3.0], [3.5, 4.0]]]])
    assert torch.equal(out, expected)
    naive = F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride=1)  # zero padding counted
    assert naive[0, 0, 1, 1] == 1.0  # what a naive port would give for the corner


def test_keras_same_avg_pool_equals_mean_of_valid_cells() -> None:
    x = torch.randn(2, 3, 5, 7)
    summed = F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride=1) * 4  # (2, 3, 5, 7)
    counts = F.avg_pool2d(F.pad(torch.ones(1, 1, 5, 7), (0, 1, 0, 1)), 2, stride=1) * 4
    torch.testing.assert_close(KerasSameAvgPool2d()(x), summed / counts)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
@pytest.mark.parametrize("name", ["cnn1-4", "cnn2-4-8", "cnn4-4-8-8-8-d0.1", "mlp-32-16"])
def test_small_specs_take_other_input_sizes(name: str, shape: tuple[int, int, int]) -> None:
    check_model(name, shape, 10)
    assert build_model(name, shape, 10)(torch.randn(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize(
    "name",
    [
        "cnn9-1",
        "cnn2-16",
        "cnn5-1-2-3-4-5",
        "mlp",
        "mlp2-64",
        "paper-cnn4-1-2-3-4",
        "cnn2-0-8",
        "cnn2-8-8-d1.5",
        "resnet18",
    ],  # fmt: skip
)
def test_bad_names_raise_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"'{name}'.*use one of: paper-cnn2-128-256"):
        check_model(name, MNIST, 10)
    with pytest.raises(ConfigError, match=f"'{name}'"):
        build_model(name, MNIST, 10)


def test_paper_cnn3_is_too_deep_for_8x8() -> None:
    with pytest.raises(ConfigError, match=r"'paper-cnn3-64-128-256'.*\(1, 8, 8\).*larger images"):
        check_model("paper-cnn3-64-128-256", (1, 8, 8), 10)
    check_model("paper-cnn2-128-256", (1, 8, 8), 10)  # 8 -> 3 still fits


@pytest.mark.parametrize(("shape", "n_classes"), [((1, 28), 10), ((1, 0, 28), 10), (MNIST, 0)])
def test_bad_sizes_raise_config_error(shape: tuple[int, ...], n_classes: int) -> None:
    with pytest.raises(ConfigError):
        check_model("cnn1-4", shape, n_classes)  # type: ignore[arg-type]


def sequential_net(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, n_classes))


def conv_logits_net(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, n_classes, 28), nn.Flatten())  # logits straight from a conv


def test_the_output_layer_is_the_named_head_or_the_last_linear_to_the_classes() -> None:
    builtin = build_model("cnn2-8-16", MNIST, 10)
    assert output_layer(builtin, 10) is builtin.output_layer  # type: ignore[comparison-overlap]
    plugin = sequential_net(MNIST, 10)
    assert output_layer(plugin, 10) is plugin[3]
    check_model(sequential_net, MNIST, 10, head=True)


def test_head_epochs_refuse_a_model_whose_output_layer_cannot_be_found() -> None:
    check_model(conv_logits_net, MNIST, 10)  # a fine model while nothing trains its head alone
    with pytest.raises(ConfigError, match="conv_logits_net.*no `output_layer` attribute.*head_epochs=0"):
        check_model(conv_logits_net, MNIST, 10, head=True)


def test_check_model_is_cheap_even_for_a_model_too_large_to_allocate() -> None:
    huge = ("paper-cnn2-100000-100000", (3, 1024, 1024), 1000)  # ~10^14 weights: meta device only
    check_model(*huge)  # the meta device's first use in a process imports sympy (~1 s), once
    small = ("paper-cnn2-256-512-d0.4", (3, 32, 32), 100)  # small enough to run on the CPU
    start = time.process_time()  # this process's CPU seconds: other jobs on a loaded machine do not count
    with torch.no_grad():
        build_model(*small).eval()(torch.zeros(2, *small[1]))
    build_and_forward = time.process_time() - start
    start = time.process_time()
    check_model(*small)  # builds it, runs it in eval and in train mode, copies it
    checked = time.process_time() - start
    start = time.process_time()
    check_model(*huge[:2], 999)  # not cached: another class count
    assert time.process_time() - start < 0.2
    assert checked < 3 * build_and_forward


class _ChecksForNaN(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.isnan(x).any():  # reads values: impossible on the meta device
            raise ValueError("NaN input")
        return super().forward(x)


def test_a_large_model_whose_forward_reads_values_is_checked_on_the_cpu(monkeypatch) -> None:
    import fedmd_ray.models as models

    monkeypatch.setattr(models, "CPU_PROBE_ELEMENTS", 0)  # every model "large": measured on the meta device first
    check_model(lambda shape, n: _ChecksForNaN(nn.Flatten(), nn.Linear(64, n)), (1, 8, 8), 10)


@pytest.mark.parametrize(
    "name, cpu",
    [
        ("cnn2-8-16", 256),
        ("cnn2-4-8", 512),
        ("mlp-16", 1024),
        ("mlp-512-256-128", 1024),
        ("paper-cnn3-64-128-256", 64),
        ("paper-cnn2-128-512", 64),
    ],
)
def test_default_eval_batch_keeps_activations_cache_sized_on_cpu(name, cpu):
    """Past ~32 MiB of activations per batch, CPU inference slows per image (measured in
    `models.eval_batch`); a GPU wants big batches."""
    assert eval_batch(name, MNIST, 16, "cpu") == cpu
    assert eval_batch(name, MNIST, 16, "cuda") == 1024
    assert eval_batch(name, MNIST, 16, "cpu", configured=32) == 32  # FedMDConfig.eval_batch_size wins
