"""The built-in heterogeneous classifiers, and the checks and sizes of any model.

FedMD (arXiv 1910.03581) lets every party keep its own architecture; only
class scores travel. Users bring their own factories (`fedmd_ray.model_registry`);
the built-ins are specs parsed with one regex, so users can write any size:

- ``paper-cnn2-N1-N2[-dRATE]``, ``paper-cnn3-N1-N2-N3[-dRATE]``: ports of
  ``cnn_2layer_fc_model`` / ``cnn_3layer_fc_model`` from the reference
  implementation (diogenes0319/FedMD_clean, ``Neural_Networks.py``, Keras),
  with Keras defaults (Glorot init, BN momentum 0.99, eps 1e-3). Dropout 0.2
  unless given.
- ``cnnK-C1-...-CK[-dRATE]`` (K = 1..4): small CPU-friendly conv nets,
  PyTorch default init, dropout 0.2 unless given.
- ``mlp-H1[-H2...][-dRATE]``: a multilayer perceptron, dropout 0.2 unless given.

Every model returns logits ``(N, n_classes)`` (no softmax) and has two
attributes the trainer uses: ``output_layer`` (the final ``nn.Linear``, no
bias) and ``output_l2``, the L2 coefficient of that layer's weight. The
reference uses Keras ``kernel_regularizer=l2(1e-3)``, i.e. the loss gains
``1e-3 * sum(w ** 2)`` (no 1/2); the trainer adds ``output_l2 * w.pow(2).sum()``.

SMALL_MODELS (listed in `model_registry`), seconds for one epoch of 30000 random
1x28x28 images, batch 32, Adam, cross-entropy, 16 classes,
``torch.set_num_threads(1)``, torch 2.14.1; best and worst of 3 runs on a shared
2-core dev machine:

    model             params   best s   worst s
    cnn1-8             25184      3.7       6.6
    cnn2-4-8            6632      3.3       4.9
    cnn2-8-16          13840      5.2       7.3
    cnn2-8-8-d0.3       6968      4.9       9.4
    cnn3-4-8-16         3864      4.5       5.5
    cnn3-6-12-24        6876      5.8       8.4
    cnn4-4-8-16-32      6776      5.2       5.5
    mlp-128           102528      0.7       1.0
    mlp-256-128       235904      1.3       2.4
    mlp-512-256-128   568192      3.3       6.0
"""

import copy
import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from fedmd_ray.errors import ConfigError
from fedmd_ray.model_registry import ModelEntry, ModelPlugin, ModelSpec, as_plugin, parse_model_name
from fedmd_ray.plugins import plugin_code

PAPER_OUTPUT_L2 = 1e-3


