"""`export`: a fine-tune checkpoint made deployable. Its model is exported to ONNX (int8 on
request), and the test split the fine-tune scored it on is scored again three ways: torch fp32,
onnxruntime fp32 and onnxruntime int8 (accuracy, macro-F1, agreement with torch, McNemar's exact
test int8 vs onnxruntime fp32, and the MLPerf rule, int8 against torch fp32, deciding whether
int8 is acceptable), in batches of SCORE_BATCH images.

The checkpoint proves which data it learnt from (its fingerprint's sha256 of the splits): the
data given must hash the same, so the test split is the one the fine-tune held out. finetune
splits once, with its first seed (--seed), and stamps the checkpoint of its i-th seed with
seed + i; without --seed, the checkpoint's own seed is tried first, then the seeds below it.

The files are made in a private temporary folder; nothing is written to --out or `<out>.json`
until every file is made and scored. Then an old `<out>.json` is moved aside, the model renamed
over --out and its report renamed beside it (each rename atomic): a failure there leaves the
old pair, or the new model without a report, never a report beside a model it does not
describe.

An existing --out (or its report) is refused unless --force, and --force replaces only a file
an earlier export wrote (an ONNX file whose metadata_props carry the key "emobench", a JSON
report of schema "emobench.export"): a model someone else made is never overwritten.

Importing this module does not import torch: the CLI checks every option and path first
(`ExportConfig`, `check_inputs`); `run_export` imports the torch-backed wings when it starts.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emobench import __version__
from emobench import files as fileio
from emobench.data.labeled import TEST_FRACTION, VAL_FRACTION, LabeledData, check_source
from emobench.errors import EmobenchError, MeasurementError, UsageError
from emobench.names import ORT_RUNTIME, PIPELINE_NAMES, QUANTIZE_MODES, TORCH_RUNTIME
from emobench.results.export import (
    MLPERF_FRACTION,
    ONNX_MARK,
    ExportedFile,
    ExportReport,
    Int8Check,
    VariantScore,
    is_export_report,
    metadata_bytes,
    mlperf_needed,
    onnx_is_ours,
    report_path,
    to_json,
)
from emobench.results.progress import ProgressFn, no_progress
from emobench.scenarios.finetune.settings import FINGERPRINT_FIELDS, MAX_SEED, MAX_SEEDS

if TYPE_CHECKING:
    from torch import Tensor

    from emobench.models import EmotionNet
    from emobench.runtimes.torch import Pipeline

CHECKPOINT_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
WEIGHT_KINDS = ("best", "last")  # the checkpoint files that hold weights (state.pt does not)
FP32 = "fp32"
INT8 = "int8"
TORCH_LABEL = f"{TORCH_RUNTIME} {FP32}"
ORT_LABEL = f"{ORT_RUNTIME} {FP32}"
ORT_INT8_LABEL = f"{ORT_RUNTIME} {INT8}"
HASH_BLOCK_BYTES = 2**20
# Images per scored batch: an upscale224 batch of 256 (finetune's PREDICT_BATCH) holds 150 MB
# of input alone, and a batch is also the unit of progress.
SCORE_BATCH = 32

BuildFn = Callable[..., "EmotionNet"]


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path
    data: Path
    out: Path
    runtime: str = ORT_RUNTIME
    quantize: str | None = None
    # the stratified split's seed (finetune's first --seed); None: the checkpoint's own seed,
    # then the seeds below it
    seed: int | None = None
    val_fraction: float = VAL_FRACTION
    test_fraction: float = TEST_FRACTION
    force: bool = False

    def __post_init__(self) -> None:
        if self.runtime == TORCH_RUNTIME:
            raise UsageError(
                f"--runtime {TORCH_RUNTIME}: torch makes no deployable file; export writes an "
                f"ONNX file for --runtime {ORT_RUNTIME} (and scores torch beside it)"
            )
        if self.runtime != ORT_RUNTIME:
            raise UsageError(f"--runtime {self.runtime}: choose {ORT_RUNTIME}")
        if self.quantize is not None and self.quantize not in QUANTIZE_MODES:
            raise UsageError(f"--quantize {self.quantize}: choose {', '.join(QUANTIZE_MODES)}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed must be 0 to {MAX_SEED} (2**32 - 1), got {self.seed}")
        fractions = (self.val_fraction, self.test_fraction)
        if not all(math.isfinite(f) and 0 < f < 1 for f in fractions) or sum(fractions) >= 1:
            raise UsageError(
                "--val-fraction and --test-fraction must be finite numbers > 0 that sum to "
                f"less than 1, got {self.val_fraction} and {self.test_fraction}"
            )

    @property
    def precision(self) -> str:
        """The precision of the file written to --out."""
        return self.quantize or FP32

    @property
    def report(self) -> Path:
        return report_path(self.out)


# -- the checks before any work (no torch) -----------------------------------------------------


def check_inputs(config: ExportConfig) -> None:
    """UsageError (or DataError) before anything is read in full: the checkpoint a regular
    torch.save file, --data a CSV or a folder, --out and its report writable and not refused."""
    _check_checkpoint_file(config.checkpoint)
    check_source(config.data)
    check_outputs(config)


def _check_checkpoint_file(path: Path) -> None:
    """A regular file that starts as torch.save's zip archive does: text, an empty file or a
    folder is refused here, without torch."""
    label = f"checkpoint {path}"
    with fileio.open_regular(path, UsageError, label, noun="checkpoint") as fh:
        head = fh.read(len(CHECKPOINT_MAGIC))
    if not head:
        raise UsageError(f"{label}: is empty, not an emobench checkpoint")
    if head != CHECKPOINT_MAGIC:
        raise UsageError(
            f"{label}: not an emobench checkpoint (not a torch.save file); give a "
            "<pipeline>-seed<N>-best.pt that `emobench finetune` wrote"
        )


def check_outputs(config: ExportConfig) -> None:
    """--out and `<out>.json`: never a folder, special file or one of the inputs (files'
    output policy); an existing one only with --force, and then only when an export wrote it."""
    outputs = (
        (config.out, "--out", onnx_is_ours, "an ONNX file emobench export wrote"),
        (config.report, f"--out {config.out}: its report", is_export_report, "an export report"),
    )
    inputs = [config.checkpoint, config.data]
    for path, option, ours, noun in outputs:
        fileio.check_output(path, option, inputs=inputs)
        if not path.exists():
            continue
        if not config.force:
            raise UsageError(
                f"{option} {path}: exists; pass --force to replace it (only {noun} is replaced)"
            )
        if not ours(path):
            raise UsageError(
                f"{option} {path}: exists and is not {noun}; --force replaces only files "
                "emobench export wrote: choose another path"
            )
    if os.path.realpath(config.out) == os.path.realpath(config.report):
        raise UsageError(f"--out {config.out}: its report {config.report} is the same file")


# -- the checkpoint -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    sha256: str
    kind: str
    epoch: int
    fingerprint: dict[str, Any]
    options: dict[str, Any]
    weights: dict[str, Any]

    @property
    def backbone(self) -> str:
        return str(self.fingerprint["backbone"])

    @property
    def pipeline(self) -> str:
        return str(self.fingerprint["pipeline"])

    @property
    def seed(self) -> int:
        return int(self.fingerprint["seed"])

    @property
    def data_sha256(self) -> str:
        return str(self.fingerprint["data"])

    def record(self) -> dict[str, Any]:
        """What the export report keeps about it (no weights)."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "kind": self.kind,
            "epoch": self.epoch,
            "backbone": self.backbone,
            "pipeline": self.pipeline,
            "recipe": self.fingerprint["recipe"],
            "seed": self.seed,
            "data_sha256": self.data_sha256,
            "training_precision": self.options.get("precision"),
        }


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).split(". ")[0].rstrip(".")[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _file_sha256(path: Path, noun: str = "checkpoint") -> str:
    digest = hashlib.sha256()
    with fileio.open_regular(path, UsageError, f"{noun} {path}", noun=noun) as fh:
        while block := fh.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: Path) -> Checkpoint:
    """A finetune checkpoint with weights (best.pt or last.pt), read with weights_only and
    checked: format, kind, fingerprint, weights. UsageError naming what is wrong."""
    import torch

    from emobench.scenarios.finetune.checkpoint import FORMAT

    label = f"checkpoint {path}"
    _check_checkpoint_file(path)
    try:
        with fileio.open_regular(path, UsageError, label, noun="checkpoint") as fh:
            obj = torch.load(fh, map_location="cpu", weights_only=True)
    except UsageError:
        raise
    except Exception as exc:  # truncated, not a torch file, unpickling refused, ...
        raise UsageError(f"{label}: not an emobench checkpoint ({_one_line(exc)})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("fingerprint"), dict):
        raise UsageError(
            f"{label}: not an emobench checkpoint (it carries no fingerprint: not written by "
            "`emobench finetune`, or by an older version)"
        )
    if obj.get("format") != FORMAT:
        raise UsageError(
            f"{label}: a checkpoint of format {obj.get('format')!r}; this emobench reads "
            f"format {FORMAT}"
        )
    kind = obj.get("kind")
    if kind == "state":
        raise UsageError(
            f"{label}: holds the training state, not the weights; give the -best.pt beside it"
        )
    if kind not in WEIGHT_KINDS:
        raise UsageError(f"{label}: a checkpoint of kind {kind!r}, expected best or last")
    fingerprint = obj["fingerprint"]
    missing = [f for f in FINGERPRINT_FIELDS if f not in fingerprint]
    if missing:
        raise UsageError(f"{label}: its fingerprint has no {missing[0]!r}")
    if fingerprint["pipeline"] not in PIPELINE_NAMES:
        raise UsageError(f"{label}: unknown pipeline {fingerprint['pipeline']!r}")
    seed = fingerprint["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"{label}: its fingerprint's seed {seed!r} is not a seed")
    weights, epoch = obj.get("weights"), obj.get("epoch")
    if not isinstance(weights, dict) or not weights:
        raise UsageError(f"{label}: holds no weights")
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise UsageError(f"{label}: has no epoch number")
    options = obj.get("options")
    return Checkpoint(
        path,
        _file_sha256(path),
        str(kind),
        epoch,
        dict(fingerprint),
        dict(options) if isinstance(options, dict) else {},
        weights,
    )


SeedProgress = Callable[[int, int], None]  # (seeds tried, seeds to try)


def load_data(
    config: ExportConfig, checkpoint: Checkpoint, on_try: SeedProgress | None = None
) -> tuple[LabeledData, int]:
    """--data split as the fine-tune split it, refused unless it hashes as the checkpoint's
    data did. The data and the split seed used.

    Without --seed, a stratified split is tried with the checkpoint's seed, then with each
    seed below it (the i-th checkpoint of a `--seeds` run carries its first seed + i, but
    finetune split once, with that first seed); the first whose split hashes as the
    checkpoint's data did is used. `on_try` hears of each seed tried below the first."""
    from emobench.data.labeled import load_labeled

    seed = checkpoint.seed if config.seed is None else config.seed
    data = load_labeled(config.data, seed, config.val_fraction, config.test_fraction)
    mine, theirs = data.content_sha256(), checkpoint.data_sha256
    if mine == theirs:
        return data, seed
    lowest = max(0, seed - (MAX_SEEDS - 1))  # a run's seeds are at most MAX_SEEDS apart
    if config.seed is None and data.split_method != "given" and seed > lowest:
        found = _first_seed_of_the_run(config, data, theirs, lowest, on_try)
        if found is not None:
            return found
    if data.split_method == "given":
        how = ""
    elif config.seed is None:
        tried = (
            f"the checkpoint's seed {seed} does not give it"
            if seed == lowest
            else f"no seed from the checkpoint's {seed} down to {lowest} gives it"
        )
        how = (
            f", split with the first seed of finetune's --seed/--seeds ({tried}; pass --seed N) "
            "and its --val-fraction and --test-fraction"
        )
    else:
        how = (
            f", split with the first seed of finetune's --seed/--seeds (here --seed {seed}; "
            "pass --seed N) and its --val-fraction and --test-fraction"
        )
    raise UsageError(
        f"--data {config.data}: is not the data checkpoint {checkpoint.path} was "
        f"fine-tuned on (sha256 {mine[:12]}, the checkpoint's {str(theirs)[:12]}); give the "
        f"same data{how}, so the test split is the one it never trained on"
    )


def _first_seed_of_the_run(
    config: ExportConfig,
    data: LabeledData,
    sha256: str,
    lowest: int,
    on_try: SeedProgress | None,
) -> tuple[LabeledData, int] | None:
    """--data split with the highest seed below data's own, down to `lowest`, that hashes to
    `sha256`, and that seed; None when none does. The images are put back in their file
    order once (from data's own split and the labels in file order), so each seed costs a
    split and a hash, not a second read of --data."""
    # the splitter load_labeled uses, so the data is split exactly as finetune split it
    from emobench.data.labeled import _stratified, stratified_indices

    first = data.split_seed
    labels = _labels_in_file_order(data)
    if first is None or labels is None:
        return None
    fractions = (config.val_fraction, config.test_fraction)
    splits = (data.train, data.val, data.test)
    parts = stratified_indices(labels, first, *fractions)
    if any(not np.array_equal(labels[i], s.labels) for i, s in zip(parts, splits, strict=True)):
        return None  # the file changed since it was read: no order to rebuild
    images = np.empty((len(labels), *data.train.images.shape[1:]), dtype=data.train.images.dtype)
    for index, split in zip(parts, splits, strict=True):
        images[index] = split.images
    names = list(data.class_names)
    candidates = range(first - 1, lowest - 1, -1)
    for tried, candidate in enumerate(candidates):
        if on_try is not None:
            on_try(tried, len(candidates))
        resplit = _stratified(data.path, data.format, names, images, labels, candidate, *fractions)
        if resplit.content_sha256() == sha256:
            return resplit, candidate
    return None


def _labels_in_file_order(data: LabeledData) -> np.ndarray | None:
    """The labels of a stratified --data in the order load_labeled read them (what its split
    indexes): a folder's are class by class; a CSV's are its emotion column, read again
    without the pixels. None when they cannot be read or do not add up to data's splits."""
    splits = (data.train, data.val, data.test)
    total = sum(len(s.labels) for s in splits)
    if data.format == "image_folder":
        all_labels = np.concatenate([s.labels for s in splits])
        counts = np.bincount(all_labels, minlength=len(data.class_names))
        return np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    if data.format != "fer2013_csv":
        return None
    path = Path(data.path)
    labels: list[int] = []
    try:
        with (
            fileio.open_regular(path, UsageError, f"--data {path}") as raw,
            io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh,
        ):
            for row in csv.DictReader(fh):
                if len(labels) == total:
                    return None
                labels.append(int(row["emotion"]))
    except (EmobenchError, OSError, ValueError, KeyError, TypeError, csv.Error):
        return None
    return np.asarray(labels, dtype=np.int64) if len(labels) == total else None


def build_model(checkpoint: Checkpoint, num_classes: int, build: BuildFn | None) -> EmotionNet:
    """The checkpoint's model (built as finetune built it, random init) with its weights."""
    if build is None:
        from emobench import models  # looked up now, so a test can patch models.build_model

        build = models.build_model
    model = build(
        checkpoint.backbone,
        checkpoint.pipeline,
        num_classes=num_classes,
        pretrained=False,  # every tensor comes from the checkpoint
        freeze_backbone=False,
    )
    label = f"checkpoint {checkpoint.path}: does not fit the {checkpoint.backbone} "
    label += f"{checkpoint.pipeline} model"
    try:
        keys = model.load_state_dict(checkpoint.weights, strict=False)
    except Exception as exc:  # a tensor of another shape
        raise UsageError(f"{label} ({_one_line(exc)})") from None
    if keys.missing_keys or keys.unexpected_keys:
        wrong = [
            f"{len(names)} {what}, e.g. {names[0]!r}"
            for names, what in ((keys.missing_keys, "missing"), (keys.unexpected_keys, "unknown"))
            if names
        ]
        raise UsageError(f"{label} (its tensors: {'; '.join(wrong)})")
    return model.eval()


# -- exporting, stamping, scoring ---------------------------------------------------------------


def input_description(input_size: int) -> str:
    from emobench.runtimes.torch import IMAGENET_MEAN, IMAGENET_STD, RESIZE_MODE

    resize = (
        f", resized to {input_size}x{input_size} ({RESIZE_MODE}, align_corners=False)"
        if input_size != 48
        else ""
    )
    return (
        f"float32 (N, 3, {input_size}, {input_size}): the 48x48 grayscale image / 255{resize}, "
        f"repeated to 3 channels, normalised with mean {IMAGENET_MEAN} and std {IMAGENET_STD}"
    )


def metadata(
    checkpoint: Checkpoint, data: LabeledData, precision: str, size: int
) -> dict[str, str]:
    """The metadata_props of a written file: the mark `onnx_is_ours` looks for, and what a
    deployment needs to feed it and read its output."""
    return {
        ONNX_MARK: f"emobench {__version__} export",
        "emobench.backbone": checkpoint.backbone,
        "emobench.pipeline": checkpoint.pipeline,
        "emobench.precision": precision,
        "emobench.classes": json.dumps(list(data.class_names)),
        "emobench.input": input_description(size),
        "emobench.checkpoint_sha256": checkpoint.sha256,
        "emobench.data_sha256": checkpoint.data_sha256,
    }


def stamp(path: Path, props: dict[str, str]) -> None:
    """Add `props` to the ONNX file's metadata_props (appended as serialised entries: see
    results.export.metadata_bytes)."""
    with path.open("ab") as fh:
        fh.write(metadata_bytes(props))


def _single_file(path: Path) -> None:
    """Refuse an export whose weights stayed in a separate file: only one file goes to --out."""
    beside = [p.name for p in path.parent.glob(f"{path.name}?*")]
    if beside:
        from emobench.runtimes.onnx import ExportError

        raise ExportError(
            f"the model is too large for one ONNX file (its weights went to {beside[0]}); "
            "export writes a single file"
        )


def calibration_images(data: LabeledData, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Up to CALIBRATION_IMAGES train-split images drawn with `seed`, and where they came
    from (never the test split that is then scored)."""
    from emobench.runtimes.onnx import CALIBRATION_IMAGES

    train = data.train
    count = min(CALIBRATION_IMAGES, len(train.labels))
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(train.labels), size=count, replace=False))
    source = (
        f"{count} of the {len(train.labels)} train-split images ({train.source}) of --data, "
        f"drawn with seed {seed}"
    )
    return train.images[index], {"images": count, "source": source}


def predict(
    pipe: Pipeline,
    forward: Callable[[Tensor], Tensor],
    images: np.ndarray,
    on_batch: Callable[[int, int], None],
) -> np.ndarray:
    """Predicted classes for uint8 images, SCORE_BATCH at a time (finetune's predict, in
    smaller batches: a runtime's memory arena keeps its largest batch); `on_batch(images done,
    images)` after each batch."""
    from emobench.scenarios.finetune.scoring import predict as batched

    return batched(pipe, forward, images, SCORE_BATCH, on_batch)


def _score(
    label: str,
    runtime: str,
    precision: str,
    pred: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    torch_pred: np.ndarray | None,
) -> VariantScore:
    from emobench.scenarios.finetune.scoring import score

    accuracy, f1, _ = score(labels, pred, num_classes)
    agreement = None if torch_pred is None else float((pred == torch_pred).mean())
    return VariantScore(
        label=label,
        runtime=runtime,
        precision=precision,
        images=len(labels),
        correct=int((pred == labels).sum()),
        accuracy=accuracy,
        macro_f1=f1,
        agreement_with_torch=agreement,
        predictions=pred.tolist(),
    )


def int8_check(
    torch_fp32: VariantScore, ort_fp32: VariantScore, int8: VariantScore, labels: np.ndarray
) -> Int8Check:
    """The int8 file on the same images: the MLPerf rule against torch fp32 (MLPerf's reference
    is the framework's fp32 model), McNemar's exact test against onnxruntime fp32 (the same
    runtime, so the test isolates quantization)."""
    from emobench.stats.classification import mcnemar_exact

    fp32_right = np.asarray(ort_fp32.predictions) == labels
    int8_right = np.asarray(int8.predictions) == labels
    only_fp32 = int(np.sum(fp32_right & ~int8_right))
    only_int8 = int(np.sum(int8_right & ~fp32_right))
    needed = mlperf_needed(torch_fp32.correct)
    return Int8Check(
        reference=torch_fp32.label,
        images=len(labels),
        fp32_correct=torch_fp32.correct,
        int8_correct=int8.correct,
        needed_correct=needed,
        fp32_accuracy=torch_fp32.accuracy,
        int8_accuracy=int8.accuracy,
        accuracy_ratio=int8.correct / torch_fp32.correct if torch_fp32.correct else None,
        threshold=MLPERF_FRACTION,
        acceptable=None if needed is None else int8.correct >= needed,
        mcnemar_reference=ort_fp32.label,
        only_fp32_right=only_fp32,
        only_int8_right=only_int8,
        mcnemar_p=mcnemar_exact(only_fp32, only_int8),
    )


class _Steps:
    """The ProgressFn calls of one export: each step named as it starts, then all done."""

    def __init__(self, progress: ProgressFn, names: list[str]) -> None:
        self.progress, self.names, self.done = progress, names, 0

    def start(self, name: str) -> None:
        self.progress(name, self.done, len(self.names))
        self.done += 1

    def part(self, what: str) -> Callable[[int, int], None]:
        """A (done, total) callback within the current step: its name and `what` counted."""
        name = self.names[self.done - 1]
        return lambda done, total: self.progress(f"{name} ({what})", done, total)

    def finish(self) -> None:
        self.progress("done", len(self.names), len(self.names))


def _step_names(config: ExportConfig) -> list[str]:
    int8 = config.quantize == INT8
    return [
        "reading the checkpoint and --data",
        "exporting to ONNX",
        *(["quantizing to int8 (calibrating on train images)"] if int8 else []),
        "scoring torch fp32 on the test split",
        "scoring onnxruntime fp32 on the test split",
        *(["scoring onnxruntime int8 on the test split"] if int8 else []),
        f"writing {config.out}",
    ]


def run_export(
    config: ExportConfig, progress: ProgressFn = no_progress, build: BuildFn | None = None
) -> ExportReport:
    """Read, check, export, score and write (see the module docstring): the export report,
    also written to `<out>.json` beside the file."""

    import torch

    from emobench.runtimes.onnx import check_available

    started = time.perf_counter()
    check_inputs(config)
    check_available(torch.device("cpu"))  # onnx, onnxruntime: one error line, nothing read yet
    # a checkpoint that is not ours is refused before any progress line: one error line
    checkpoint = read_checkpoint(config.checkpoint)
    steps = _Steps(progress, _step_names(config))
    steps.start("reading the checkpoint and --data")
    data, split_seed = load_data(config, checkpoint, steps.part("seeds below it tried"))
    model = build_model(checkpoint, len(data.class_names), build)
    with tempfile.TemporaryDirectory(prefix="emobench-export-") as tmp:
        report, final = _export_and_score(
            config, checkpoint, data, split_seed, model, Path(tmp), steps, started
        )
        steps.start(f"writing {config.out}")
        report = write_outputs(config, final, report)
    steps.finish()
    return report


def _export_and_score(
    config: ExportConfig,
    checkpoint: Checkpoint,
    data: LabeledData,
    split_seed: int,
    model: EmotionNet,
    folder: Path,
    steps: _Steps,
    started: float,
) -> tuple[ExportReport, Path]:
    """The files in `folder`, scored: the report and the file that goes to --out."""
    import torch

    from emobench.runtimes import onnx as ort_rt
    from emobench.runtimes.torch import Pipeline

    pipe = Pipeline(checkpoint.pipeline, model, torch.device("cpu"))
    num_classes = len(data.class_names)
    steps.start("exporting to ONNX")
    paths = {FP32: folder / f"{checkpoint.pipeline}.onnx"}
    example = pipe.example_input(ort_rt.EXPORT_BATCH, random=True)
    exporter, opset = ort_rt.export_model(model, example, paths[FP32])
    _single_file(paths[FP32])
    quantization = None
    if config.quantize == INT8:
        steps.start("quantizing to int8 (calibrating on train images)")
        images, where = calibration_images(data, split_seed)
        paths[INT8] = folder / f"{checkpoint.pipeline}.int8.onnx"
        with torch.inference_mode():
            calibration = pipe.preprocess_batched(torch.from_numpy(images))
        quantization = ort_rt.quantize_int8(
            paths[FP32], paths[INT8], calibration, where["source"], representative=True
        )
    # marked only now: the quantizer copies the fp32 file's metadata into the int8 one
    for precision, path in paths.items():
        stamp(path, metadata(checkpoint, data, precision, pipe.input_size))

    settings = ort_rt.OrtSettings(intra_op_threads=torch.get_num_threads())
    calls = {
        precision: ort_rt.OrtCall(ort_rt.open_session(path, settings), num_classes)
        for precision, path in paths.items()
    }
    test = data.test
    with torch.inference_mode():
        probe = pipe.preprocess_batched(torch.from_numpy(test.images[: ort_rt.PARITY_BATCH]))
        reference = model(probe)
        checks = {
            FP32: ort_rt.parity(reference, calls[FP32](probe)),
            **(
                {INT8: ort_rt.parity(reference, calls[INT8](probe), held=False)}
                if INT8 in calls
                else {}
            ),
        }
    if not checks[FP32].passed:
        raise ort_rt.ExportError(
            f"the exported file disagrees with torch: max |logit difference| "
            f"{checks[FP32].max_abs_diff:.3g} (tolerance {ort_rt.PARITY_TOLERANCE:g} x logit "
            f"scale {checks[FP32].logit_scale:.3g}), top-1 agreement "
            f"{checks[FP32].top1_agreement:.0%}"
        )

    steps.start("scoring torch fp32 on the test split")
    labels = test.labels
    torch_pred = predict(pipe, model, test.images, steps.part("images"))
    scores = [_score(TORCH_LABEL, TORCH_RUNTIME, FP32, torch_pred, labels, num_classes, None)]
    for precision, label in ((FP32, ORT_LABEL), (INT8, ORT_INT8_LABEL)):
        if precision not in calls:
            continue
        steps.start(f"scoring {label} on the test split")
        pred = predict(pipe, calls[precision], test.images, steps.part("images"))
        scores.append(_score(label, ORT_RUNTIME, precision, pred, labels, num_classes, torch_pred))
    int8 = int8_check(scores[0], scores[1], scores[2], labels) if len(scores) == 3 else None

    out_path = paths[config.precision]
    exported = [
        ExportedFile(
            precision=precision,
            exporter=exporter,
            opset=opset,
            file_bytes=path.stat().st_size,
            parity=checks[precision],
            quantization=quantization if precision == INT8 else None,
        )
        for precision, path in paths.items()
    ]
    versions = {
        "emobench": __version__,
        "torch": torch.__version__,
        "onnx": importlib.metadata.version("onnx"),
        "onnxruntime": str(settings.record(ort_rt.import_ort())["onnxruntime"]),
    }
    report = ExportReport(
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        wall_time_s=time.perf_counter() - started,
        out=str(config.out),
        out_precision=config.precision,
        out_file_bytes=out_path.stat().st_size,
        out_sha256=_file_sha256(out_path, "exported file"),
        checkpoint=checkpoint.record(),
        data=_data_record(config, checkpoint, data, quantization),
        settings=settings.record(ort_rt.import_ort(), calls[FP32].session),
        inside_graph=ort_rt.INSIDE_GRAPH,
        metadata=metadata(checkpoint, data, config.precision, pipe.input_size),
        versions=versions,
        test_labels=labels.tolist(),
        files=exported,
        scores=scores,
        int8=int8,
        notes=_notes(checkpoint, data, split_seed, quantization),
    )
    return report, out_path


def _data_record(
    config: ExportConfig,
    checkpoint: Checkpoint,
    data: LabeledData,
    quantization: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "path": data.path,
        "format": data.format,
        "sha256": checkpoint.data_sha256,  # load_data checked that they are equal
        "class_names": list(data.class_names),
        "split_method": data.split_method,
        "split_seed": data.split_seed if data.split_method != "given" else None,  # used
        "requested_split_seed": config.seed,  # --seed; None: the checkpoint's, then below it
        "score_split": data.test.source,
        "test_images": len(data.test.labels),
        "calibration": None
        if quantization is None
        else {
            "images": quantization["calibration_images"],
            "source": quantization["calibration_source"],
            "split": data.train.source,
        },
    }


def _notes(
    checkpoint: Checkpoint,
    data: LabeledData,
    split_seed: int,
    quantization: dict[str, Any] | None,
) -> list[str]:
    notes = [
        f"scored on the test split ({data.test.source}, {len(data.test.labels)} images): the "
        "images the fine-tune held out; the scores are of these images only"
    ]
    if data.split_method != "given" and split_seed != checkpoint.seed:
        notes.append(
            f"--data split with seed {split_seed}, the first seed of the fine-tune's "
            f"--seed/--seeds (its split hashes as the checkpoint's data did); the checkpoint's "
            f"own seed {checkpoint.seed} is the one it trained with"
        )
    if checkpoint.kind != "best":
        notes.append(
            f"the checkpoint holds the {checkpoint.kind} epoch's weights (epoch "
            f"{checkpoint.epoch}), not the best-validation ones finetune scored"
        )
    trained = checkpoint.options.get("precision")
    if trained not in (None, FP32):
        notes.append(f"trained in {trained}; exported and scored in fp32")
    if quantization is not None:
        notes.append(
            "int8 was calibrated on --data's own train images: representative only as far as "
            "--data is of the faces the file will see (synthetic images say nothing about real "
            "faces)"
        )
    return notes


def write_outputs(config: ExportConfig, final: Path, report: ExportReport) -> ExportReport:
    """The deployable file to --out and the report to `<out>.json`, each through a temporary
    file beside it; the report completed with the written file's size and sha256.

    Renamed in this order: an old `<out>.json` moved aside, the new file over --out, the new
    report beside it. A failure before the file's rename puts the old report back (the old
    pair stays as it was); after it, the old report is deleted: the new file may then stand
    without a report, never with a report of another file."""
    aside: Path | None = None
    try:
        with fileio.atomic_path(config.report) as json_tmp:
            try:
                with fileio.atomic_path(config.out) as onnx_tmp:
                    shutil.copyfile(final, onnx_tmp)
                    report = dataclasses.replace(
                        report,
                        out_file_bytes=onnx_tmp.stat().st_size,
                        out_sha256=_file_sha256(onnx_tmp, "exported file"),
                    )
                    json_tmp.write_text(to_json(report), encoding="utf-8")
                    aside = _move_aside(config.report)
            except BaseException:
                if aside is not None:  # the new file never replaced the old: keep the old pair
                    restore, aside = aside, None  # never deleted below, even if this fails
                    os.replace(restore, os.path.realpath(config.report))
                raise
    except OSError as exc:
        raise MeasurementError(
            f"--out {config.out}: cannot write ({exc.strerror or exc})"
        ) from None
    finally:
        if aside is not None:
            aside.unlink(missing_ok=True)
    return report


def _move_aside(path: Path) -> Path | None:
    """Rename the file at `path` (its real path, as atomic_path writes it) to a hidden name
    beside it; None when there is none."""
    target = Path(os.path.realpath(path))
    if not target.exists():
        return None
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old")
    os.close(fd)
    os.replace(target, name)
    return Path(name)
