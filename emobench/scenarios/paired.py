"""Paired mode: both pipelines' headline loops in interleaved ABBA rounds, and their ratios.

Every loop runs under the run's watchdog (--time-budget): one it cut before a whole round is
left out of both sides (the report's notes say why)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from emobench.measure.timing import (
    LoopSettings,
    PairedLoop,
    Timer,
    TimingResult,
    Watchdog,
    paired_loop,
    sized_block_timer,
    timer_for,
)
from emobench.results import BatchTiming, PairedRatio, PipelineResult, PreprocessResult
from emobench.results.metrics import DIRECT, UPSCALE
from emobench.runtimes.torch import BATCHED_PATH, PER_IMAGE_PATH
from emobench.scenarios.context import Deferred, RunContext
from emobench.scenarios.parts import (
    SHARED_TIMER,
    _batch_timing,
    _efficiency,
    _preprocess_result,
    _split_call,
)
from emobench.scenarios.steps import (
    END_TO_END,
    LATENCY,
    PREPROCESS_BATCHED,
    PREPROCESS_PER_IMAGE,
    SHARED,
    THROUGHPUT,
    Step,
    loop_settings,
)
from emobench.stats.summary import Stats

Sample = Callable[[], tuple[float, ...]]
SIDES = (UPSCALE, DIRECT)  # side 0 is A, side 1 is B in every paired loop


@dataclass
class _Headline:
    """One side's headline figures, filled in as the interleaved loops run."""

    latency: TimingResult | None = None
    preprocess: list[PreprocessResult] = field(default_factory=list)
    throughput: list[BatchTiming] = field(default_factory=list)
    end_to_end: list[BatchTiming] = field(default_factory=list)


@dataclass
class _Rounds:
    """One backbone's two deferred pipelines (A: upscale224, B: direct48), timed together."""

    backbone: str
    ctx: RunContext
    a: Deferred
    b: Deferred
    loop: LoopSettings
    timer: Timer
    timer_name: str
    ratios: list[PairedRatio] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return f"{self.backbone}{self.ctx.suffix}: both pipelines, interleaved"

    def run(self, key: str, fa: Sample, fb: Sample, warm: bool = False) -> PairedLoop | None:
        """Rounds of A and B until the stopping rule; the ratio of the last part is `key`'s."""
        return self.run_sized(key, lambda _watchdog: (fa, fb), warm)

    def run_sized(
        self, key: str, samples: Callable[[Watchdog], tuple[Sample, Sample]], warm: bool = False
    ) -> PairedLoop | None:
        """`run` with samples made under the loop's watchdog (sizing blocks calls the model
        too). None when the watchdog cut a call before the first round."""
        settings = self.ctx.budget.settings(self.loop, self.ctx.steps)
        if warm:
            settings = dataclasses.replace(settings, warmup_iters=0)

        def measure(watchdog: Watchdog) -> PairedLoop:
            sa, sb = samples(watchdog)
            return paired_loop(sa, sb, settings, watchdog=watchdog)

        result = self.ctx.watched(measure)
        if result is None:
            return None
        self.ratios.append(
            PairedRatio.from_rounds(
                self.backbone, key, [r[-1] for r in result.ratios], result.stop_reason
            )
        )
        return result

    def one(self, fn: Callable[[], object], clock: Timer | None = None) -> Sample:
        """A sample of one part: `fn` timed by `clock` (the per-call timer by default)."""
        clock = self.timer if clock is None else clock
        return lambda: (clock(fn),)

    def blocked(
        self,
        fa: Callable[[], object],
        fb: Callable[[], object],
        names: list[tuple[str, int]],
        warm: bool = False,
    ) -> Callable[[Watchdog], tuple[Sample, Sample]]:
        """Samples of `fa` and `fb` in blocks, each sized by timing.sized_block_timer under the
        loop's watchdog (`warm`: both already ran at this shape); each timer's name and calls
        per sample go to `names`."""

        def sized(watchdog: Watchdog) -> tuple[Sample, Sample]:
            a = sized_block_timer(self.ctx.device, fa, watchdog, warm)
            b = sized_block_timer(self.ctx.device, fb, watchdog, warm)
            names.extend(((a.name, a.calls), (b.name, b.calls)))
            return self.one(fa, a.timer), self.one(fb, b.timer)

        return sized


