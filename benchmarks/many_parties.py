"""Many parties on one machine: 100, 300 and 1000 parties with tiny models, batched and one by one.

By default (`parties_per_actor=None`) a run starts one actor per CPU, so 1000
parties on 2 cores are 2 processes of 500 parties each, and each process holds
250 parties of each of the two models. For each size, this runs the same config
with `batch_parties=true` (the default: each host trains, scores and evaluates a
model's parties as one computation) and `false` (one party after another), and
prints time per round, transfer learning, peak memory of the host actors and the
driver actor, and the ratios (one run of this script: a noisy machine still
compares like with like). Then it fits `value ~ parties ** k` for the batched path.

    python benchmarks/many_parties.py [--parties 100 300 1000] [--rounds 4] [--gpus-per-party 0.01]

With `--gpus-per-party` the parties' hosts run on the GPU (the batched path's CUDA measurement).
"""

from __future__ import annotations

import argparse
import resource
from typing import Any

import numpy as np
import ray
from common import record, timed_run

import fedmd_ray
from fedmd_ray.config import FedMDConfig
from fedmd_ray.experiment import prepare


def many_parties(parties: int, rounds: int, batch: bool, **fields: Any) -> FedMDConfig:
    """This benchmark's setting (also `batched_steps.py`'s): `parties` tiny MLPs of two kinds, cycled."""
    return fedmd_ray.preset(
        "offline",
        n_parties=parties,
        models=("mlp-16", "mlp-32"),
        samples_per_class=3,
        public_size=2000,
        subset_size=500,
        pretrain_epochs=1,
        private_epochs=2,
        upper_bound=False,
        rounds=rounds,
        batch_parties=batch,
        **fields,
    )


def measure(parties: int, rounds: int, batch: bool, gpus_per_party: float = 0.0) -> dict[str, float]:
    config = many_parties(parties, rounds, batch, gpus_per_party=gpus_per_party)
    _, data = prepare(config).party_inputs()
    shared_mib = sum(getattr(data, f).nbytes for f in data.__dataclass_fields__) / 2**20
    times = timed_run(config)
    usage = times.usage
    actor_peaks = [h["peak_rss_mib"] for h in usage["hosts"]]
    steady = times.rounds[1:-1] or times.rounds  # round 1 also gathers scores alone; the last sends none ahead
    return {
        "parties": parties,
        "actors": len(usage["hosts"]),
        "startup_s": times.startup,
        "transfer_s": times.transfer,
        "round_s": float(np.mean(steady)),
        "driver_peak_mib": usage["driver_peak_rss_mib"],
        "actor_peak_mib_max": max(actor_peaks),
        "actors_peak_mib_sum": sum(actor_peaks),
        "object_store_mib": shared_mib,
        "accuracy": times.accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--gpus-per-party", type=float, default=0.0, help="0: CPU (default)")
    args = parser.parse_args()
    ray.init(address="local", include_dashboard=False)
    try:
        rows, alone = [], []
        for parties in args.parties:
            alone.append(measure(parties, args.rounds, batch=False, gpus_per_party=args.gpus_per_party))
            print("one by one", {k: round(v, 2) for k, v in alone[-1].items()}, flush=True)
            rows.append(measure(parties, args.rounds, batch=True, gpus_per_party=args.gpus_per_party))
            print("batched   ", {k: round(v, 2) for k, v in rows[-1].items()}, flush=True)
    finally:
        ray.shutdown()
    n = np.log([r["parties"] for r in rows])
    print("\nparties  s/round (batched, alone, x)  transfer s (batched, alone, x)  actors' peak MiB (batched, alone)")
    for r, a in zip(rows, alone):
        print(
            f"{r['parties']:7d} {r['round_s']:8.2f} {a['round_s']:7.2f} {a['round_s'] / r['round_s']:5.2f}x "
            f"{r['transfer_s']:12.1f} {a['transfer_s']:7.1f} {a['transfer_s'] / r['transfer_s']:5.2f}x "
            f"{r['actors_peak_mib_sum']:12.0f} {a['actors_peak_mib_sum']:7.0f}"
        )
    figures: dict = {"sizes": " ".join(str(p) for p in args.parties)}
    for r, a in zip(rows, alone):
        figures.update({f"{k}_{r['parties']}": v for k, v in r.items() if k != "parties"})
        figures.update({f"alone_{k}_{a['parties']}": v for k, v in a.items() if k != "parties"})
        figures[f"round_speedup_{r['parties']}"] = a["round_s"] / r["round_s"]
        figures[f"transfer_speedup_{r['parties']}"] = a["transfer_s"] / r["transfer_s"]
    for key in ("round_s", "actors_peak_mib_sum", "driver_peak_mib"):
        figures[f"exponent_{key}"] = float(np.polyfit(n, np.log([r[key] for r in rows]), 1)[0])
    figures["this_process_peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record("many_parties", figures)


if __name__ == "__main__":
    main()
