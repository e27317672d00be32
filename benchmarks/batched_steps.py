"""Where a batched round's time goes, step by step, against one party at a time (issue 35's 3x goal).

One host holding `--parties` parties of `many_parties.py`'s config (tiny MLPs `mlp-16` and `mlp-32`,
cycled; 150 = one actor's share of a 300-party run on 2 cores), in this process with torch on one
thread as a host actor runs. After transfer learning and one round, `--rounds` rounds are timed step by
step, with `batch_parties=true` and `false` from the same start: digest, revisit, evaluation, scoring
the next subset, and saving every party's state (what each round's call returns). Prints seconds per
round of each step on both paths, each step's ratio, and the round's: a step whose ratio is near 1
bounds the round's (Amdahl), whatever the others gain.

    python benchmarks/batched_steps.py [--parties 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import collections
import functools
import time
from typing import Any, Callable

import torch
from common import record
from many_parties import many_parties

from fedmd_ray.actors import participant, party_group
from fedmd_ray.actors.backends import open_driver
from fedmd_ray.experiment import prepare

STEPS = ("digest", "revisit", "evaluate", "communicate")
SECONDS: collections.Counter[str] = collections.Counter()
ACTIVE: list[str] = []  # the step being timed: a group that hands a step to its parties counts once


def timed(step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        if ACTIVE:
            return fn(*args, **kwargs)
        ACTIVE.append(step)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SECONDS[step] += time.perf_counter() - start
            ACTIVE.pop()

    return inner


def instrument() -> None:
    """Time each step of both paths (a group's step, or a party's own), and the states' export."""
    for step in STEPS:
        setattr(participant.Participant, step, timed(step, getattr(participant.Participant, step)))
        setattr(party_group.PartyGroup, step, timed(step, getattr(party_group.PartyGroup, step)))
    participant.PartyHost.states = timed("save states", participant.PartyHost.states)  # type: ignore[method-assign]


def measure(parties: int, rounds: int, batch: bool) -> dict[str, float]:
    # rounds + 2: the timed rounds all score the next subset (a run's last one does not)
    config = many_parties(parties, rounds + 2, batch, backend="local", torch_threads=1)
    experiment = prepare(config)
    specs, data = experiment.party_inputs()
    with open_driver(experiment.setup, specs, data, experiment.run_id) as driver:
        driver.transfer_learn()
        driver.run_round(1)  # round 1 also gathers its own scores first
        SECONDS.clear()
        start = time.perf_counter()
        for round_ in range(2, rounds + 2):
            driver.run_round(round_)
        total = time.perf_counter() - start
    steps = {step: SECONDS[step] / rounds for step in (*STEPS, "save states")}
    return {**steps, "other": total / rounds - sum(steps.values()), "round": total / rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    instrument()
    alone = measure(args.parties, args.rounds, batch=False)
    batched = measure(args.parties, args.rounds, batch=True)
    print(f"\n{args.parties} parties, s per round    one by one   batched   ratio")
    figures: dict[str, Any] = {"parties": args.parties}
    for step in alone:
        ratio = alone[step] / batched[step] if batched[step] > 0 else float("nan")
        print(f"  {step:<26} {alone[step]:10.3f} {batched[step]:9.3f} {ratio:6.2f}x")
        key = step.replace(" ", "_")
        figures.update({f"alone_{key}_s": alone[step], f"batched_{key}_s": batched[step], f"ratio_{key}": ratio})
    record("batched_steps", figures)


if __name__ == "__main__":
    main()