def paired_headline(
    backbone: str,
    up: PipelineResult,
    dn: PipelineResult,
    ctx: RunContext,
    images: np.ndarray,
) -> tuple[PipelineResult, PipelineResult, list[PairedRatio]]:
    """The headline timings (latency b1, preprocessing, throughput and end to end) of both
    pipelines, measured in interleaved ABBA rounds with both models resident."""
    a, b = ctx.deferred[UPSCALE], ctx.deferred[DIRECT]
    loop = loop_settings(ctx.config)
    timer, timer_name = timer_for(ctx.device)
    rounds = _Rounds(backbone, ctx, a, b, loop, timer, timer_name)
    out = {side: _Headline() for side in SIDES}
    plan = ctx.plan.paired
    if Step(LATENCY) in plan:
        _latency(rounds, out)
    if Step(PREPROCESS_PER_IMAGE) in plan:
        _preprocess_per_image(rounds, images, out)
    if Step(PREPROCESS_BATCHED) in plan:
        _preprocess_batched(rounds, out)
    for bs in ctx.config.batch_sizes:
        if Step(SHARED, bs) in plan:
            _shared_batch(rounds, bs, out)
        for kind, name in ((THROUGHPUT, "throughput"), (END_TO_END, "end_to_end")):
            if Step(kind, bs) in plan:
                _batch_loop(rounds, bs, name, out)
    # both energy passes come after the last step: the first must leave the second its share
    up = _with_headline(ctx, up, a, out[UPSCALE], energy_passes_left=2)
    dn = _with_headline(ctx, dn, b, out[DIRECT], energy_passes_left=1)
    return up, dn, rounds.ratios


def _timing(
    result: PairedLoop,
    side: int,
    part: int,
    name: str,
    cold: float | None,
    warmup: int,
    calls: int = 1,
) -> TimingResult:
    """One side's samples of one timed part of a paired loop (`calls` per sample)."""
    samples = result.samples_a if side == 0 else result.samples_b
    return TimingResult(
        cold_start_ms=cold,
        warmup_iters=warmup,
        stats=Stats.from_samples([s[part] for s in samples], "ms"),
        timer=name,
        stop_reason=result.stop_reason,
        elapsed_s=result.elapsed_s,
        block_calls=calls,
    )


def _latency(rounds: _Rounds, out: dict[str, _Headline]) -> None:
    """Batch-1 latency; the cold starts were taken when each pipeline was first measured."""
    a, b = rounds.a, rounds.b
    rounds.ctx.steps(f"{rounds.tag}: latency, batch 1")
    res = rounds.run(
        "latency_b1_median_ms",
        rounds.one(partial(a.pipe.infer, a.x1)),
        rounds.one(partial(b.pipe.infer, b.x1)),
    )
    if res is None:
        return
    warmup = rounds.loop.warmup_iters
    out[UPSCALE].latency = _timing(res, 0, 0, rounds.timer_name, a.cold_ms, warmup)
    out[DIRECT].latency = _timing(res, 1, 0, rounds.timer_name, b.cold_ms, warmup)


def _preprocess_per_image(rounds: _Rounds, images: np.ndarray, out: dict[str, _Headline]) -> None:
    """The per-image PIL preprocessing path."""
    a, b, n = rounds.a, rounds.b, rounds.ctx.config.preprocess_images
    rounds.ctx.steps(f"{rounds.tag}: preprocessing, per-image PIL path ({n} images)")
    res = rounds.run(
        "preprocess_per_image_pil_us",
        rounds.one(partial(a.pipe.preprocess_per_image, images[:n])),
        rounds.one(partial(b.pipe.preprocess_per_image, images[:n])),
    )
    if res is None:
        return
    for i, side in enumerate(SIDES):
        timing = _timing(res, i, 0, rounds.timer_name, None, 0)
        out[side].preprocess.append(_preprocess_result(PER_IMAGE_PATH, n, timing))


