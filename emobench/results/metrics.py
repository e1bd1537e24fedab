"""The metric catalogue: every metric defined once (key, label, unit, direction, kind, how it is
measured, where its value lives). The report's rows, the regression check, the terminal table
and the metric table of docs/metrics.md (`python -m emobench.results`) all read it.

Keys and labels with `{bs}` expand once per batch size of the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emobench.names import DIRECT, UPSCALE

if TYPE_CHECKING:
    from emobench.results.schema import PipelineResult, Report
    from emobench.stats.summary import Stats


EXACT = "exact"  # identical on every machine
PORTABLE = "portable"  # only meaningful as a ratio between the two pipelines
MACHINE = "machine"  # absolute figure, tied to the machine that measured it
LOWER, HIGHER = False, True  # higher_is_better

Getter = Callable[["PipelineResult", int], "float | None"]
CEILING_KEY = "matmul_fraction"  # achieved / the run's compute ceiling, raw (may exceed 1)
ABOVE_CEILING = "above the measured ceiling"  # what tables show for a raw fraction over 1


@dataclass(frozen=True)
class Metric:
    """One catalogue entry; `get(result, batch_size)` reads the value (batch size ignored by
    metrics that are not per batch)."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    kind: str
    how: str
    get: Getter

    @property
    def per_batch(self) -> bool:
        return "{bs}" in self.key


