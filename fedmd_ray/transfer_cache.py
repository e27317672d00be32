"""Cache of transfer-learned parties, shared by sweep trials that only differ in collaboration knobs.

Transfer learning (public pretraining, private training, upper bound) is most of
a small run's cost and does not depend on rounds, subset size, digest or revisit
settings. An entry is keyed by `FedMDConfig.transfer_fingerprint()` and holds each
party's model and RNG state (tensors only, read back with `weights_only=True`)
plus the round-0 and upper-bound evaluations. `evaluations.json` is written last:
an entry without it is incomplete and ignored.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from fedmd_ray.actors.messages import Evaluation, PartyState
from fedmd_ray.analysis.io import join_uri, read_bytes_uri, write_bytes_uri
from fedmd_ray.config import FedMDConfig

PartyResults = dict[int, dict[str, Evaluation]]  # party -> phase -> evaluation


class TransferCache:
    def __init__(self, root: str, config: FedMDConfig, threads: tuple[int, ...]) -> None:
        """`threads`: the torch thread counts of the hosts that compute or load the entry."""
        self.entry = join_uri(root, config.transfer_fingerprint(threads))

    def load(self) -> tuple[dict[int, PartyState], PartyResults] | None:
        index = read_bytes_uri(join_uri(self.entry, "evaluations.json"))
        if index is None:
            return None
        results = {
            int(party): {phase: Evaluation(**values) for phase, values in phases.items()}
            for party, phases in json.loads(index).items()
        }
        states = {party: read_bytes_uri(self._state_uri(party)) for party in results}
        if any(state is None for state in states.values()):
            return None
        return {p: np.frombuffer(s, dtype=np.uint8) for p, s in states.items() if s is not None}, results

    def store(self, states: dict[int, PartyState], results: PartyResults) -> None:
        for party, payload in states.items():
            write_bytes_uri(self._state_uri(party), payload.tobytes())
        index = {
            str(party): {phase: dataclasses.asdict(ev) for phase, ev in phases.items()}
            for party, phases in results.items()
        }
        write_bytes_uri(join_uri(self.entry, "evaluations.json"), json.dumps(index, indent=1).encode())

    def _state_uri(self, party: int) -> str:
        return join_uri(self.entry, f"party-{party}.pt")