def _preprocess_batched(rounds: _Rounds, out: dict[str, _Headline]) -> None:
    """The batched tensor preprocessing path (blocks of calls per sample)."""
    a, b, n = rounds.a, rounds.b, rounds.ctx.config.preprocess_images
    rounds.ctx.steps(f"{rounds.tag}: preprocessing, batched tensor path ({n} images)")
    fa, fb = (
        partial(a.pipe.preprocess_batched, a.host[:n]),
        partial(b.pipe.preprocess_batched, b.host[:n]),
    )
    names: list[tuple[str, int]] = []
    res = rounds.run_sized("preprocess_batched_tensor_us", rounds.blocked(fa, fb, names), True)
    if res is None:
        return
    for i, (side, (name, calls)) in enumerate(zip(SIDES, names, strict=True)):
        timing = _timing(res, i, 0, name, None, 0, calls)
        out[side].preprocess.append(_preprocess_result(BATCHED_PATH, n, timing))


def _shared_batch(rounds: _Rounds, bs: int, out: dict[str, _Headline]) -> None:
    """CPU: model-only and end to end from the same interleaved calls at batch size `bs`."""
    a, b = rounds.a, rounds.b
    warm = a.warm_batch == bs and b.warm_batch == bs
    rounds.ctx.steps(f"{rounds.tag}: throughput and end to end, batch {bs}")
    res = rounds.run(
        f"end_to_end_b{bs}_images_per_s",
        _split_call(a.pipe, a.host[:bs]),
        _split_call(b.pipe, b.host[:bs]),
        warm,
    )
    if res is None:
        return
    model_only = [r[0] for r in res.ratios]
    rounds.ratios.append(
        PairedRatio.from_rounds(
            rounds.backbone, f"throughput_b{bs}_images_per_s", model_only, res.stop_reason
        )
    )
    warmup = 0 if warm else rounds.loop.warmup_iters
    for i, side in enumerate(SIDES):
        model_timing = _timing(res, i, 0, SHARED_TIMER, None, warmup)
        e2e_timing = _timing(res, i, 1, SHARED_TIMER, None, warmup)
        out[side].throughput.append(_batch_timing(bs, model_timing))
        out[side].end_to_end.append(_batch_timing(bs, e2e_timing))


def _batch_loop(rounds: _Rounds, bs: int, kind: str, out: dict[str, _Headline]) -> None:
    """One throughput-like loop at batch size `bs`: `kind` is throughput or end_to_end."""
    a, b = rounds.a, rounds.b
    rounds.ctx.steps(f"{rounds.tag}: {kind.replace('_', ' ')}, batch {bs}")
    if kind == "throughput":
        xa, xb = (
            a.pipe.preprocess_batched(a.host[:bs]),
            b.pipe.preprocess_batched(b.host[:bs]),
        )
        fa, fb = partial(a.pipe.infer, xa), partial(b.pipe.infer, xb)
    else:
        fa, fb = (
            partial(a.pipe.end_to_end, a.host[:bs]),
            partial(b.pipe.end_to_end, b.host[:bs]),
        )
    names: list[tuple[str, int]] = []
    res = rounds.run_sized(f"{kind}_b{bs}_images_per_s", rounds.blocked(fa, fb, names), True)
    if res is None:
        return
    for i, (side, (name, calls)) in enumerate(zip(SIDES, names, strict=True)):
        timings = out[side].throughput if kind == "throughput" else out[side].end_to_end
        timings.append(_batch_timing(bs, _timing(res, i, 0, name, None, 0, calls)))


def _with_headline(
    ctx: RunContext,
    result: PipelineResult,
    d: Deferred,
    h: _Headline,
    energy_passes_left: int = 1,
) -> PipelineResult:
    """One side's result with its interleaved headline figures, its NVML pass and efficiency."""
    monitor = result.gpu_monitor
    if ctx.device.type == "cuda" and h.throughput:
        peak = max(ctx.config.batch_sizes)
        x = d.pipe.preprocess_batched(d.host[:peak])
        best = next((t for t in h.throughput if t.batch_size == peak), None)
        if best is not None:
            monitor = ctx.energy_pass(partial(d.pipe.infer, x), peak, energy_passes_left)
    return dataclasses.replace(
        result,
        latency=h.latency,
        preprocess=h.preprocess,
        throughput=h.throughput,
        end_to_end=h.end_to_end,
        gpu_monitor=monitor,
        efficiency=_efficiency(
            h.throughput, result.flops_per_image, h.preprocess, result.memory, ctx.limits
        ),
    )