class KerasSameAvgPool2d(nn.Module):
    """Keras ``AveragePooling2D(pool_size=2, strides=1, padding="same")``.

    TF pads one row at the bottom and one column at the right and averages
    only the valid cells. Replicate padding gives exactly that mean for a 2x2
    window: a window on the right edge holds each of its two valid cells
    twice, the bottom-right one holds the corner four times. Zero padding
    (or ``count_include_pad``) would instead shrink the edges towards 0.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (0, 1, 0, 1), mode="replicate")  # (N, C, H+1, W+1)
        return F.avg_pool2d(padded, kernel_size=2, stride=1)  # (N, C, H, W)


class _ChannelsLastMaxPool2x2(torch.autograd.Function):
    """torch's 2x2 max pool with gradients, its forward run on a channels-last copy: torch's kernel for
    that layout takes 3.5x less time than for (N, C, H, W) and yields the same values and the same
    indices (each window's first maximum, or its last NaN), so torch's own backward, fed those
    indices, routes every gradient exactly as `nn.MaxPool2d` does."""

    @staticmethod
    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, indices = F.max_pool2d_with_indices(x.contiguous(memory_format=torch.channels_last), (2, 2))
        return pooled.contiguous(), indices.contiguous()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        ctx.save_for_backward(inputs[0], output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor, _indices: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x, indices = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(  # type: ignore[no-any-return]
            grad.contiguous(), x, [2, 2], [2, 2], [0, 0], [1, 1], False, indices
        )


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)``, faster on a CPU, with the same values and gradients (tests/test_models.py
    compares both, with ties, NaN and odd sizes); with ``relu=True``, the ReLU that came before it.

    Passes without gradients (scoring, testing) take the maximum of the window's four strided views:
    a maximum is exact; a NaN in a window gives NaN, as torch's does; an odd last row or column is
    dropped, as floor mode does. Only the sign of a zero can differ, where a window holds both -0.0
    and +0.0 (torch's kernel keeps the first of equal values): no sum, product or comparison after it
    tells them apart. Training passes on maps of at least `CHANNELS_LAST_POOL_ELEMENTS` run torch's
    kernel on a channels-last copy (`_ChannelsLastMaxPool2x2`); smaller ones, where the copies cost
    more than they save, and passes under `vmap` keep torch's kernel as it is.

    ``relu=True`` pools first and applies the ReLU to the pooled map, a quarter of the elements: a
    ReLU is monotone, so ``relu(max(window)) == max(relu(window))``, and both orders pass a gradient
    only to the window's first maximum, only where that maximum is above 0 (or NaN). Bit for bit the
    same values and gradients as a ReLU then the pool (tests/test_models.py, tests/test_batched.py).

    Why: torch's CPU max-pool kernel for (N, C, H, W) tensors took more of a 10-party `offline` round than
    the convolutions (26 % of it on one thread; 8 ms for 256 8x28x28 images, where the four-view maximum
    takes 1.3 ms and the channels-last kernel 2.1 ms; docs/performance.md section 7)."""

    def __init__(self, relu: bool = False) -> None:
        super().__init__(2)
        self.relu = relu

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, relu={self.relu}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.relu:
            return self._pool(x)
        if x.device.type != "cpu" or (torch.is_grad_enabled() and not x.requires_grad):
            # The ReLU first, as before, in a party group's training passes (under vmap every tensor says
            # it needs no gradient): there the pooled gradient's layout changes the order in which batch
            # norm's backward sums it, and with it the last bits of every gradient. On a GPU too, where
            # the other order was never compared.
            return self._pool(torch.relu(x))
        pooled = self._pool(x)
        return torch.relu(pooled) if torch.is_grad_enabled() else pooled.relu_()  # a fresh tensor: in place

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        if x.device.type != "cpu" or not height or not width:
            pooled: torch.Tensor = super().forward(x)
            return pooled
        # The grad mode, not x.requires_grad, tells a training pass: under vmap every tensor says False.
        if torch.is_grad_enabled():
            if x.requires_grad and x.dim() == 4 and x.numel() >= CHANNELS_LAST_POOL_ELEMENTS:
                return _ChannelsLastMaxPool2x2.apply(x)[0]  # type: ignore[no-any-return]
            pooled = super().forward(x)
            return pooled
        top = torch.maximum(x[..., 0:height:2, 0:width:2], x[..., 0:height:2, 1:width:2])
        return torch.maximum(top, torch.maximum(x[..., 1:height:2, 0:width:2], x[..., 1:height:2, 1:width:2]))


# Below this many elements (5 images of 8x28x28: 31,360) the channels-last copies of a training pass's
# max pool cost about what the faster kernel saves (measured on one thread: equal at ~16k elements,
# 1.2x at 31k, 1.7x at 125k).
CHANNELS_LAST_POOL_ELEMENTS = 24_576


class Classifier(nn.Module):
    """``features`` then a bias-free linear head; exposes what the trainer needs."""

    output_layer: nn.Linear
    output_l2: float

    def __init__(self, features: nn.Sequential, n_flat: int, n_classes: int, output_l2: float) -> None:
        super().__init__()
        self.features = features
        self.output_layer = nn.Linear(n_flat, n_classes, bias=False)
        self.output_l2 = output_l2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (N, C', H', W') or (N, F)
        logits: torch.Tensor = self.output_layer(torch.flatten(h, 1))  # (N, n_classes)
        return logits


def _keras_bn(channels: int) -> nn.BatchNorm2d:
    # Keras momentum 0.99 keeps 99% of the old running stat; torch's momentum is the new share.
    return nn.BatchNorm2d(channels, momentum=0.01, eps=1e-3)


def _paper_features(spec: ModelSpec, in_channels: int) -> nn.Sequential:
    """Layers of the reference CNNs up to (not including) Flatten.

    Keras Flatten is channels-last (H, W, C); torch flattens (C, H, W). Only
    the order of the head's weights differs, which does not matter when
    training from scratch, so no permute.
    """
    rate, n1 = spec.dropout, spec.widths[0]
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, n1, 3, stride=1, padding="same"),
        _keras_bn(n1), nn.ReLU(), nn.Dropout(rate),
        KerasSameAvgPool2d(),
    ]  # fmt: skip
    if len(spec.widths) == 2:  # cnn_2layer_fc_model
        n2 = spec.widths[1]
        layers += [nn.Conv2d(n1, n2, 3, stride=2), _keras_bn(n2), nn.ReLU(), nn.Dropout(rate)]
    else:  # cnn_3layer_fc_model
        n2, n3 = spec.widths[1:]
        layers += [
            nn.Conv2d(n1, n2, 2, stride=2), _keras_bn(n2), nn.ReLU(), nn.Dropout(rate),
            nn.AvgPool2d(2, stride=2),
            nn.Conv2d(n2, n3, 3, stride=2), _keras_bn(n3), nn.ReLU(), nn.Dropout(rate),
        ]  # fmt: skip
    return nn.Sequential(*layers)


