"""The most streams a device serves: a pure search over a probe (one LoadGen server run per
streams count in `emobench stream`; any callable in tests)."""

from __future__ import annotations

from collections.abc import Callable


class SearchCut(Exception):
    """Raised by a probe that cannot run (the time budget is spent): the search stops and
    returns what it has established (its count is then a lower bound)."""


def max_streams(probe: Callable[[int], bool], upper: int) -> tuple[int, int]:
    """The largest streams count whose probe is valid, and the resolution: how many streams
    lie between it and the smallest count found invalid (1 when the search finished; when it
    reached `upper` with every probe valid, 1 as well: the answer is the ceiling).

    Probe 1 (invalid: 0 streams), double until a probe is invalid or `upper` is reached, then
    bisect between the last valid and the first invalid count down to one stream. The first
    count found invalid is probed once more before the search settles on it (one outlier frame
    in a short run must not end the search): valid when the second probe is, and then the
    doubling goes on. Every other count is probed once. A probe that raises SearchCut ends the
    search early: the count returned is the last valid one, and the resolution the width of
    what is still unknown above it."""
    if upper < 1:
        raise ValueError(f"upper must be >= 1, got {upper}")
    best, bad = 0, None  # the largest valid count, the smallest invalid one
    retried = False
    try:
        n = 1
        while True:
            ok = probe(n)
            if not ok and not retried:
                retried = True
                ok = probe(n)
            if not ok:
                bad = n
                break
            best = n
            if n >= upper:
                break
            n = min(2 * n, upper)
        while bad is not None and bad - best > 1:
            mid = (best + bad) // 2
            if probe(mid):
                best = mid
            else:
                bad = mid
    except SearchCut:
        pass
    if bad is not None:
        return best, bad - best
    return best, max(1, upper - best)
