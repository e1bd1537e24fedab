"""What a long run tells whoever watches it: the progress callbacks' signatures, shared by the
scenarios that call them and the renderer that draws them (so render needs no scenario)."""

from __future__ import annotations

from collections.abc import Callable

# (what is being done now, steps done, steps in all)
ProgressFn = Callable[[str, int, int], None]
# (pipeline, seed, epoch, epochs, batch, batches, loss, val_accuracy or None)
FinetuneProgress = Callable[[str, int, int, int, int, int, float, float | None], None]


def no_progress(*_: object) -> None:
    """The callback of a run nobody watches."""
