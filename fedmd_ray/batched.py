"""Parties of one architecture trained, scored and evaluated as one computation (pure torch).

At 100-1000 parties a host holds dozens of parties per architecture, each a small model
whose every step is a few tiny kernels: the time goes to per-step overhead, not
arithmetic. Here the parameters of P such parties are stacked on a leading dimension and
every step runs once for all of them (`torch.func.functional_call` under `vmap`), while
each party keeps what makes it a party:

- its own parameters, batch-norm statistics and Adam moments and step count (stacked
  for the call, copied back into the party's own module and optimizer after it);
- its own data order, dropout masks and augmentation offsets, drawn from its own torch
  generator in the order its own training would draw them (`torch.randperm`, then per
  batch the shift offsets, then one mask per dropout layer: `nn.Dropout`'s
  `bernoulli_(1 - p)`), so the RNG stream a party carries on is the one it would have.

What "the same result" means: the batched kernels reduce in another order than one
party's own (a weight gradient summed over the batch), so a party's numbers agree with
the per-party path to float32 rounding, not bit for bit; each party's result does not
depend on which other parties share its call (measured for groups of 2 and more: a
group of one runs the per-party path), so within this path results are bit-identical
for any `parties_per_actor`, across resumes and backends (tests/test_batched.py).

Models qualify when every leaf module is of a kind whose batched form is exact (`check`):
convolutions, linear layers, batch norm (its running statistics stacked like weights),
pooling, activations, `nn.Dropout` (masks drawn per party); a model with anything else,
or whose forward or loss does not run under `vmap`, takes the per-party path.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.optim.adam import adam

from fedmd_ray.training import Scored

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

EXACT = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ELU,
    nn.SiLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.Dropout,
)


def unsupported(model: nn.Module) -> str | None:
    """Why `model` cannot be batched (a leaf module of another kind), or None when it can."""
    from fedmd_ray.models import KerasSameAvgPool2d  # a pad and a pool: exact under vmap

    for name, module in model.named_modules():
        if list(module.children()):
            continue
        if not isinstance(module, (*EXACT, KerasSameAvgPool2d)) or (
            isinstance(module, nn.Dropout) and type(module) is not nn.Dropout
        ):
            return f"its module {name or type(module).__name__} ({type(module).__name__}) is not one fedmd_ray batches"
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is None:
            return f"its batch norm {name} averages cumulatively (momentum=None)"
    return None


class _PartyDropout(nn.Module):
    """`nn.Dropout` whose mask (already scaled by 1 / (1 - p)) comes in as a buffer, one per party."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.register_buffer("mask", torch.empty(0, device="meta"), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.get_buffer("mask")
        return x * mask if self.training and self.p > 0 else x


@torch.library.custom_op("fedmd_ray::linear", mutates_args=())
def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`F.linear`, with a batching rule of its own (`_linear_rule`) for forward-only passes."""
    return F.linear(x, weight, bias)


@_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _linear_rule(
    info: Any, in_dims: tuple[int | None, ...], x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, int]:
    """Every party's weights against one input (the test set, the alignment subset): one matrix product
    with the parties' outputs side by side, (b, in) @ (in, P*out), instead of P thin ones; each output is
    the same dot product as a party's own `F.linear` gives. Per-party inputs: a batched product."""
    x_dim, w_dim, b_dim = in_dims
    parties = info.batch_size
    w = weight.movedim(w_dim, 0) if w_dim is not None else weight.expand(parties, *weight.shape)  # (P, out, in)
    b = None if bias is None else (bias.movedim(b_dim, 0) if b_dim is not None else bias.expand(parties, -1))
    out_features = w.shape[1]
    if x_dim is None:
        out = F.linear(x, w.reshape(parties * out_features, -1), None if b is None else b.reshape(-1))
        return out.reshape(*out.shape[:-1], parties, out_features).movedim(-2, 0), 0  # (P, ..., out)
    xs = x.movedim(x_dim, 0)  # (P, ..., in)
    flat = xs.reshape(parties, -1, xs.shape[-1])
    out = torch.bmm(flat, w.transpose(1, 2)) if b is None else torch.baddbmm(b.unsqueeze(1), flat, w.transpose(1, 2))
    return out.reshape(*xs.shape[:-1], out_features), 0


