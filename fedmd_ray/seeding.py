"""Deterministic seeds for every random choice, derived from the run's seed.

Each consumer (a party, a round's alignment draw, the partition) gets its own
stream keyed by name and ids, so results do not depend on execution order,
on how parties are grouped into actors, or on which backend runs them.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed for the stream named by `keys` under the run's `seed`."""
    words = [seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else k for k in keys]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def rng(seed: int, *keys: int | str) -> np.random.Generator:
    """A numpy generator for the stream named by `keys`."""
    return np.random.default_rng(derive_seed(seed, *keys))
