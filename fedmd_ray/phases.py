"""The phases of a FedMD run, as they name result rows (`analysis.schema`): one definition."""

from __future__ import annotations

TRANSFER: str = "transfer"  # round 0: each party after transfer learning (the baseline)
COLLABORATE: str = "collaborate"  # rounds 1..R
UPPER_BOUND: str = "upper_bound"  # each pretrained model trained on every party's private data (no round)
PHASES: tuple[str, ...] = (TRANSFER, COLLABORATE, UPPER_BOUND)  # the order of a result table
