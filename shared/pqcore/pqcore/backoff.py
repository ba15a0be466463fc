"""Retry delays: exponential with a cap, jittered so retries of a failed batch spread out."""

from __future__ import annotations

import random


def retry_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before the next try after failed ``attempt`` (1-based).

    Equal jitter: between half and all of ``min(cap, base * 2**(attempt-1))``, so the
    delay still grows with every attempt while simultaneous failures do not retry
    in lockstep.
    """
    exponent = min(max(attempt - 1, 0), 62)
    ceiling = min(cap, base * (2**exponent))
    draw: float = (rng or random).random()
    return float(ceiling * (0.5 + 0.5 * draw))
