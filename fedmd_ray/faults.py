"""Fault injection, for testing failure handling end to end (off unless the variable is set).

`FEDMD_RAY_FAULT="party=1,round=2,method=digest,action=exit[,once=/tmp/marker]"`
makes party 1 call `os._exit(1)` (action `exit`), raise RuntimeError (`raise`)
or sleep for an hour (`hang`) when it enters `method` (`transfer_learn` in round
0, `digest` or `revisit`) in `round` (the run's round). With `once`,
the fault fires only while the marker file does not exist and creates it, so
a restarted party succeeds. `FEDMD_RAY_DELAY_S=0.5` makes every party sleep a
random 0-0.5 s before each transfer, digest and revisit, so parties answer in
a random order. Ray workers inherit the variables from the process that starts
Ray.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

VARIABLE = "FEDMD_RAY_FAULT"
DELAY_VARIABLE = "FEDMD_RAY_DELAY_S"


def maybe_fail(party: int, round_: int, method: str) -> None:
    delay = os.environ.get(DELAY_VARIABLE)
    if delay:
        time.sleep(random.SystemRandom().uniform(0, float(delay)))  # not the run's seeded streams
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    fields = dict(item.split("=", 1) for item in spec.split(","))
    if (int(fields["party"]), int(fields["round"]), fields["method"]) != (party, round_, method):
        return
    once = fields.get("once")
    if once:
        if Path(once).exists():
            return
        Path(once).touch()
    action = fields.get("action", "raise")
    if action == "exit":
        os._exit(1)
    if action == "hang":
        time.sleep(3600)
    raise RuntimeError(f"injected fault in party {party}, round {round_}, {method}")
