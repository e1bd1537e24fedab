"""Every command-line option, declared once (a command's signature names them), and the option
parsing commands share: backbone names, --model references, report file labels. Torch-free.

An option whose meaning differs between commands (`--seed` of the synthetic images vs of a
fine-tune) is two options here, each with its own help.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from emobench.config import BACKBONE_NAMES, DEFAULT_BACKBONE, RunConfig, is_plugin
from emobench.errors import UsageError

DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (auto = cuda:0 when present).")
]


OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Report path (default: results/<UTC time>-<backbone>-<device>-<6 hex>.json). "
        "An existing file is replaced only when it is an emobench report (or with --force).",
    ),
]


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the JSON report to stdout instead of the table.")
]


ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Overwrite an existing --out file that is not a report."),
]


ModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Your own backbone as module:function (imported from the current folder or "
        "PYTHONPATH); function(pipeline, num_classes=7) returns the nn.Module. Repeatable.",
    ),
]


def check_model_refs(refs: list[str] | None) -> list[str]:
    """--model values: module:function syntax and a findable module, without importing torch."""
    import importlib.util
    import re

    out = []
    for ref in refs or []:
        module, sep, function = ref.partition(":")
        if (
            not sep
            or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module)
            or not (function.isidentifier())
        ):
            raise UsageError(f"--model {ref!r}: expected module:function, e.g. mymodels:build")
        if str(Path.cwd()) not in sys.path and "" not in sys.path:
            sys.path.append(str(Path.cwd()))
        try:
            # only the top-level package: find_spec("pkg.mod") imports pkg, and a package that
            # exits or raises at import must meet the fenced import in models.plugin instead
            found = importlib.util.find_spec(module.partition(".")[0])
        except ImportError as exc:
            raise UsageError(f"--model {ref}: {exc}") from None
        if found is None:
            raise UsageError(
                f"--model {ref}: no module named {module!r} in the current folder ({Path.cwd()}) "
                "or on PYTHONPATH"
            )
        out.append(ref)
    return out


def backbone_names(backbones: list[str] | None, models: list[str] | None) -> tuple[str, ...]:
    """--backbone (repeatable, `all` = every registered one) then --model; vgg16 if neither."""
    refs = check_model_refs(models)
    names = list(backbones or ([] if refs else [DEFAULT_BACKBONE]))
    expanded = [n for name in [*names, *refs] for n in (BACKBONE_NAMES if name == ALL else [name])]
    return tuple(dict.fromkeys(expanded))


def file_label(names: tuple[str, ...]) -> str:
    """A report file name's backbone part: one name, or how many; no ':' from a plugin."""
    label = names[0] if len(names) == 1 else f"{len(names)}backbones"
    return label.replace(":", "-").replace(".", "-")


def _positive_repeat(value: int) -> int:
    if value < 1:
        raise typer.BadParameter(f"must be >= 1, got {value}")
    return value


RepeatOpt = Annotated[
    int,
    typer.Option(
        "--repeat",
        help="Run the suite N times: the report keeps every run's ratios and the check compares "
        "their geometric mean with the baseline runs' (the run, not the sample, is the unit of "
        "noise; the N runs share the machine's state, so they damp one disturbed run but do not "
        "tighten the threshold).",
        callback=_positive_repeat,
    ),
]


BaselineDirOpt = Annotated[
    Path,
    typer.Option("--dir", help="Folder that holds the baselines, one subfolder per name."),
]


RuleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--rule",
        help="METRIC:THRESHOLD, e.g. latency_b1_median_ms:15% or portable:30%. Repeatable.",
    ),
]


VerdictMarkdownOpt = Annotated[
    Path | None,
    typer.Option(
        "--markdown",
        help="Also write the verdict table as Markdown (an existing file is replaced only when "
        "emobench wrote it, or with --force; never one of the command's inputs).",
    ),
]


FailOnOpt = Annotated[
    str,
    typer.Option(
        "--fail-on",
        help="Comma-separated kinds whose failures set exit 1: exact, portable, machine, "
        "invariant.",
    ),
]


BaselineOpt = Annotated[
    str,
    typer.Option(
        "--baseline",
        help="A baseline name (ci), a folder of per-class baselines (results/baselines/ci), "
        "or one baseline file. A name or folder gives the file of the report's machine class.",
    ),
]


CandidateOpt = Annotated[
    Path | None,
    typer.Option(
        "--candidate-out",
        help="Where to write the report as its class's candidate baseline when no baseline of "
        "that class exists (default: results/baseline-candidate-<class>.json).",
    ),
]


DEFAULT_FAIL_ON = "exact,portable,machine,invariant"


THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


