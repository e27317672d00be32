"""One GPU shared by 10 parties (`gpus_per_party=0.1`) against the same parties one after another.

* shared: backend ray, one actor per party, each with a tenth of the GPU;
* sequential: backend local, the same 10 parties in this process on the same GPU.
Samples the GPU's utilisation and memory with nvidia-smi, prints each host's
peak GPU memory next to the estimate the run uses to refuse packings that
cannot fit (`fedmd_ray.actors.gpu_memory`), and, with `--paper`, the paper's
10 CNNs at full size (subset 5000) in seconds per round.

    python benchmarks/gpu_sharing.py [--rounds 3] [--paper]
"""

from __future__ import annotations

import argparse
import subprocess
import threading

import numpy as np
import ray
from common import PhaseTimes, record, timed_run

import fedmd_ray
from fedmd_ray.actors.gpu_memory import estimate_groups
from fedmd_ray.experiment import prepare
from fedmd_ray.model_registry import PAPER_MODELS


class GpuSampler(threading.Thread):
    """nvidia-smi every 0.5 s: utilisation (%) and memory used (MiB) of GPU 0."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop, self.samples = threading.Event(), []

    def run(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-i", "0"]
        while not self.stop.wait(0.5):
            out = subprocess.run(query, capture_output=True, text=True).stdout.strip()
            self.samples.append(tuple(float(v) for v in out.split(",")))

    def summary(self) -> tuple[float, float]:
        self.stop.set()
        self.join()
        values = np.array(self.samples or [(0.0, 0.0)])
        return float(values[:, 0].mean()), float(values[:, 1].max())


def sampled_run(config: fedmd_ray.FedMDConfig) -> tuple[PhaseTimes, float, float]:
    sampler = GpuSampler()
    sampler.start()
    times = timed_run(config)
    util, memory = sampler.summary()
    return times, util, memory


def by_party(times: PhaseTimes, key: str) -> list[float]:
    """A per-host figure, in party order (one party per host here)."""
    values = {h["parties"][0]: h.get(key, 0.0) for h in times.usage["hosts"]}
    return [values[p] for p in sorted(values)]


def estimates_mib(config: fedmd_ray.FedMDConfig) -> list[float]:
    """The run's estimate for each party alone on a host, in party order."""
    experiment = prepare(config)
    specs, data = experiment.party_inputs()
    return [e.bytes / 2**20 for e in estimate_groups(experiment.setup, [[s] for s in specs], data)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paper", action="store_true")
    args = parser.parse_args()
    base = fedmd_ray.preset("offline", rounds=args.rounds, gpus_per_party=0.1, parties_per_actor=1)
    ray.init(address="local", include_dashboard=False)
    try:
        shared, shared_util, shared_mem = sampled_run(base.replace(backend="ray"))
        paper = None
        if args.paper:
            paper = sampled_run(
                fedmd_ray.preset(
                    "offline", models=PAPER_MODELS, rounds=args.rounds, gpus_per_party=0.1, parties_per_actor=1
                )
            )
    finally:
        ray.shutdown()
    sequential, seq_util, seq_mem = sampled_run(base.replace(backend="local"))
    measured = by_party(shared, "gpu_peak_reserved_mib")
    estimated = estimates_mib(base)
    print(f"startup: shared {shared.startup:.1f} s, sequential {sequential.startup:.1f} s")
    print(f"\noffline, 10 parties, {args.rounds} rounds on one GPU")
    print(f"{'':<12}{'transfer s':>11}{'s/round':>9}{'total s':>9}{'GPU util':>10}{'GPU MiB':>9}{'accuracy':>10}")
    for label, t, util, mem in (
        ("shared 0.1", shared, shared_util, shared_mem),
        ("sequential", sequential, seq_util, seq_mem),
    ):
        print(
            f"{label:<12}{t.transfer:11.1f}{np.mean(t.rounds):9.2f}{t.total:9.1f}{util:9.0f}%{mem:9.0f}"
            f"{t.accuracy:10.3f}"
        )
    print("per party: peak reserved by torch, without the CUDA context (MiB) / estimate with it (MiB)")
    for party, (m, e) in enumerate(zip(measured, estimated)):
        print(f"  party {party} {base.party_models[party]:<18} {m:8.0f} / {e:8.0f}")
    figures = {
        "shared_startup_s": shared.startup,
        "sequential_startup_s": sequential.startup,
        "shared_total_s": shared.total,
        "sequential_total_s": sequential.total,
        "speedup_total": sequential.total / shared.total,
        "speedup_rounds": sum(sequential.rounds) / sum(shared.rounds),
        "speedup_transfer": sequential.transfer / shared.transfer,
        "shared_gpu_util": shared_util,
        "sequential_gpu_util": seq_util,
        "shared_gpu_mem_mib": shared_mem,
        "sequential_gpu_mem_mib": seq_mem,
        "party_peak_reserved_mib": " ".join(f"{m:.0f}" for m in measured),
        "party_estimate_mib": " ".join(f"{e:.0f}" for e in estimated),
    }
    if paper is not None:
        times, util, mem = paper
        figures.update(
            {
                "paper_s_per_round": float(np.mean(times.rounds)),
                "paper_transfer_s": times.transfer,
                "paper_gpu_util": util,
                "paper_gpu_mem_mib": mem,
                "paper_accuracy": times.accuracy,
                "paper_peak_reserved_mib": " ".join(f"{m:.0f}" for m in by_party(times, "gpu_peak_reserved_mib")),
                "paper_estimate_mib": " ".join(
                    f"{e:.0f}" for e in estimates_mib(fedmd_ray.preset("offline", models=PAPER_MODELS))
                ),
            }
        )
    record("gpu_sharing", figures)


if __name__ == "__main__":
    main()