def _cnn_features(spec: ModelSpec, input_shape: tuple[int, int, int]) -> nn.Sequential:
    """Conv-BN-ReLU-MaxPool stages; a pool is skipped once the map is 1 pixel
    wide so that 8x8 inputs still fit four stages.

    Where a stage pools, its ReLU runs inside the pool, after it (`MaxPool2x2(relu=True)`: the same
    values and gradients on a quarter of the elements), and an `nn.Identity` holds the ReLU's place:
    the layers keep their numbers (saved states load either way) and their outputs' sizes (which
    `eval_batch` reads, so the forward-only batches, and with them every number, stay as they were)."""
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    for out in spec.widths:
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out)]
        if min(height, width) >= 2:
            layers += [nn.Identity(), MaxPool2x2(relu=True)]
            height, width = height // 2, width // 2
        else:
            layers.append(nn.ReLU())
        channels = out
    layers.append(nn.Dropout(spec.dropout))
    return nn.Sequential(*layers)


def _mlp_features(spec: ModelSpec, input_shape: tuple[int, int, int]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]  # (N, C*H*W)
    n_in = input_shape[0] * input_shape[1] * input_shape[2]
    for hidden in spec.widths:
        layers += [nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(spec.dropout)]
        n_in = hidden
    return nn.Sequential(*layers)


def _features(spec: ModelSpec, input_shape: tuple[int, int, int]) -> nn.Sequential:
    if spec.family == "paper-cnn":
        return _paper_features(spec, input_shape[0])
    if spec.family == "cnn":
        return _cnn_features(spec, input_shape)
    return _mlp_features(spec, input_shape)


# Forward passes that only measure (shapes, FLOPs) run on the CPU when the model is this
# small (parameters + a bound on one sample's activations, in elements): milliseconds
# there. Larger ones run on the meta device (no memory), whose first use imports sympy
# and torch's symbolic shapes: ~1 s of CPU in every process, each party actor included.
CPU_PROBE_ELEMENTS = 20_000_000


