"""Progress off a terminal: one plain line per step."""

from __future__ import annotations

import io

from rich.console import Console

from emobench.render.progress import progress_display


def test_progress_off_a_terminal_prints_one_plain_line_per_step() -> None:
    stream = io.StringIO()
    with progress_display(Console(file=stream, force_terminal=False, width=200)) as progress:
        progress("vgg16/upscale224: latency, batch 1", 2, 13)
        progress("done", 13, 13)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("] 2/13 vgg16/upscale224: latency, batch 1")
    assert lines[0].startswith("[") and " s] " in lines[0]
