"""Fault injection, for testing failure handling end to end (off unless the variable is set).

`FEDMD_RAY_FAULT="party=1,round=2,method=digest,action=exit[,once=/tmp/marker]"`
makes party 1 call `os._exit(1)` (action `exit`), raise RuntimeError (`raise`)
or sleep for an hour (`hang`) when it enters `method` (`transfer_learn` in round
0, `digest` or `revisit`) in `round` (the run's round). With `once`,
the fault fires only while the marker file does not exist and creates it, so
a restarted party succeeds. `FEDMD_RAY_DELAY_S=0.5` makes every party sleep a
random 0-0.5 s before each transfer, digest and revisit, so parties answer in
a random order.

The variables are read once, where a run is prepared (`Faults.from_environment`), and the
`Faults` travel to the parties with the rest of their setup: a party's steps never read
the environment.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

VARIABLE = "FEDMD_RAY_FAULT"
DELAY_VARIABLE = "FEDMD_RAY_DELAY_S"


@dataclass(frozen=True)
class Faults:
    """The failure a party injects (`party`, `round`, `method`, `action`, `once`) and a random delay."""

    party: int | None = None
    round: int | None = None
    method: str | None = None
    action: str = "raise"
    once: str | None = None
    delay_s: float = 0.0

    @classmethod
    def from_environment(cls) -> Faults | None:
        """The faults the variables ask for; None when neither is set."""
        spec, delay = os.environ.get(VARIABLE), os.environ.get(DELAY_VARIABLE)
        if not spec and not delay:
            return None
        fields = dict(item.split("=", 1) for item in spec.split(",")) if spec else {}
        return cls(
            int(fields["party"]) if "party" in fields else None,
            int(fields["round"]) if "round" in fields else None,
            fields.get("method"),
            fields.get("action", "raise"),
            fields.get("once"),
            float(delay or 0.0),
        )

    def check(self, party: int, round_: int, method: str) -> None:
        """Called by a party as it enters `method` in `round_`: the delay, then the fault if it is this one."""
        if self.delay_s:
            time.sleep(random.SystemRandom().uniform(0, self.delay_s))  # not the run's seeded streams
        if (self.party, self.round, self.method) != (party, round_, method):
            return
        if self.once:
            if Path(self.once).exists():
                return
            Path(self.once).touch()
        if self.action == "exit":
            os._exit(1)
        if self.action == "hang":
            time.sleep(3600)
        raise RuntimeError(f"injected fault in party {party}, round {round_}, {method}")