ALL = "all"  # --backbone all: every registered backbone (emobench.models.ALL)

# -- what is measured: compare (and a suite's keys) -------------------------------------------

BackbonesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--backbone",
        help="Backbone (see `emobench models`), module:function, or all; repeat for several "
        "(default vgg16).",
    ),
]
BatchSizesOpt = Annotated[
    list[int] | None,
    typer.Option("--batch-size", help="Throughput batch size; repeat for several (default 16)."),
]
ImagesOpt = Annotated[
    Path | None,
    typer.Option("--data", help="FER2013-style CSV (pixels column) or a folder of 48x48 images."),
]
PretrainedOpt = Annotated[
    bool,
    typer.Option(
        "--pretrained/--no-pretrained",
        help="ImageNet weights from the torchvision cache under TORCH_HOME; --no-pretrained: "
        "random initialisation.",
    ),
]
WarmupOpt = Annotated[
    int | None,
    typer.Option("--warmup", help="Untimed calls before each measurement (default 1)."),
]
MinItersOpt = Annotated[
    int | None,
    typer.Option("--min-iters", help="Minimum timed calls per measurement (default 3)."),
]
MinTimeOpt = Annotated[
    float | None,
    typer.Option("--min-time", help="Minimum seconds of timed calls per measurement."),
]
MaxTimeOpt = Annotated[
    float | None,
    typer.Option(
        "--max-time", help="Cap on the seconds of one measurement's timed calls (default 2)."
    ),
]
TargetCiOpt = Annotated[
    float | None,
    typer.Option(
        "--target-ci",
        help="Stop a measurement once its median's 95% interval is within +-this fraction "
        "(default 0.02).",
    ),
]
LimitsTimeOpt = Annotated[
    float | None,
    typer.Option(
        "--limits-time",
        help="Seconds for the device-limit measurements (matmul rate, copy bandwidth; default 2).",
    ),
]
TimeBudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--time-budget",
        help="Seconds for the whole run; the measurements left share what remains.",
    ),
]
QuickOpt = Annotated[
    bool,
    typer.Option(
        "--quick/--no-quick",
        help="Fewer, shorter loops (min 1 sample, 0.5 s cap, +-5% target, 0.5 s of device "
        "limits): about half the default's cost.",
    ),
]
PreprocessImagesOpt = Annotated[
    int | None,
    typer.Option("--preprocess-images", help="Images per timed preprocessing call (default 64)."),
]
ImageSeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the synthetic images.")]
RunModeOpt = Annotated[
    str, typer.Option("--mode", help="infer, train (one SGD step per batch) or both.")
]
CudnnBenchmarkOpt = Annotated[
    bool | None,
    typer.Option("--cudnn-benchmark/--no-cudnn-benchmark", help="Set cudnn.benchmark (CUDA only)."),
]
Tf32Opt = Annotated[
    bool | None, typer.Option("--tf32/--no-tf32", help="Allow TF32 matmul/conv (CUDA only).")
]
ThreadsSweepOpt = Annotated[
    list[int] | None,
    typer.Option(
        "--threads",
        help="torch.set_num_threads (and OMP/MKL_NUM_THREADS) for CPU runs, and ONNX Runtime's "
        "intra-op threads; repeat (--threads 1 --threads 2) to measure each count side by side.",
    ),
]
RuntimeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--runtime",
        help="torch (default) or onnxruntime (the exported ONNX file in ONNX Runtime); repeat "
        "to measure runtimes side by side in one report.",
    ),
]
QuantizeOpt = Annotated[
    str | None,
    typer.Option(
        "--quantize",
        help="int8: also measure ONNX Runtime's static int8 file (QDQ, per-channel), "
        "calibrated on --data (synthetic images otherwise, flagged as not representative).",
    ),
]
AllowEmulatedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-emulated/--no-allow-emulated",
        help="Measure a precision the device only emulates (e.g. bf16 on an AVX2-only CPU).",
    ),
]

# -- how the model runs: compare and finetune -------------------------------------------------

PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision", help="fp32, or fp16/bf16 under autocast (compare: fp16 on CUDA only)."
    ),
]
ChannelsLastOpt = Annotated[
    bool,
    typer.Option(
        "--channels-last/--no-channels-last",
        help="Model and inputs in channels-last memory format.",
    ),
]
CompileOpt = Annotated[
    str,
    typer.Option(
        "--compile",
        help="torch.compile mode: none, default, reduce-overhead or max-autotune (compare "
        "reports compile time apart from steady-state timings).",
    ),
]


def thread_options(threads: list[int] | None) -> dict[str, Any]:
    """--threads given once or not at all: `threads`; given several times: a sweep
    (`thread_counts`), torch's pools sized for the largest count."""
    if not threads:
        return {"threads": None}
    if len(threads) == 1:
        return {"threads": threads[0]}
    return {"threads": max(threads), "thread_counts": tuple(threads)}


