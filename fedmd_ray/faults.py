"""Fault injection, for testing failure handling end to end (off unless the variable is set).

`FEDMD_RAY_FAULT="party=1,round=2,method=digest,action=exit[,once=/tmp/marker]"`
makes party 1 call `os._exit(1)` (action `exit`), raise RuntimeError (`raise`)
or sleep for an hour (`hang`) when it enters `method` (`transfer_learn` in round
0, `digest` or `revisit`) in `round`, the party's own count of rounds it took
part in. With `once`,
the fault fires only while the marker file does not exist and creates it, so
a restarted party succeeds. Ray workers inherit the variable from the process
that starts Ray.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

VARIABLE = "FEDMD_RAY_FAULT"


def maybe_fail(party: int, round_: int, method: str) -> None:
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
