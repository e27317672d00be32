"""What each CPU lever does to a round of 10 heterogeneous parties (the `offline` preset's models).

One host holding the preset's 10 small CNNs/MLPs (torch on 1 thread, as each of Ray's
host actors runs), after a short transfer learning. The same round (score the subset,
digest, revisit, evaluate, score the next subset, save the states) is then timed from
the same saved state under each lever, and its scores compared bit for bit with the
plain round's: a lever that changes numbers cannot be a default (the README's table
must stay as it is).

Levers of the built-in CNNs' pools (a ratio below 1 is what the code saves against the code
before it; `models.MaxPool2x2` pools without gradients through the maximum of four strided
views, with them through torch's kernel on a channels-last copy, and runs the stage's ReLU
after the pool): the pools as issue 35 found them (a ReLU, then torch's own (N, C, H, W)
kernel in every pass); the code before the channels-last copy and the ReLU in the pool; the
ReLU before the pool alone;
`torch.inference_mode` for scoring and testing instead of `no_grad`;
channels-last tensors for the convolutions; `torch.compile` of every model (its compile
time reported apart, and the whole cost spread over a 20-round run); forward-only batches
of 128 and of 1024 for every model instead of the per-model cache-sized batch; Adam's
foreach kernels instead of its per-tensor loop. "Same numbers" compares each party's scores
on the next subset, test accuracy and test loss to the last bit.

    python benchmarks/round_levers.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch
from common import record

import fedmd_ray
from fedmd_ray import training
from fedmd_ray.actors.messages import (
    Communicate,
    DigestRevisitEvaluate,
    Distributed,
    ExportState,
    ImportState,
    TransferLearn,
)
from fedmd_ray.actors.participant import PartyHost
from fedmd_ray.aggregation import mean_consensus
from fedmd_ray.data.sampling import sample_alignment
from fedmd_ray.experiment import prepare
from fedmd_ray.models import MaxPool2x2


def one_round(host: PartyHost, align: np.ndarray, next_align: np.ndarray) -> tuple[float, dict[int, Any]]:
    """Seconds of one round, and what it gave each party: its scores on the next subset, its test
    accuracy and loss (a lever has the same numbers only where all three are equal to the last bit)."""
    start = time.perf_counter()
    scores = host.run(Communicate(align))
    consensus = mean_consensus(np.stack([scores[p] for p in sorted(scores)]))
    results = host.run(DigestRevisitEvaluate(1, align, Distributed(consensus), next_align))
    host.states()  # what a round's saving call returns with its answer
    seconds = time.perf_counter() - start
    return seconds, {p: (r.next_scores, r.evaluation.accuracy, r.evaluation.loss) for p, r in results.items()}


def same_numbers(plain: dict[int, Any], other: dict[int, Any]) -> bool:
    return all(np.array_equal(plain[p][0], other[p][0]) and plain[p][1:] == other[p][1:] for p in plain)


@contextlib.contextmanager
def inference_mode() -> Iterator[None]:
    """Scoring and testing under `torch.inference_mode` (the round's forward-only passes)."""
    originals = training.class_scores, training.evaluate

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any, **kwargs: Any) -> Any:
            with torch.inference_mode():
                return fn.__wrapped__(*args, **kwargs) if hasattr(fn, "__wrapped__") else fn(*args, **kwargs)

        return inner

    training.class_scores, training.evaluate = wrap(originals[0]), wrap(originals[1])
    try:
        yield
    finally:
        training.class_scores, training.evaluate = originals


