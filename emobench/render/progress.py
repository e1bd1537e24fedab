"""Progress on long work: a bar with the current step for benchmarks, a line per epoch for
fine-tunes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from emobench.results.progress import FinetuneProgress, ProgressFn


@contextmanager
def progress_display(console: Console) -> Iterator[ProgressFn]:
    """Progress on `console` (stderr): a live line on a terminal, else one plain line per step
    with the elapsed time, so a CI log or a redirected run is never silent."""
    if not console.is_terminal:
        started = time.perf_counter()

        def plain(description: str, done: int, total: int) -> None:
            console.print(
                f"[{time.perf_counter() - started:7.1f} s] {done}/{total} {description}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

        yield plain
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def update(description: str, done: int, total: int) -> None:
            progress.update(task, description=description, completed=done, total=total)

        yield update


@contextmanager
def finetune_progress(console: Console) -> Iterator[FinetuneProgress]:
    """A Rich bar per epoch with the running loss (and validation accuracy at its end) on a
    terminal; one plain line per finished epoch otherwise."""
    if not console.is_terminal:
        started = time.perf_counter()

        def plain(
            pipeline: str,
            seed: int,
            epoch: int,
            epochs: int,
            batch: int,
            batches: int,
            loss: float,
            val_acc: float | None,
        ) -> None:
            if val_acc is None:
                return
            console.print(
                f"[{time.perf_counter() - started:7.1f} s] {pipeline} seed {seed} epoch "
                f"{epoch}/{epochs}: loss {loss:.4f}, val acc {val_acc:.1%}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

        yield plain
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks: dict[tuple[str, int, int], TaskID] = {}

        def update(
            pipeline: str,
            seed: int,
            epoch: int,
            epochs: int,
            batch: int,
            batches: int,
            loss: float,
            val_acc: float | None,
        ) -> None:
            key = (pipeline, seed, epoch)
            if key not in tasks:
                tasks[key] = progress.add_task(
                    f"{pipeline} seed {seed} epoch {epoch}/{epochs}", total=batches, status=""
                )
            status = f"loss {loss:.4f}" + ("" if val_acc is None else f"  val acc {val_acc:.1%}")
            progress.update(tasks[key], completed=batch, status=status)

        yield update
