"""Refuse, before any actor starts, a packing whose parties cannot fit in GPU or host memory.

Ray's fractional GPUs are a scheduling count, not a memory cap: ten actors at
`num_gpus=0.1` all land on one GPU whatever their models need, and the run
then dies out of memory in the middle of a round. So the run estimates each
host's peak GPU memory from its parties' model footprints (counted on the CPU, no
GPU needed) and compares the hosts that Ray will stack on one GPU with that
GPU's free memory, measured by a probe task on a GPU node.

Estimate per host (the parties of a host train one after another):
  CUDA context + the shared arrays it copies to the GPU (public, held-out, test)
  + for every party: weights, gradients and two Adam optimizers (6 copies of
    the parameters) and its private data
  + for the largest party: activations of its largest batch (saved for backward,
    their gradients and workspace: 3 copies).
`benchmarks/gpu_sharing.py` prints the estimate next to the measured peak.

Host memory, the same way, per host process on the CPU: torch's own resident size
(~600 MiB measured per actor process) + for every party: the parameters 6 times (as
above) and 10 more (two saved generations of model and optimizers, what restarts and
checkpoints keep in the object store) and its private data + the largest party's
activations. The shared arrays live in the object store once per node. A model whose
parameters alone exceed the machine (`mlp-1000000000`: ~3 TB) is refused with these
numbers before Ray starts, counted on the meta device without allocating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from fedmd_ray.actors.messages import HostSetup, PartySpec, SharedData
from fedmd_ray.config import FedMDConfig
from fedmd_ray.errors import ResourceError
from fedmd_ray.model_registry import ModelPlugin
from fedmd_ray.models import eval_batch, footprint

# Per process: CUDA context + cuBLAS/cuDNN handles, what nvidia-smi shows beyond torch's
# reserved memory (measured 750-960 MiB per process on an H100, CUDA 12).
CUDA_CONTEXT_BYTES = 800 * 2**20
# Per process on the CPU: Python, Ray's worker and torch, resident (docs/performance.md §5).
TORCH_PROCESS_BYTES = 600 * 2**20
FLOAT = 4
SAVED_STATE_COPIES = 10  # two generations of weights + two Adam moments x two optimizers


@dataclass(frozen=True)
class HostEstimate:
    parties: tuple[int, ...]
    bytes: int


def party_state_bytes(
    model: ModelPlugin, input_shape: tuple[int, int, int], n_classes: int, private_samples: int
) -> int:
    """Weights, gradients, two Adam states (2 moments each) and the private images."""
    fp = footprint(model, input_shape, n_classes)
    return FLOAT * (6 * fp.params + private_samples * math.prod(input_shape))


def activation_bytes(config: FedMDConfig, model: ModelPlugin, input_shape: tuple[int, int, int], n_classes: int) -> int:
    """Peak activations: the largest training batch kept for backward (x3), or an eval batch."""
    fp = footprint(model, input_shape, n_classes)
    train_batch = max(
        config.pretrain_batch_size, config.digest_batch_size, config.private_batch_size, config.revisit_batch_size
    )
    scoring = eval_batch(model, input_shape, n_classes, "cuda", config.eval_batch_size)
    return FLOAT * fp.activations * max(3 * train_batch, scoring)


def estimate_hosts(
    config: FedMDConfig,
    models: Sequence[ModelPlugin],
    groups: list[list[int]],
    private_sizes: list[int],
    input_shape: tuple[int, int, int],
    n_classes: int,
    shared_bytes: int,
    device: str = "cuda",
) -> list[HostEstimate]:
    """Estimated peak GPU (`device="cuda"`) or host (`"cpu"`) bytes of each host (see the module
    docstring); `models` per party."""
    estimates = []
    for group in groups:
        states = sum(party_state_bytes(models[p], input_shape, n_classes, private_sizes[p]) for p in group)
        peak = max(activation_bytes(config, models[p], input_shape, n_classes) for p in group)
        if device == "cuda":
            fixed = CUDA_CONTEXT_BYTES + shared_bytes
        else:
            saved = sum(SAVED_STATE_COPIES * FLOAT * footprint(models[p], input_shape, n_classes).params for p in group)
            fixed = TORCH_PROCESS_BYTES + saved
        estimates.append(HostEstimate(tuple(group), fixed + states + peak))
    return estimates


def estimate_groups(
    setup: HostSetup, groups: list[list[PartySpec]], data: SharedData, device: str = "cuda"
) -> list[HostEstimate]:
    """`estimate_hosts` for the hosts a pool would build from `groups` over `data`."""
    c, h, w = data.public_x.shape[1:]
    on_device = (data.public_x, data.public_y, data.public_val_x, data.public_val_y, data.test_x, data.test_y)
    specs = sorted((s for group in groups for s in group), key=lambda s: s.party)
    party_groups = [[s.party for s in group] for group in groups]
    return estimate_hosts(
        setup.config,
        [s.model for s in specs],
        party_groups,
        [len(s.private_idx) for s in specs],
        (c, h, w),
        setup.n_classes,
        sum(a.nbytes for a in on_device),
        device,
    )


def check_gpu_packing(estimates: list[HostEstimate], gpus_per_actor: float, free_bytes: int, total_bytes: int) -> None:
    """ResourceError when the hosts Ray may put on one GPU need more than it has free."""
    per_gpu = min(len(estimates), max(1, math.floor(1 / gpus_per_actor + 1e-9)))
    largest = sorted(estimates, key=lambda e: e.bytes, reverse=True)[:per_gpu]
    need = sum(e.bytes for e in largest)
    if need > free_bytes:
        gib = 2**30
        biggest = largest[0]
        raise ResourceError(
            f"GPU memory: {per_gpu} host actor(s) at num_gpus={gpus_per_actor:g} share one GPU and need an "
            f"estimated {need / gib:.1f} GiB (the largest, parties {list(biggest.parties)}, "
            f"{biggest.bytes / gib:.2f} GiB), but the GPU has {free_bytes / gib:.1f} GiB free of "
            f"{total_bytes / gib:.1f} GiB; raise gpus_per_party so fewer parties share a GPU, lower "
            "eval_batch_size/pretrain_batch_size, or use smaller models"
        )


def check_host_packing(
    estimates: list[HostEstimate], shared_bytes: int, total_bytes: float, node_bytes: float, subject: str = "the run"
) -> None:
    """ResourceError when the hosts (plus the shared arrays, once) need more memory than the cluster
    has, or the largest host more than the largest node."""
    gib = 2**30
    need = sum(e.bytes for e in estimates) + shared_bytes
    biggest = max(estimates, key=lambda e: e.bytes)
    if need > total_bytes or biggest.bytes > node_bytes:
        raise ResourceError(
            f"host memory: {subject} needs an estimated {need / gib:.1f} GiB ({len(estimates)} host process(es), the "
            f"largest {biggest.bytes / gib:.2f} GiB for parties {list(biggest.parties)}, plus {shared_bytes / gib:.2f} "
            f"GiB of shared arrays) but the cluster has {total_bytes / gib:.1f} GiB for tasks, its largest node "
            f"{node_bytes / gib:.1f} GiB; use smaller models, fewer parties per actor, or a bigger machine"
        )