@contextlib.contextmanager
def _max_pool_forward(forward: Callable[[MaxPool2x2, torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """`MaxPool2x2.forward` replaced by `forward(pool, x)`."""
    fast = MaxPool2x2.forward
    MaxPool2x2.forward = forward  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        MaxPool2x2.forward = fast  # type: ignore[method-assign]


def _relu_first(pool: MaxPool2x2, x: torch.Tensor) -> torch.Tensor:
    """The ReLU that `MaxPool2x2(relu=True)` runs after its pool, run before it on the whole map."""
    return torch.relu(x) if pool.relu else x


def pools_as_filed() -> contextlib.AbstractContextManager[None]:
    """The code before `models.MaxPool2x2`: a ReLU, then torch's own (N, C, H, W) kernel in every pass."""
    return _max_pool_forward(lambda pool, x: torch.nn.MaxPool2d.forward(pool, _relu_first(pool, x)))


def nchw_training_pool() -> contextlib.AbstractContextManager[None]:
    """The code before the channels-last copy and the ReLU in the pool: a ReLU, then in passes without
    gradients the four-view maximum, with gradients torch's (N, C, H, W) kernel."""

    def forward(pool: MaxPool2x2, x: torch.Tensor) -> torch.Tensor:
        x = _relu_first(pool, x)
        pooled: torch.Tensor = torch.nn.MaxPool2d.forward(pool, x) if torch.is_grad_enabled() else pool._pool(x)
        return pooled

    return _max_pool_forward(forward)


def relu_before_pool() -> contextlib.AbstractContextManager[None]:
    """A ReLU on the whole map, then the pool as it runs now: what the ReLU in the pool saves alone."""
    return _max_pool_forward(lambda pool, x: pool._pool(_relu_first(pool, x)))


@contextlib.contextmanager
def adam_foreach(host: PartyHost) -> Iterator[None]:
    """The rounds' Adam steps through torch's foreach kernels (one call per step for all of a model's
    tensors) instead of its per-tensor loop, the default on a CPU."""
    optimizers = [o for party in host.participants.values() for o in (party._digest_opt, party._revisit_opt)]
    groups = [group for optimizer in optimizers for group in optimizer.param_groups]
    for group in groups:
        group["foreach"] = True
    try:
        yield
    finally:
        for group in groups:
            group["foreach"] = None


@contextlib.contextmanager
def channels_last(host: PartyHost) -> Iterator[None]:
    for party in host.participants.values():
        party.model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for party in host.participants.values():
            party.model.to(memory_format=torch.contiguous_format)


@contextlib.contextmanager
def eval_batch(host: PartyHost, batch: int) -> Iterator[None]:
    """Every model's forward-only passes (scoring, testing) at `batch` images instead of its own
    cache-sized batch (`models.eval_batch`)."""
    saved = {p: party._eval_batch for p, party in host.participants.items()}
    for party in host.participants.values():
        party._eval_batch = batch
    try:
        yield
    finally:
        for p, batch in saved.items():
            host.participants[p]._eval_batch = batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = fedmd_ray.preset("offline", pretrain_epochs=1, private_epochs=5, upper_bound=False, torch_threads=1)
    experiment = prepare(config)
    specs, data = experiment.party_inputs()
    host = PartyHost(specs, experiment.setup, data, threads=1, gpus=0)
    host.run(TransferLearn())
    saved = host.run(ExportState())
    rng = np.random.default_rng(0)
    align = sample_alignment(rng, experiment.task.public_y, config.subset_size)
    next_align = sample_alignment(rng, experiment.task.public_y, config.subset_size)

    def measure(lever: Callable[[], contextlib.AbstractContextManager[None]]) -> tuple[float, dict[int, Any]]:
        times, scores = [], {}
        for _ in range(args.repeats):
            host.run(ImportState(saved))
            with lever():
                seconds, scores = one_round(host, align, next_align)
            times.append(seconds)
        return min(times), scores

    plain_s, plain = measure(contextlib.nullcontext)
    figures: dict[str, Any] = {"plain_round_s": plain_s}
    levers = {
        "pools_as_filed": pools_as_filed,
        "nchw_training_pool": nchw_training_pool,
        "relu_before_pool": relu_before_pool,
        "inference_mode": inference_mode,
        "channels_last": lambda: channels_last(host),
        "adam_foreach": lambda: adam_foreach(host),
        "eval_batch_128": lambda: eval_batch(host, 128),
        "eval_batch_1024": lambda: eval_batch(host, 1024),
    }
    for name, lever in levers.items():
        seconds, scores = measure(lever)
        same = same_numbers(plain, scores)
        figures[f"{name}_round_s"], figures[f"{name}_speedup"], figures[f"{name}_bit_identical"] = (
            seconds,
            plain_s / seconds,
            same,
        )
        print(f"{name:<16} {seconds:6.2f} s vs {plain_s:.2f} s: {plain_s / seconds:.2f}x, same numbers: {same}")
    host.run(ImportState(saved))
    start = time.perf_counter()
    for party in host.participants.values():  # in place (its state dict keeps its names); last: no way back
        party.model.compile()
    one_round(host, align, next_align)  # the first round compiles
    compile_s = time.perf_counter() - start
    seconds, scores = measure(contextlib.nullcontext)
    same = same_numbers(plain, scores)
    twenty = (compile_s + 19 * seconds) / (20 * plain_s)
    figures.update(
        {
            "compile_first_round_s": compile_s,
            "compile_round_s": seconds,
            "compile_speedup": plain_s / seconds,
            "compile_20_round_cost_ratio": twenty,
            "compile_bit_identical": same,
        }
    )
    print(
        f"torch.compile    {seconds:6.2f} s per round after a first round of {compile_s:.1f} s: "
        f"{plain_s / seconds:.2f}x; 20 rounds cost {twenty:.2f}x the plain ones; same numbers: {same}"
    )
    record("round_levers", figures)


if __name__ == "__main__":
    main()