def set_thread_env(threads: int | None) -> None:
    """--threads also sets OMP/MKL_NUM_THREADS, before torch is imported: its OpenMP and MKL
    pools read them once."""
    if threads is not None and threads >= 1 and "torch" not in sys.modules:
        for var in THREAD_ENV_VARS:
            os.environ[var] = str(threads)


# -- maxbatch ---------------------------------------------------------------------------------

OneBackboneOpt = Annotated[
    str, typer.Option("--backbone", help="Backbone (see `emobench models`) or module:function.")
]
OneModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Your own backbone as module:function (replaces --backbone); "
        "function(pipeline, num_classes=7) returns the nn.Module.",
    ),
]
StepModeOpt = Annotated[
    str, typer.Option("--mode", help="infer (forward) or train (forward, backward, SGD step).")
]
PipelineOrBothOpt = Annotated[str, typer.Option("--pipeline", help="upscale224, direct48 or both.")]
BudgetOpt = Annotated[
    str | None,
    typer.Option(
        "--budget",
        help="Memory budget: 8GiB, 512MiB, or a fraction like 0.5 "
        "(default: the whole GPU; on CPU half the available RAM).",
    ),
]
MaxBatchOpt = Annotated[int, typer.Option("--max-batch", help="Largest batch to try.")]
MarginOpt = Annotated[
    float,
    typer.Option("--margin", help="Safety margin: safe batch = max batch x (1 - margin)."),
]


# -- gate, readout ------------------------------------------------------------

BaselineReportsArg = Annotated[
    list[Path],
    typer.Argument(help="A compare or run report, or several runs of one suite and class."),
]
BaselineNameOpt = Annotated[
    str,
    typer.Option("--name", help="Baseline name: stored as results/baselines/NAME/<class>.json."),
]
ForceBaselineOpt = Annotated[
    bool, typer.Option("--force/--no-force", help="Overwrite an existing baseline.")
]
FreshReportArg = Annotated[Path, typer.Argument(help="The fresh report.")]
CheckJsonOpt = Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")]
ForceCandidateOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Overwrite a --candidate-out file that is not a report, or a --markdown file "
        "emobench did not write (never one of the command's inputs).",
    ),
]
SuiteFileArg = Annotated[Path, typer.Argument(help="Suite file, e.g. configs/ci.toml.")]
ForceOutOrCandidateOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Overwrite an --out or --candidate-out file that is not a report, or a --markdown "
        "file emobench did not write (never one of the command's inputs).",
    ),
]
CalibrateSuiteArg = Annotated[
    Path | None, typer.Argument(help="Suite file, e.g. configs/ci.toml (or --from).")
]
RunsOpt = Annotated[
    int, typer.Option("--runs", help="Back-to-back runs of the unchanged tree (at least 3).")
]
FromReportsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--from",
        help="Calibrate on runs already made (reports of one suite and machine class, "
        "e.g. earlier CI runs or a baseline; a --repeat report gives each of its runs) "
        "instead of running the suite; repeat for several.",
    ),
]
AlphaOpt = Annotated[
    float,
    typer.Option(
        "--alpha", help="False-alarm rate of the whole gate (split over the ratios, Bonferroni)."
    ),
]
SaveBaselineOpt = Annotated[
    str | None,
    typer.Option(
        "--save-baseline",
        help="Store the runs as baseline NAME carrying these thresholds, so `check` and "
        "`ci` need no --rule lines.",
    ),
]
CalibrateOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Also write the calibration table as JSON (schema emobench.calibration); an "
        "existing file is replaced only when it is one, or with --force.",
    ),
]
ForceCalibrateOpt = Annotated[
    bool,
    typer.Option(
        "--force/--no-force",
        help="Overwrite an existing baseline, and an --out file that is not a calibration "
        "table (never a --from report).",
    ),
]
ReportFilesToMergeArg = Annotated[
    list[Path], typer.Argument(help="compare, run, maxbatch or finetune report files.")
]
TableMarkdownOpt = Annotated[
    Path | None, typer.Option("--markdown", help="Write the table as Markdown.")
]
CsvOpt = Annotated[
    Path | None,
    typer.Option("--csv", help="Write one row per measurement, environment as columns."),
]
PlotOpt = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        help="Draw latency/throughput curves and ratio bars (matplotlib) to a .png, .svg or "
        ".pdf file.",
    ),
]
HtmlOpt = Annotated[
    Path | None,
    typer.Option(
        "--html",
        help="Write one self-contained HTML page: settings, the comparison tables, the claims "
        "with their intervals, plots and the per-class ratios (nothing fetched to view it).",
    ),
]
ForceOutputsOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Overwrite an existing output file that emobench did not write (an output is "
        "never one of the command's input reports).",
    ),
]
ClaimsReportFilesArg = Annotated[
    list[Path],
    typer.Argument(
        help="Compare, run, finetune, stream (and maxbatch) reports, of one machine class or "
        "several: "
        "one row per class, reports of one class pooled as runs.",
        show_default=False,
    ),
]
MobileBudgetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--mobile-budget",
        metavar="KEY=VALUE",
        help="Override a 'mobile friendly' budget (repeatable): latency_ms (default 33.3, one "
        "30 fps frame), file_mb (40, Android Go app install size), rss_mb (50, Android Go app "
        "RAM). The README's mobile budgets give the sources.",
    ),
]
MaxbatchReportsOpt = Annotated[
    list[Path] | None,
    typer.Option("--maxbatch", help="maxbatch report(s) for the batch-size claim."),
]
ModelsJsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
EnvJsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for bug reports.")]