def _probe(
    build: Callable[[], nn.Module],
    input_shape: tuple[int, int, int],
    batch: int,
    hook: Callable[..., None] | None = None,
) -> tuple[nn.Module, torch.Tensor]:
    """`build()` and a forward pass of `batch` zero images through it (values meaningless), with
    `hook` on every leaf module; torch's RNG is left as it was. A module that cannot be built or run
    on the meta device (custom initialisation or a forward that reads values) runs on the CPU."""
    with torch.random.fork_rng(devices=[]), plugin_code():
        try:
            with torch.device("meta"):
                module = build()
            if isinstance(module, nn.Module) and not _small(module, input_shape):
                return module, _forward(module, "meta", input_shape, batch, hook)
        except Exception:
            pass  # measured on the CPU below
        with torch.device("cpu"):  # also inside a caller's meta-device context
            module = build()
        if not isinstance(module, nn.Module):
            raise TypeError(f"returned {type(module).__name__}, not a torch.nn.Module")
        return module, _forward(module, "cpu", input_shape, batch, hook)


def _forward(
    module: nn.Module, device: str, input_shape: tuple[int, int, int], batch: int, hook: Callable[..., None] | None
) -> Any:
    """An eval-mode forward pass of zeros (what the module returns, checked by the callers); `hook`
    sees every leaf module's call once the pass succeeded (a pass that fails on the meta device must
    not leave half a count behind)."""
    calls: list[tuple[Any, ...]] = []
    handles = [
        m.register_forward_hook(lambda *call: calls.append(call))
        for m in module.modules()
        if hook and not list(m.children())
    ]
    try:
        with torch.device(device), torch.no_grad():
            out = module.eval()(torch.zeros(batch, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
    if hook is not None:
        for call in calls:
            hook(*call)
    return out


def _small(module: nn.Module, input_shape: tuple[int, int, int]) -> bool:
    c, h, w = input_shape
    widths = [c] + [m.out_channels for m in module.modules() if isinstance(m, nn.Conv2d)]
    widths += [m.out_features for m in module.modules() if isinstance(m, nn.Linear)]
    activations = sum(1 for _ in module.modules()) * max(widths) * h * w  # every layer at full width and size
    return sum(p.numel() for p in module.parameters()) + activations <= CPU_PROBE_ELEMENTS


def _flat_size(name: str, spec: ModelSpec, input_shape: tuple[int, int, int]) -> int:
    """Width of the flattened features, from a forward pass (see `_probe`); raises if the
    input is too small."""
    cause: RuntimeError | None = None
    n_flat = 0
    try:
        n_flat = _probe(lambda: _features(spec, input_shape), input_shape, 2)[1][0].numel()  # (2, C', H', W') / (2, F)
    except RuntimeError as exc:  # a kernel or pool larger than its input
        cause = exc
    if n_flat == 0:
        c, h, w = input_shape
        raise ConfigError(
            f"model {name!r} cannot take input shape {input_shape} ({h}x{w} images with {c} "
            f"channel(s)): its feature map shrinks to nothing; it needs larger images "
            f"(or use a cnnK/mlp spec, which fit 8x8)"
        ) from cause
    return n_flat


def _check_sizes(input_shape: tuple[int, int, int], n_classes: int) -> None:
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ConfigError(f"input_shape {input_shape} must be (channels, height, width), all >= 1")
    if n_classes < 1:
        raise ConfigError(f"n_classes={n_classes} must be at least 1")


def _keras_init(model: nn.Module) -> None:
    """Keras defaults: Glorot-uniform kernels, zero biases (torch uses Kaiming)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build_model(name: str, input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """Build the built-in classifier spec ``name`` for ``(C, H, W)`` float inputs; returns logits."""
    _check_sizes(input_shape, n_classes)
    spec = parse_model_name(name)
    n_flat = _flat_size(name, spec, input_shape)
    paper = spec.family == "paper-cnn"
    model = Classifier(_features(spec, input_shape), n_flat, n_classes, PAPER_OUTPUT_L2 if paper else 0.0)
    if paper:
        _keras_init(model)
    return model


def check_model(
    model: ModelPlugin | ModelEntry, input_shape: tuple[int, int, int], n_classes: int, *, head: bool = False
) -> None:
    """Fail fast, before Ray starts: build the model and run one forward pass of two images (see
    `_probe`); ConfigError naming the entry and the shapes when the factory raises, returns no
    `nn.Module`, or maps `(2, C, H, W)` to anything but `(2, n_classes)` logits; with `head`, also
    when `output_layer` cannot find its output layer (`head_epochs` trains it alone)."""
    _check_sizes(input_shape, n_classes)
    _check_plugin(as_plugin(model), input_shape, n_classes, head)


def output_layer(model: nn.Module, n_classes: int, name: str = "") -> nn.Module:
    """The layer that maps features to the `n_classes` logits, which `head_epochs` trains alone: the
    model's `output_layer` attribute (the built-ins'; a plug-in may name its head so), else its last
    `nn.Linear` with `n_classes` outputs. ConfigError when it has neither."""
    named = getattr(model, "output_layer", None)
    if isinstance(named, nn.Module) and any(True for _ in named.parameters()):
        return named
    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == n_classes]
    if linears:
        return linears[-1]
    raise ConfigError(
        f"head_epochs > 0 trains the output layer alone, but model {name or type(model).__name__!r} has no "
        f"`output_layer` attribute and no nn.Linear with {n_classes} outputs; name its head `output_layer` "
        "or set head_epochs=0"
    )


@functools.cache  # a sweep checks every grid point: each model once per shape (failures are not cached)
def _check_plugin(model: ModelPlugin, input_shape: tuple[int, int, int], n_classes: int, head: bool) -> None:
    try:
        module, out = _probe(lambda: model.build(input_shape, n_classes), input_shape, 2)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"model {model.name!r} for input (2, {', '.join(map(str, input_shape))}) and {n_classes} classes: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != (2, n_classes) or not out.is_floating_point():
        raise ConfigError(
            f"model {model.name!r} maps input (2, {', '.join(map(str, input_shape))}) to {got}; expected float "
            f"logits of shape (2, {n_classes}) (one score per class of the public + private label space)"
        )
    _check_trainable(model.name, module, input_shape, n_classes)
    if head:
        output_layer(module, n_classes, model.name)  # on the module just probed: no second build


def _check_trainable(name: str, module: nn.Module, input_shape: tuple[int, int, int], n_classes: int) -> None:
    """What training needs beyond an eval-mode forward: parameters to optimise, a train-mode forward
    that gives logits too, and a deep copy (weight averaging and the batch-norm check copy models)."""
    parameters = [p for p in module.parameters() if p.requires_grad]
    if not parameters:
        raise ConfigError(
            f"model {name!r} has no trainable parameters (layers kept in a plain list or dict are not registered: "
            "use nn.ModuleList / nn.ModuleDict)"
        )
    try:
        with plugin_code():
            copy.deepcopy(module)
    except Exception as exc:
        raise ConfigError(
            f"model {name!r} cannot be copied ({type(exc).__name__}: {exc}): parties copy their models "
            "(`swa`, `wise_ft`, the batch-norm check); keep objects such as locks, open files or clients out of "
            "its attributes"
        ) from exc
    shape = ", ".join(map(str, input_shape))
    with torch.random.fork_rng(devices=[]), torch.device(parameters[0].device), torch.no_grad():
        try:
            with plugin_code():
                out = module.train()(torch.zeros(2, *input_shape))
        except Exception as exc:
            raise ConfigError(f"model {name!r} in train mode, input (2, {shape}): {type(exc).__name__}: {exc}") from exc
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != (2, n_classes):
        raise ConfigError(
            f"model {name!r} in train mode maps input (2, {shape}) to {got}; expected logits (2, {n_classes})"
        )


@dataclass(frozen=True)
class Footprint:
    """Sizes of one model that decide its cost, counted in one forward pass (see `_probe`)."""

    params: int
    flops: int  # forward pass, one sample
    activations: int  # elements output by all leaf modules, one sample

    @property
    def cpu_cost(self) -> float:
        """Estimated milliseconds of one training step per sample on one CPU thread.

        A least-squares fit of 0.044 ms/MFLOP + 0.0076 ms per thousand activations
        over the 20 registered models (batch 64, torch 2.14, 2-core dev machine):
        small convnets are bound by memory traffic, not FLOPs. Only ratios are
        used (balancing parties across actors), so the machine drops out.
        """
        return 0.044 * self.flops / 1e6 + 0.0076 * self.activations / 1e3


GPU_EVAL_BATCH = 1024
CPU_EVAL_BYTES = 32 * 2**20


def eval_batch(
    model: ModelPlugin | ModelEntry,
    input_shape: tuple[int, int, int],
    n_classes: int,
    device_type: str,
    configured: int | None = None,
) -> int:
    """Batch for scoring and testing: `configured` (`FedMDConfig.eval_batch_size`) when set.

    Otherwise, on a GPU, 1024. On a CPU, the largest power of two from 64 to 1024 whose
    activations (summed over layers) fit 32 MiB, about an L3 cache: past that,
    inference slows per image. Measured on the 2-core VM, one thread, two
    processes at once (us per image at batch 64 / 256 / 1024): cnn2-8-16 (123 KiB
    per sample, gets 256) 55 / 59 / 84; mlp-16 (3 KiB, gets 1024) 1.0 / 0.6 / 0.5;
    paper-cnn3-64-128-256 (1.4 MiB, gets 64) 770 / 1608 / 1681.
    """
    if configured is not None:
        return configured
    if device_type == "cuda":
        return GPU_EVAL_BATCH
    per_sample = 4 * footprint(model, input_shape, n_classes).activations
    batch = 64
    while batch < 1024 and 2 * batch * per_sample <= CPU_EVAL_BYTES:
        batch *= 2
    return batch


def footprint(model: ModelPlugin | ModelEntry, input_shape: tuple[int, int, int], n_classes: int) -> Footprint:
    """Parameters, forward FLOPs and activations per sample of any model (a plug-in or an entry)."""
    return _footprint(as_plugin(model), input_shape, n_classes)


@functools.cache
def _footprint(model: ModelPlugin, input_shape: tuple[int, int, int], n_classes: int) -> Footprint:
    """Parameters, forward FLOPs and activations per sample, counted in one forward pass.

    FLOPs are those of its convolutions and linear layers (2 per multiply-add),
    as torch's FlopCounterMode counts them, counted by hooks instead: that mode
    costs ~0.7 s on its first use in a process. Activations count every tensor a
    leaf module outputs.
    """
    flops: list[int] = []
    activations: list[int] = []

    def count(module: nn.Module, _inputs: tuple[torch.Tensor, ...], out: object) -> None:
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        tensors = [o for o in outputs if isinstance(o, torch.Tensor)]
        activations.append(sum(t.numel() for t in tensors))
        if not tensors:
            return
        if isinstance(module, nn.Conv2d):
            flops.append(2 * tensors[0].numel() * module.weight[0].numel())  # (C_in / groups) x kH x kW each
        elif isinstance(module, nn.Linear):
            flops.append(2 * tensors[0].numel() * module.in_features)

    built, _ = _probe(lambda: model.build(input_shape, n_classes), input_shape, 1, count)
    params = sum(p.numel() for p in built.parameters())
    return Footprint(params=params, flops=sum(flops), activations=sum(activations))