@dataclass(frozen=True)
class MetricDef:
    """A catalogue entry expanded for one batch size: what a report row is made from."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    kind: str
    get: Callable[[PipelineResult], float | None]


@dataclass(frozen=True)
class MetricRow:
    backbone: str
    key: str
    label: str
    unit: str
    higher_is_better: bool
    kind: str
    upscale224: float | None
    direct48: float | None
    ratio: float | None  # oriented so that > 1 means direct48 wins
    noisy: bool = False


# -- getters -----------------------------------------------------------------------------------


def _first(items: list[Any], bs: int, **attrs: object) -> Any | None:
    return next(
        (
            x
            for x in items
            if x.batch_size == bs and all(getattr(x, k) == v for k, v in attrs.items())
        ),
        None,
    )


def _pre(path: str) -> Getter:
    def get(r: PipelineResult, bs: int) -> float | None:
        found = next((p for p in r.preprocess if p.path == path), None)
        return found.us_per_image.median if found else None

    return get


def _latency(attr: str) -> Getter:
    return lambda r, bs: getattr(r.latency.stats, attr) if r.latency else None


def _peak(attr: str) -> Getter:
    return lambda r, bs: getattr(r.memory.peak, attr) if r.memory.peak is not None else None


def _images_per_s(field: str) -> Getter:
    def get(r: PipelineResult, bs: int) -> float | None:
        found = _first(getattr(r, field), bs)
        return found.images_per_s if found else None

    return get


def _train_step_ms(r: PipelineResult, bs: int) -> float | None:
    found = _first(r.train, bs)
    return found.timing.stats.median if found else None


def _train_peak(attr: str) -> Getter:
    def get(r: PipelineResult, bs: int) -> float | None:
        found = _first(r.train, bs)
        return getattr(found.peak, attr) if found and found.peak else None

    return get


def _natural_placement(r: PipelineResult) -> str:
    return "host_upscale_then_copy_f32" if r.pipeline == UPSCALE else "copy_uint8_48"


def _transfer_ms(upscale_placement: str) -> Getter:
    def get(r: PipelineResult, bs: int) -> float | None:
        want = upscale_placement if r.pipeline == UPSCALE else "copy_uint8_48"
        found = _first(r.to_device, bs, placement=want)
        return found.total_ms if found else None

    return get


def _transfer_bytes(r: PipelineResult, bs: int) -> float | None:
    found = _first(r.to_device, bs, placement=_natural_placement(r))
    return found.bytes_moved if found else None


def _eff(fn: Callable[[Any], float | None]) -> Getter:
    return lambda r, bs: fn(r.efficiency) if r.efficiency else None


def _ceiling_fraction(r: PipelineResult, bs: int) -> float | None:
    """Achieved / the compute ceiling; None for a report whose reference was no ceiling."""
    e = r.efficiency
    return e.matmul_fraction if e is not None and e.ceiling_kernel is not None else None


def _mon(attr: str) -> Getter:
    return lambda r, bs: getattr(r.gpu_monitor, attr) if r.gpu_monitor else None


def _joules_per_image(r: PipelineResult, bs: int) -> float | None:
    mon = r.gpu_monitor
    if mon is None or mon.energy_joules is None or not mon.images:
        return None
    return mon.energy_joules / mon.images


# -- the catalogue -----------------------------------------------------------------------------

_TIMED_AS_LATENCY = "timed under the stopping rule (see *How long a run takes*)"

CATALOGUE: tuple[Metric, ...] = (
    Metric("preprocess_per_image_pil_us", "preprocess, per-image PIL path", "us/image", LOWER, PORTABLE,
           "The original write-up's path, one image at a time on the CPU: `Image.fromarray(L)"
           ".convert(\"RGB\")`, (upscale224 only) `transforms.Resize((224,224), BILINEAR)`, "
           "`ToTensor`, `Normalize(ImageNet)`, then `torch.stack`; on CUDA the batch is then "
           "copied to the device from pinned memory and the timer waits for the copy, as the "
           "batched path's input is. One timed call processes `--preprocess-images` images; the "
           "median call time is divided by the image count.",
           _pre("per_image_pil")),
    Metric("preprocess_batched_tensor_us", "preprocess, batched tensor path", "us/image", LOWER, PORTABLE,
           "The whole uint8 batch at once on the target device: copy, `float()/255`, (upscale224 "
           "only) `F.interpolate(size=224, mode=\"bilinear\", align_corners=False)` on one "
           "channel, broadcast to 3 channels while normalising. Includes the host-to-device copy "
           "on CUDA. Blocked timing: each sample is as many back-to-back calls as fill 10 ms (on "
           "CUDA always; on the CPU when a call is shorter, e.g. direct48's 0.4 ms for 128 "
           "images), the mean call of the block; the block is sized after one untimed call from "
           "the fastest of three timed ones, and recorded (`block_calls`). Agrees with the PIL "
           "path to within one gray level.",
           _pre("batched_tensor")),
    Metric("latency_b1_median_ms", "latency b1, median", "ms", LOWER, PORTABLE,
           "One image through the model: one cold call (*first call*), `--warmup` untimed calls, "
           f"then samples {_TIMED_AS_LATENCY}. CPU: `time.perf_counter_ns` around the call; "
           "CUDA: `torch.cuda.Event` pairs on the device's stream after a `synchronize`. The "
           "table's ± is the median's distribution-free 95% interval (order statistics).",
           _latency("median")),
    Metric("latency_b1_p90_ms", "latency b1, p90", "ms", LOWER, MACHINE,
           "As the median; reported only from >= 64 samples (MLPerf's rule of thumb), else "
           "null: n too small. Linear interpolation between order statistics.",
           _latency("p90")),
    Metric("latency_b1_p99_ms", "latency b1, p99", "ms", LOWER, MACHINE,
           "As p90, from >= 662 samples.", _latency("p99")),
    Metric("cold_start_ms", "first call (cold start), b1", "ms", LOWER, MACHINE,
           "The first forward call of the freshly built model at batch 1 (allocator warm-up, "
           "kernel selection), after the one-time library costs. On CUDA it is timed in a fresh "
           "process per pipeline, so neither pays for kernels the other loaded (CUDA loads them "
           "lazily); on the CPU in the run's process, the pipeline order alternating between "
           "backbones. Null under `--compile` (the first call compiles). `cold_start_note` says "
           "which.",
           lambda r, bs: r.latency.cold_start_ms if r.latency else None),
    Metric("compile_s", "compile (first compiled call)", "s", LOWER, MACHINE,
           "With `--compile`: wall time of the first compiled call at batch 1 (compilation plus "
           "one run). Static shapes (`dynamic=False`): every batch size is compiled and timed "
           "the same way before anything is timed, so no timed loop compiles.",
           lambda r, bs: r.compile_s),
    Metric("compile_b{bs}_s", "compile b{bs} (first compiled call)", "s", LOWER, MACHINE,
           "With `--compile`: the first compiled call at that batch size (its own graph).",
           lambda r, bs: r.compile_s_per_batch.get(str(bs))),
    Metric("throughput_b{bs}_images_per_s", "throughput b{bs} (model only)", "images/s", HIGHER, PORTABLE,
           "N / median seconds per forward call on an already preprocessed batch. CUDA: blocks "
           "of calls between two synchronisations (>= 10 ms each, sized after one untimed call "
           "from the fastest of three; `block_calls`). The peak-memory calls at the largest "
           "batch are that batch's warmup.",
           _images_per_s("throughput")),
    Metric("end_to_end_b{bs}_images_per_s", "end to end b{bs} (uint8 host batch -> logits)", "images/s",
           HIGHER, PORTABLE,
           "uint8 host batch (pinned on CUDA) -> device copy -> batched preprocessing -> forward "
           "-> logits; N / median seconds. On the CPU the same calls give model-only throughput "
           "(each call times its preprocessing and its forward).",
           _images_per_s("end_to_end")),
    Metric("train_b{bs}_images_per_s", "train b{bs} (one SGD step)", "images/s", HIGHER, PORTABLE,
           "`--mode train/both`: one optimizer step (forward under autocast, cross-entropy, "
           "backward, SGD with momentum 0.9, `zero_grad(set_to_none=True)`) on a random batch, "
           "momentum buffers allocated before the first step; blocked timing on CUDA. Untimed "
           "steps first: one, in fp16 at least 3 and until GradScaler stops skipping "
           "overflowed steps (at most 8), so no timed step is a skipped one.",
           _images_per_s("train")),
    Metric("train_b{bs}_step_ms", "train step b{bs}, median", "ms", LOWER, MACHINE,
           "The median time of that step.", _train_step_ms),
    Metric("train_b{bs}_tensor_peak_bytes", "train b{bs}, peak live tensors", "bytes", LOWER, PORTABLE,
           "Peak live tensors (as for inference) over one step: gradients and activations; "
           "weights, momentum buffers and the batch existed before and are not counted.",
           _train_peak("tensor_peak_bytes")),
    Metric("train_b{bs}_rss_growth_bytes", "train b{bs}, peak RSS growth", "bytes", LOWER, MACHINE,
           "Peak RSS growth (as for inference) over one step.",
           _train_peak("cpu_peak_rss_growth_bytes")),
    Metric("train_b{bs}_cuda_peak_bytes", "train b{bs}, CUDA peak allocated", "bytes", LOWER, MACHINE,
           "CUDA only: over one warm step, as for inference: what the step allocated on top of "
           "what was resident, plus this pipeline's weights, momentum buffers and batch.",
           _train_peak("cuda_peak_allocated_bytes")),
    Metric("transfer_b{bs}_host_upscale_ms", "to device b{bs}: upscale on host, copy f32", "ms",
           LOWER, MACHINE,
           "CUDA only: upscale224's batch upscaled on the host, then copied as float 224x224 from "
           "pinned memory (direct48: its uint8 48x48 copy); CUDA events.",
           _transfer_ms("host_upscale_then_copy_f32")),
    Metric("transfer_b{bs}_device_upscale_ms", "to device b{bs}: copy uint8, upscale on device",
           "ms", LOWER, MACHINE,
           "CUDA only: the uint8 48x48 batch copied, then upscaled on the device; a note says "
           "which placement is faster.",
           _transfer_ms("copy_uint8_then_device_upscale")),
    Metric("transfer_b{bs}_bytes", "host->device bytes b{bs}, natural input", "bytes", LOWER, EXACT,
           "Bytes each pipeline's natural input moves over the bus per batch (CUDA only).",
           _transfer_bytes),
    Metric("params_total", "parameters, total", "count", LOWER, EXACT,
           "`sum(p.numel())` over `model.parameters()` (a tied weight once).",
           lambda r, bs: r.params.total),
    Metric("params_trainable", "parameters, trainable", "count", LOWER, EXACT,
           "The same over parameters with `requires_grad`.", lambda r, bs: r.params.trainable),
    Metric("params_unused", "parameters never used by forward", "count", LOWER, EXACT,
           "Parameters whose memory no operator reads during one real forward pass (a "
           "`TorchDispatchMode` records every input's storage): per parameter, so a partly used "
           "module, a dead branch and a weight used through another module count right. The "
           "original 224 model carried 123.6M such parameters; ours must show 0.",
           lambda r, bs: r.params.unused),
    Metric("flops_per_image", "FLOPs per image", "FLOP", LOWER, EXACT,
           "`torch.utils.flop_counter.FlopCounterMode` over one batch-1 forward: a multiply-add "
           "is **2 FLOPs**; only matmul/conv-like ops count (no pooling, activations, norms).",
           lambda r, bs: r.flops_per_image),
    Metric("input_bytes_per_image", "model input per image", "bytes", LOWER, EXACT,
           "`numel * element_size` of one image of the float tensor the model consumes.",
           lambda r, bs: r.memory.input_bytes_per_image),
    Metric("weight_bytes", "weights + buffers", "bytes", LOWER, EXACT,
           "All state-dict tensors (parameters and BatchNorm statistics).",
           lambda r, bs: r.memory.weight_bytes),
    Metric("tensor_peak_bytes", "peak live tensors, inference batch", "bytes", LOWER, PORTABLE,
           "At the largest `--batch-size` (on CUDA after one untimed call at that size): the "
           "peak of bytes held at once by tensors created during one forward, per operator (`TorchDispatchMode`, storages keyed by data "
           "pointer). Weights, buffers and the input existed before; views and in-place results "
           "allocate nothing. Same on every device; allocator caching and workspaces unseen.",
           _peak("tensor_peak_bytes")),
    Metric("peak_cpu_rss_growth_bytes", "peak RSS growth, inference batch", "bytes", LOWER, MACHINE,
           "CPU: the resident-set high-water mark during that same forward minus the RSS before "
           "it (`malloc_trim`, then `/proc/self/clear_refs` and `VmHWM`; else psutil sampling "
           "every millisecond, named in `method`).",
           _peak("cpu_peak_rss_growth_bytes")),
    Metric("peak_cuda_allocated_bytes", "CUDA peak allocated, inference batch", "bytes", LOWER,
           MACHINE,
           "This pipeline's own: `torch.cuda.max_memory_allocated` around that forward (after "
           "`empty_cache` and `reset_peak_memory_stats`) less what was allocated just before it, "
           "plus its own weights, buffers and input, so a model still resident (paired mode "
           "keeps the other pipeline's) is not counted; both parts are in the report.",
           _peak("cuda_peak_allocated_bytes")),
    Metric("peak_cuda_reserved_bytes", "CUDA peak reserved, inference batch", "bytes", LOWER,
           MACHINE, "`torch.cuda.max_memory_reserved`'s growth over that forward, plus the same "
           "own tensors.",
           _peak("cuda_peak_reserved_bytes")),
    Metric("nvml_device_used_bytes", "NVML device memory used, after batch", "bytes", LOWER,
           MACHINE,
           "`nvmlDeviceGetMemoryInfo(handle).used` right after that forward (every process and "
           "the CUDA context); the handle is found by the GPU's UUID.",
           _peak("nvml_device_used_bytes")),
    Metric("achieved_flops_per_s", "achieved compute, best throughput", "FLOP/s", HIGHER, MACHINE,
           "FLOPs per image x images/s at the best throughput batch.",
           _eff(lambda e: e.achieved_flops_per_s)),
    Metric(CEILING_KEY, "of the compute ceiling measured in this run", "fraction", HIGHER,
           MACHINE,
           "Achieved compute / the run's compute ceiling: the best rate of square `torch.mm` at "
           "doubling sizes up to the models' largest layer and of 3x3 convolutions with each "
           "pipeline's widest and most expensive convolution shapes (batch doubled until a call "
           "takes 5 ms, up to the largest `--batch-size`), all in the run's dtype, math mode "
           "(TF32 on CUDA fp32 by default), memory format and backend (oneDNN, cuDNN), within "
           "`--limits-time`; the report names the kernel that set it. A model that beats every "
           "kernel timed keeps its raw fraction (> 1) and a flag, and tables say *above the "
           "measured ceiling*. Reports written before the ceiling divided by one square matmul's "
           "rate; their fraction is not shown. (The key is older than the ceiling.)",
           _ceiling_fraction),
    Metric("preprocess_batched_copy_fraction", "preprocess batched, of copy bandwidth", "fraction",
           HIGHER, MACHINE,
           "Bytes the batched path must move per image (uint8 read + float written) against the "
           "device's copy bandwidth measured in the run; on CUDA the uint8 part against pinned "
           "host-to-device bandwidth.",
           _eff(lambda e: e.preprocess_copy_fraction.get("batched_tensor"))),
    Metric("preprocess_per_image_copy_fraction", "preprocess per-image, of copy bandwidth",
           "fraction", HIGHER, MACHINE,
           "The same for the per-image PIL path, against the host's memcpy bandwidth.",
           _eff(lambda e: e.preprocess_copy_fraction.get("per_image_pil"))),
    Metric("nvml_device_peak_bytes", "NVML device memory, peak in loop", "bytes", LOWER, MACHINE,
           "CUDA + NVML: a thread samples NVML every 10 ms in a pass of its own after the "
           "largest-batch throughput loop (>= 2 s of back-to-back calls): device memory used, "
           "peak.",
           _mon("device_used_peak_bytes")),
    Metric("nvml_process_peak_bytes", "NVML process memory, peak in loop", "bytes", LOWER, MACHINE,
           "This process's memory in that pass (matched by PID, or the device's only process "
           "in a container), peak.", _mon("process_used_peak_bytes")),
    Metric("nvml_process_mean_bytes", "NVML process memory, mean in loop", "bytes", LOWER, MACHINE,
           "The same, mean.", _mon("process_used_mean_bytes")),
    Metric("energy_j_per_image", "GPU energy per image (NVML)", "J/image", LOWER, MACHINE,
           "`nvmlDeviceGetTotalEnergyConsumption` read through that pass (Volta or newer): the "
           "counter refreshes only every ~100 ms, so the pass runs >= 2 s (on to 5 s while it "
           "has refreshed < 10 times; less when --time-budget leaves less), and energy = the "
           "counter's rate between its first and last refresh seen x the window, / the images "
           "the window processed. Null, with `energy_note`, under 10 refreshes. The window, "
           "calls, refreshes and their interval are in the report.", _joules_per_image),
)  # fmt: skip


def _expand(metric: Metric, bs: int) -> MetricDef:
    return MetricDef(
        metric.key.format(bs=bs),
        metric.label.format(bs=bs),
        metric.unit,
        metric.higher_is_better,
        metric.kind,
        lambda r: metric.get(r, bs),
    )


def _group(key: str) -> str:
    """Per-batch entries of one group repeat together per batch size."""
    return "infer" if key.startswith(("throughput", "end_to_end")) else key.split("_b{bs}")[0]


def metric_defs(batch_sizes: list[int]) -> list[MetricDef]:
    """The catalogue expanded for these batch sizes; consecutive per-batch entries of one group
    repeat as a block per batch size (throughput and end to end of b1, then of b8, ...)."""
    defs: list[MetricDef] = []
    block: list[Metric] = []
    for metric in (*CATALOGUE, None):
        if block and (
            metric is None or not metric.per_batch or _group(metric.key) != _group(block[0].key)
        ):
            defs += [_expand(m, bs) for bs in batch_sizes for m in block]
            block = []
        if metric is None:
            break
        if metric.per_batch:
            block.append(metric)
        else:
            defs.append(_expand(metric, 0))
    return defs


def ratio(upscale: float | None, direct: float | None, higher_is_better: bool) -> float | None:
    """upscale224/direct48 if lower is better, the inverse otherwise; None if undefined."""
    if upscale is None or direct is None:
        return None
    num, den = (direct, upscale) if higher_is_better else (upscale, direct)
    if den == 0:
        return None
    return num / den


def stats_for(r: PipelineResult | None, key: str) -> Stats | None:
    """The raw-sample statistics behind a timing metric, when the report has them."""
    if r is None:
        return None
    if key.startswith("latency_b1") and r.latency:
        return r.latency.stats
    for attr in ("throughput", "end_to_end", "train"):
        prefix = f"{attr}_b"
        if key.startswith(prefix) and key.endswith(("_images_per_s", "_step_ms")):
            bs = int(key[len(prefix) :].split("_")[0])
            found = next((b for b in getattr(r, attr) if b.batch_size == bs), None)
            return found.timing.stats if found else None
    for p in r.preprocess:
        if key == f"preprocess_{p.path}_us":
            return p.us_per_image
    return None


def _noisy(r: PipelineResult | None, key: str) -> bool:
    stats = stats_for(r, key)
    return bool(stats and stats.noisy)


def batch_sizes_of(report: Report) -> list[int]:
    sizes: dict[int, None] = {}
    for r in report.results:
        for items in (r.throughput, r.end_to_end, r.train, r.to_device):
            for b in items:
                sizes[b.batch_size] = None
    return sorted(sizes)


def metric_rows(report: Report) -> list[MetricRow]:
    """One row per backbone and metric: both pipelines' values and their ratio."""
    rows: list[MetricRow] = []
    defs = metric_defs(batch_sizes_of(report))
    for backbone in report.backbones:
        up, dn = report.result(backbone, UPSCALE), report.result(backbone, DIRECT)
        for d in defs:
            u = d.get(up) if up else None
            v = d.get(dn) if dn else None
            if u is None and v is None:
                continue
            paired = report.paired_ratio(backbone, d.key)
            rows.append(
                MetricRow(
                    backbone=backbone,
                    key=d.key,
                    label=d.label,
                    unit=d.unit,
                    higher_is_better=d.higher_is_better,
                    kind=d.kind,
                    upscale224=u,
                    direct48=v,
                    ratio=paired.ratio if paired else ratio(u, v, d.higher_is_better),
                    noisy=_noisy(up, d.key) or _noisy(dn, d.key),
                )
            )
    return rows


TABLE_BEGIN = "<!-- metrics table: generated by `python -m emobench.results`; a test checks it -->"
TABLE_END = "<!-- end of metrics table -->"


def markdown_table() -> str:
    """The metric table of docs/metrics.md, one row per catalogue entry (bN = any batch size)."""
    lines = [
        TABLE_BEGIN,
        "| metric | key | unit | kind | how |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in CATALOGUE:
        label = m.label.replace("{bs}", "N")
        key = m.key.replace("{bs}", "N")
        how = m.how.replace("|", "\\|")
        lines.append(f"| {label} | `{key}` | {m.unit} | {m.kind} | {how} |")
    lines.append(TABLE_END)
    return "\n".join(lines) + "\n"