# -- finetune ------------------------------------------------------------

LabeledDataOpt = Annotated[
    Path,
    typer.Option(
        "--data",
        help="FER2013 CSV (emotion, pixels, optional Usage) or a folder with one sub-folder "
        "per class (optionally under train/, val/, test/).",
    ),
]
PipelinesOpt = Annotated[
    list[str] | None,
    typer.Option("--pipeline", help="upscale224 or direct48; repeat for both (default: both)."),
]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Training epochs per pipeline.")]
TrainBatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Training batch size.")]
OptimizerOpt = Annotated[str, typer.Option("--optimizer", help="sgd (momentum 0.9) or adamw.")]
LrOpt = Annotated[
    float | None,
    typer.Option("--lr", help="Peak learning rate, in (0, 10] (default sgd 0.01, adamw 0.001)."),
]
WeightDecayOpt = Annotated[
    float | None,
    typer.Option("--weight-decay", help="Weight decay, 0 to 10 (default sgd 5e-4, adamw 0.05)."),
]
ScheduleOpt = Annotated[
    str, typer.Option("--schedule", help="cosine (to 0 over the epochs) or step (/10 every third).")
]
LabelSmoothingOpt = Annotated[
    float, typer.Option("--label-smoothing", help="Cross-entropy label smoothing, 0 to <1.")
]
FreezeBackboneOpt = Annotated[
    bool,
    typer.Option(
        "--freeze-backbone/--no-freeze-backbone", help="Linear probing: train only the head."
    ),
]
WorkersOpt = Annotated[
    int, typer.Option("--workers", help="DataLoader worker processes, 0 to 256.")
]
TrainSeedOpt = Annotated[
    int,
    typer.Option(
        "--seed", help="First seed, 0 to 4294967295 (weights, order, augmentation, split)."
    ),
]
SeedsOpt = Annotated[
    int, typer.Option("--seeds", help="Repeat the whole fine-tune with this many seeds (1-1000).")
]
TargetAccOpt = Annotated[
    float | None,
    typer.Option(
        "--target-acc", help="Report the training time until validation accuracy reaches this."
    ),
]
ValFractionOpt = Annotated[
    float,
    typer.Option("--val-fraction", help="Validation share when the data has no given splits."),
]
TestFractionOpt = Annotated[
    float, typer.Option("--test-fraction", help="Test share when the data has no given splits.")
]
CheckpointDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint-dir",
        help="Where the checkpoints go (default results/finetune/<backbone>-<data name>-<12 "
        "hex of the data and the recipe>). A folder holding this run's checkpoints is "
        "continued with --resume or started over with --force.",
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume/--no-resume",
        help="Continue an interrupted run from its checkpoints (refused when there are none, "
        "or when they belong to another backbone, pipeline, recipe, data set or seed).",
    ),
]
FinetuneBackboneOpt = Annotated[
    str,
    typer.Option(
        "--backbone",
        help="Any backbone of `emobench models`, plugins included (an installed plugin's name, "
        "or module:function).",
    ),
]
FinetuneForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Overwrite an existing --out file that is not a report, and start over in a "
        "checkpoint folder that holds this run's checkpoints.",
    ),
]


def checked_plugins(config: RunConfig) -> RunConfig:
    """The config, once every plugin backbone in it imports and maps N x 3 x S x S to
    (N, num_classes) (checked on the meta device): right after the settings, before any output
    path, input file or device is looked at. Registered backbones need no torch here."""
    for backbone in filter(is_plugin, config.backbones):
        from emobench.models import check_backbone

        check_backbone(backbone, num_classes=config.num_classes)
    return config