_linear.register_vmap(_linear_rule)


class _OneInputLinear(nn.Linear):
    """`nn.Linear` through `_linear` (no autograd: forward-only passes of `Stack.logits`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _linear(x, self.weight, self.bias)  # type: ignore[no-any-return]


def _forward_only(base: nn.Module) -> nn.Module:
    """A copy of `base` whose linear layers take `_linear`'s batching rule."""
    copied = copy.deepcopy(base)
    for name, module in list(copied.named_modules()):
        if type(module) is nn.Linear:
            parent, _, leaf = name.rpartition(".")
            replacement = _OneInputLinear(
                module.in_features, module.out_features, bias=module.bias is not None, device="meta"
            )
            setattr(copied.get_submodule(parent) if parent else copied, leaf, replacement)
    return copied


ROW_ALIGN = 64  # floats: a party's row in the flat buffers starts where a vector register does, whatever its slot


@dataclasses.dataclass
class Stack:
    """P models of one architecture: `base` runs them (its dropout layers replaced); their parameters are
    one flat buffer `(P, L)`, a row per party padded to a multiple of `ROW_ALIGN`, viewed per name as
    `(P, *shape)` (`params`); batch-norm statistics are stacked per name (`buffers`).

    Why one padded row per party: element-wise kernels (Adam's) run a vectorised body and a scalar tail
    that may round differently; with every row starting on a vector boundary and no tail, each party's
    numbers are the same in whichever slot of whichever stack it is."""

    base: nn.Module
    forward_only: nn.Module  # `base` for passes without gradients (`_forward_only`)
    flat: torch.Tensor  # (P, L): every party's parameters, a row each
    grad: torch.Tensor  # (P, L): their gradients, laid out alike (what each parameter's `.grad` views)
    layout: dict[str, tuple[int, torch.Size]]  # parameter name -> (offset in a row, shape)
    params: dict[str, torch.Tensor]  # name -> (P, *shape): views of `flat`, leaves that require grad
    buffers: dict[str, torch.Tensor]
    dropouts: dict[str, float]  # mask buffer name -> dropout rate, in forward order

    @classmethod
    def of(cls, models: Sequence[nn.Module]) -> Stack:
        layout, offset = {}, 0
        for name, param in models[0].named_parameters():
            layout[name] = (offset, param.shape)
            offset += param.numel()
        width = -(-offset // ROW_ALIGN) * ROW_ALIGN
        first = next(models[0].parameters())
        flat = torch.zeros(len(models), width, dtype=first.dtype, device=first.device)
        with torch.no_grad():
            for row, model in enumerate(models):
                for name, param in model.named_parameters():
                    start = layout[name][0]
                    flat[row, start : start + param.numel()] = param.reshape(-1)
        _, buffers = stack_module_state(list(models))
        base = copy.deepcopy(models[0]).to("meta")
        dropouts = {}
        for name, module in list(base.named_modules()):
            if type(module) is nn.Dropout:
                parent, _, leaf = name.rpartition(".")
                setattr(base.get_submodule(parent) if parent else base, leaf, _PartyDropout(module.p))
                dropouts[f"{name}.mask"] = module.p
        grad = torch.zeros_like(flat)
        params = {}
        for name, (start, shape) in layout.items():  # views of flat (Adam updates flat), their gradients views of grad
            params[name] = flat[:, start : start + shape.numel()].view(len(models), *shape).requires_grad_(True)
            params[name].grad = grad[:, start : start + shape.numel()].view(len(models), *shape)
        return cls(base, _forward_only(base), flat, grad, layout, params, buffers, dropouts)

    @property
    def size(self) -> int:
        return self.flat.shape[0]

    def for_inference(self) -> Stack:
        """This stack for forward-only passes over many batches: each parameter a contiguous `(P, *shape)`
        copy, made once, so that `_linear_rule` views the parties' weights side by side in every batch
        instead of copying them out of their padded rows each time (the same values: the same products)."""
        return dataclasses.replace(self, params={name: p.detach().contiguous() for name, p in self.params.items()})

    def backward(self, loss: torch.Tensor) -> None:
        """The gradients of `loss` into `grad` (each parameter's `.grad` is a view of it: no copies)."""
        self.grad.zero_()
        with warnings.catch_warnings():  # the views are strided: torch says so, and accumulates into them
            warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
            loss.backward()  # type: ignore[no-untyped-call]

    def segment(self, names: Sequence[str]) -> torch.Tensor:
        """A `(L,)` mask of the row positions holding the parameters `names`."""
        mask = torch.zeros(self.flat.shape[1], dtype=torch.bool, device=self.flat.device)
        for name in names:
            start, shape = self.layout[name]
            mask[start : start + shape.numel()] = True
        return mask

    def copy_into(self, models: Sequence[nn.Module]) -> None:
        """Each party's row back into its own module (in place: its optimizer keeps its tensors)."""
        with torch.no_grad():
            params = self.params
            for i, model in enumerate(models):
                for name, param in model.named_parameters():
                    param.copy_(params[name][i])
                for name, buffer in model.named_buffers():
                    if name in self.buffers:
                        buffer.copy_(self.buffers[name][i])

    def logits(
        self, x: torch.Tensor, *, shared: bool, train: bool = False, masks: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(P, b, classes) logits of every party: `x` is one batch for all (`shared`, (b, ...)) or one each
        ((P, b, ...)). Without gradients (`torch.no_grad`), linear layers take one product for all parties."""
        module = self.base if torch.is_grad_enabled() else self.forward_only
        module.train(train)
        buffers = {**self.buffers, **(masks or {})}

        def call(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = functional_call(module, (params, buffers), (x,))
            return out

        out: torch.Tensor = vmap(call, in_dims=(0, 0, None if shared else 0))(self.params, buffers, x)
        return out


class StackedAdam:
    """The Adam optimizers of P parties (one per party, all with the same hyperparameters, each over some
    or all of its model's parameters) as one: their moments in flat rows like `Stack.flat`, each party's
    step count kept. Stepped with torch's fused Adam, once per distinct step count (normally one);
    positions outside the optimizers' parameters get no gradient and keep zero moments, so they stay
    exactly as they are (a fresh head-only optimizer trains the head alone)."""

    def __init__(self, optimizers: Sequence[torch.optim.Adam], stack: Stack, models: Sequence[nn.Module]) -> None:
        group = optimizers[0].param_groups[0]
        self.lr, self.betas, self.eps = float(group["lr"]), group["betas"], float(group["eps"])
        self.stack, self.optimizers, self.models = stack, list(optimizers), list(models)
        owned = {id(p) for p in group["params"]}
        self.names = [n for n, p in models[0].named_parameters() if id(p) in owned]
        self.trained = stack.segment(self.names)
        self.frozen = not bool(self.trained[: sum(shape.numel() for _, shape in stack.layout.values())].all())
        self.avg = torch.zeros_like(stack.flat, requires_grad=False)
        self.avg_sq = torch.zeros_like(stack.flat, requires_grad=False)
        steps = []
        for row, (model, optimizer) in enumerate(zip(models, optimizers)):
            named = dict(model.named_parameters())
            for name in self.names:
                state = optimizer.state.get(named[name], {})
                start, shape = stack.layout[name]
                if "exp_avg" in state:
                    self.avg[row, start : start + shape.numel()] = state["exp_avg"].reshape(-1)
                    self.avg_sq[row, start : start + shape.numel()] = state["exp_avg_sq"].reshape(-1)
            first = optimizer.state.get(named[self.names[0]], {}) if self.names else {}
            steps.append(float(first.get("step", 0.0)))
        self.steps = torch.tensor(steps, dtype=torch.float32)

    @torch.no_grad()
    def step(self) -> None:
        flat, grad = self.stack.flat, self.stack.grad
        if self.frozen:  # parameters outside the optimizers never move
            grad = grad * self.trained
        for count in torch.unique(self.steps).tolist():  # the counts before this step: `adam` adds one
            rows = (self.steps == count).nonzero().flatten()
            whole = len(rows) == len(self.steps)

            def pick(t: torch.Tensor, whole: bool = whole, rows: torch.Tensor = rows) -> torch.Tensor:
                return t if whole else t.index_select(0, rows)

            p, g, m, v = pick(flat), pick(grad), pick(self.avg), pick(self.avg_sq)
            adam(
                [p],
                [g],
                [m],
                [v],
                [],
                [torch.tensor(count)],
                fused=True,
                amsgrad=False,
                beta1=self.betas[0],
                beta2=self.betas[1],
                lr=self.lr,
                weight_decay=0.0,
                eps=self.eps,
                maximize=False,
            )
            if not whole:  # the rows were copies
                flat.index_copy_(0, rows, p)
                self.avg.index_copy_(0, rows, m)
                self.avg_sq.index_copy_(0, rows, v)
        self.steps += 1

    def copy_into(self, count: int | None = None) -> None:
        """Each party's moments and step count back into its own optimizer's state (the first `count`)."""
        for row, (model, optimizer) in enumerate(zip(self.models[:count], self.optimizers[:count])):
            named = dict(model.named_parameters())
            for name in self.names:
                start, shape = self.stack.layout[name]
                optimizer.state[named[name]] = {
                    "step": torch.tensor(float(self.steps[row])),
                    "exp_avg": self.avg[row, start : start + shape.numel()].reshape(shape).clone(),
                    "exp_avg_sq": self.avg_sq[row, start : start + shape.numel()].reshape(shape).clone(),
                }


def draw_masks(
    stack: Stack, gens: Sequence[torch.Generator], shapes: dict[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """Per dropout layer, each party's mask from its own (CPU) generator, as `nn.Dropout` draws it on a CPU:
    `empty(shape).bernoulli_(1 - p)`, scaled by 1 / (1 - p); party by party, layer after layer; then moved
    to the stack's device."""
    masks: dict[str, list[torch.Tensor]] = {name: [] for name in stack.dropouts}
    for gen in gens:
        for name, p in stack.dropouts.items():
            if p <= 0:
                continue
            mask = torch.empty(shapes[name]).bernoulli_(1 - p, generator=gen)
            masks[name].append(mask.div_(1 - p))
    return {name: torch.stack(m).to(stack.flat.device) for name, m in masks.items() if m}


def dropout_shapes(stack: Stack, sample: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The input shape of each dropout layer for a batch shaped like `sample` (one party's (b, ...))."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in stack.base.named_modules():
        if isinstance(module, _PartyDropout):
            key = f"{name}.mask"
            handles.append(
                module.register_forward_pre_hook(lambda m, args, key=key: shapes.__setitem__(key, tuple(args[0].shape)))
            )
    try:
        with torch.no_grad():
            one = {k: v[0].detach().to("meta") for k, v in stack.params.items()}
            stack.base.eval()
            functional_call(
                stack.base, (one, {k: v[0].to("meta") for k, v in stack.buffers.items()}), (sample.to("meta"),)
            )
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def train_epochs(
    stack: Stack,
    optimizer: StackedAdam,
    gens: Sequence[torch.Generator],
    x: torch.Tensor,
    target: torch.Tensor,
    loss_fn: LossFn,
    *,
    shared: bool,
    shared_target: bool,
    epochs: int,
    batch_size: int,
    augment: Augment | None = None,
    penalty: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
    logit_scale: torch.Tensor | None = None,
) -> list[float]:
    """`training.train_epochs` for every party of the stack at once; each party's mean loss of the last
    epoch. `x`: one set for all parties (`shared`: (n, ...), each party its own order) or one per party
    ((P, n, ...)); `target` likewise (`shared_target`). Raises FloatingPointError naming the parties whose
    loss went non-finite. Random draws come from each party's CPU generator, on any device. `logit_scale`
    ((P, classes)): each party's logits times its row before the loss (`training.restricted_cross_entropy`)."""
    n = x.shape[0] if shared else x.shape[1]
    parties = torch.arange(stack.size, device=x.device)[:, None]
    last = [math.nan] * stack.size
    shapes: dict[int, dict[str, tuple[int, ...]]] = {}
    per_party = vmap(lambda out, tgt: loss_fn(out, tgt))
    for _ in range(epochs):
        order = torch.stack([torch.randperm(n, generator=gen) for gen in gens]).to(x.device)  # (P, n)
        totals = torch.zeros(stack.size, dtype=torch.float64)
        for start in range(0, n, batch_size):
            idx = order[:, start : start + batch_size]  # (P, b)
            inputs = x[idx] if shared else x[parties, idx]  # (P, b, ...)
            if augment is not None:
                inputs = torch.stack([augment(inputs[p], gen) for p, gen in enumerate(gens)])
            if idx.shape[1] not in shapes:
                shapes[idx.shape[1]] = dropout_shapes(stack, inputs[0])
            masks = draw_masks(stack, gens, shapes[idx.shape[1]])
            outputs = stack.logits(inputs, shared=False, train=True, masks=masks)  # (P, b, classes)
            if logit_scale is not None:
                outputs = outputs * logit_scale[:, None, :]
            targets = target[idx] if shared_target else target[parties, idx]
            losses = per_party(outputs, targets)  # (P,)
            values = losses.detach().double()
            bad = (~torch.isfinite(values)).nonzero().flatten().tolist()
            if bad:
                raise FloatingPointError(
                    f"the training loss of stacked part(ies) {bad} is not finite; their weights "
                    "are left as before this batch",
                    bad,
                )
            stack.backward(losses.sum() if penalty is None else losses.sum() + penalty(stack.params))
            optimizer.step()
            totals += values * idx.shape[1]
        last = (totals / n).tolist()
    return last


@torch.no_grad()
def evaluate(stack: Stack, x: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> list[Scored]:
    """`training.evaluate` of every party: accuracy, mean cross-entropy and predicted classes on one
    labelled set."""
    stack = stack.for_inference()
    correct = torch.zeros(stack.size, dtype=torch.int64, device=x.device)
    loss = torch.zeros(stack.size, dtype=torch.float64, device=x.device)
    guesses, classes = [], 0
    for i in range(0, len(x), batch_size):
        logits = stack.logits(x[i : i + batch_size], shared=True)  # (P, b, classes)
        target = y[i : i + batch_size]
        wide = logits.to(torch.promote_types(logits.dtype, torch.float32))
        loss += F.cross_entropy(wide.transpose(1, 2), target.expand(stack.size, -1), reduction="none").double().sum(1)
        guesses.append(logits.argmax(dim=2))  # (P, b)
        correct += (guesses[-1] == target).sum(1)
        classes = logits.shape[2]
    if not torch.isfinite(loss).all():
        raise FloatingPointError("the evaluation loss is not finite: a model's outputs are not finite")
    guess = torch.cat(guesses, dim=1)  # (P, n)
    predicted = torch.zeros(stack.size, classes, dtype=torch.int64, device=x.device)
    predicted.scatter_add_(1, guess, torch.ones_like(guess))
    return [
        Scored(int(right) / len(x), float(total) / len(x), counts)
        for right, total, counts in zip(correct.cpu(), loss.cpu(), predicted.cpu(), strict=True)
    ]


@torch.no_grad()
def class_scores(stack: Stack, x: torch.Tensor, *, batch_size: int) -> torch.Tensor:
    """`training.class_scores` of every party: (P, n, classes) float32 logits in inference mode."""
    stack = stack.for_inference()
    return torch.cat(
        [stack.logits(x[i : i + batch_size], shared=True).float() for i in range(0, len(x), batch_size)], dim=1
    )


def generators(states: Sequence[torch.Tensor]) -> list[torch.Generator]:
    """One torch generator per party, at the party's saved RNG state (`Participant._rng_state`)."""
    gens = []
    for state in states:
        gen = torch.Generator()
        gen.set_state(state)
        gens.append(gen)
    return gens


def check_loss(loss_fn: LossFn, classes: int) -> str | None:
    """Why `loss_fn` cannot run under vmap (it reads values into Python, ...), or None."""
    try:
        vmap(lambda out, tgt: loss_fn(out, tgt))(torch.randn(2, 4, classes), torch.randn(2, 4, classes))
    except Exception as exc:
        return f"its digest loss does not run batched ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return None
