"""Fine-tune both pipelines with one recipe on labelled data; score them on the same held-out
images and compare the two paired (McNemar's exact test, a bootstrap interval).

The recipe is identical for both pipelines: the same 48x48 augmentation before any upscaling,
the same optimizer, schedule, loss, batch size, seeds and speed options.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from emobench.data.labeled import LabeledData, Split
from emobench.device import emulated_precision
from emobench.errors import UsageError
from emobench.measure.env import fingerprint
from emobench.measure.memory import PeakMemory, peak_memory
from emobench.models import PIPELINES, EmotionNet, build_model
from emobench.names import COMPILE_MODES, DIRECT, FINETUNE_DIR, PRECISIONS, UPSCALE
from emobench.results import Report
from emobench.results.finetune import (
    EpochMetrics,
    FinetuneRun,
    FinetuneSummary,
    PairedComparison,
    TestScore,
    spread_of,
)
from emobench.results.progress import FinetuneProgress
from emobench.runtimes.torch import Pipeline
from emobench.stats.classification import (
    confusion_matrix,
    macro_f1,
    mcnemar_exact,
    mean_interval,
    per_class,
)

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step")
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}
MOMENTUM = 0.9
STEP_GAMMA = 0.1  # the step schedule divides the rate by 10 ...
STEP_EVERY = 3  # ... at a third and two thirds of the epochs
CROP_PADDING = 4
LATENCY_SAMPLES = 20
LATENCY_WARMUP = 3
CHECKPOINT_DIR = FINETUNE_DIR

BuildFn = Callable[..., EmotionNet]


@dataclass(frozen=True)
class FinetuneConfig:
    backbone: str = "resnet18"
    data: str = ""
    device: str = "auto"
    pipelines: tuple[str, ...] = (UPSCALE, DIRECT)
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    weight_decay: float | None = None
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    pretrained: bool = True  # ImageNet weights when cached; --no-pretrained for random init
    freeze_backbone: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    compile: str = "none"
    workers: int = 2
    seed: int = 0
    seeds: int = 1
    target_acc: float | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    checkpoint_dir: str = str(CHECKPOINT_DIR)
    resume: bool = False
    measure_memory: bool = True

    def __post_init__(self) -> None:
        for p in self.pipelines:
            if p not in PIPELINES:
                raise UsageError(f"--pipeline {p}: choose one of {', '.join(PIPELINES)}")
        checks = [
            (self.optimizer in OPTIMIZERS, f"--optimizer {self.optimizer}: choose sgd or adamw"),
            (self.schedule in SCHEDULES, f"--schedule {self.schedule}: choose cosine or step"),
            (self.precision in PRECISIONS, f"--precision {self.precision}: choose fp32/fp16/bf16"),
            (self.compile in COMPILE_MODES, f"--compile {self.compile}: unknown mode"),
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.seeds >= 1, f"--seeds must be >= 1, got {self.seeds}"),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
            (
                0.0 <= self.label_smoothing < 1.0,
                f"--label-smoothing must be in [0, 1), got {self.label_smoothing}",
            ),
            (self.lr is None or self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (
                self.target_acc is None or 0 < self.target_acc <= 1,
                f"--target-acc must be in (0, 1], got {self.target_acc}",
            ),
            (
                self.val_fraction > 0
                and self.test_fraction > 0
                and self.val_fraction + self.test_fraction < 1,
                "--val-fraction and --test-fraction must be > 0 and sum to less than 1",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def decay(self) -> float:
        return (
            self.weight_decay
            if self.weight_decay is not None
            else DEFAULT_WEIGHT_DECAY[self.optimizer]
        )

    def recipe(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one."""
        keep = [
            "backbone",
            "epochs",
            "batch_size",
            "optimizer",
            "lr",
            "weight_decay",
            "schedule",
            "label_smoothing",
            "pretrained",
            "freeze_backbone",
            "precision",
            "channels_last",
            "compile",
        ]
        return {k: getattr(self, k) for k in keep} | {
            "learning_rate": self.learning_rate,
            "decay": self.decay,
        }


# -- data ---------------------------------------------------------------------------------------


class AugmentedImages(Dataset[tuple[Tensor, int]]):
    """uint8 48x48 images with per-sample augmentation at 48x48: a random crop from the image
    padded by CROP_PADDING (reflected, so brightness statistics survive) and a horizontal flip.

    The randomness depends only on (seed, epoch, index), so a redone epoch sees the same images
    whatever the workers."""

    def __init__(self, split: Split, seed: int, augment: bool) -> None:
        self.images = split.images
        self.labels = split.labels
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        img = self.images[index]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            dy, dx = rng.integers(0, 2 * CROP_PADDING + 1, size=2)
            padded = np.pad(img, CROP_PADDING, mode="reflect")
            img = padded[dy : dy + img.shape[0], dx : dx + img.shape[1]]
            if rng.random() < 0.5:
                img = img[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(img)), int(self.labels[index])


def _loader(
    dataset: AugmentedImages, config: FinetuneConfig, device: torch.device, shuffle: bool, seed: int
) -> DataLoader[tuple[Tensor, int]]:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=shuffle,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        generator=generator,
        drop_last=False,
    )


# -- metrics ------------------------------------------------------------------------------------


def paired_comparison(
    labels: np.ndarray, upscale_pred: np.ndarray, direct_pred: np.ndarray, seed: int
) -> PairedComparison:
    """direct48 - upscale224 on the same images: McNemar and a percentile bootstrap interval."""
    up_right = upscale_pred == labels
    dn_right = direct_pred == labels
    diff = dn_right.astype(np.float64) - up_right.astype(np.float64)
    point = float(diff.mean()) * 100
    low, high = (v * 100 for v in mean_interval(diff, seed))
    only_up = int(np.sum(up_right & ~dn_right))
    only_dn = int(np.sum(dn_right & ~up_right))
    return PairedComparison(
        seed=seed,
        images=len(labels),
        accuracy_diff_points=point,
        ci_low_points=low,
        ci_high_points=high,
        only_upscale_right=only_up,
        only_direct_right=only_dn,
        mcnemar_p=mcnemar_exact(only_up, only_dn),
    )


# -- checkpoints --------------------------------------------------------------------------------


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def checkpoint_paths(folder: Path, pipeline: str, seed: int) -> dict[str, Path]:
    stem = f"{pipeline}-seed{seed}"
    return {k: folder / f"{stem}-{k}.pt" for k in ("best", "last", "state")}


def recipe_hash(config: FinetuneConfig, data: LabeledData) -> str:
    text = json.dumps([config.recipe(), data.summary()], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- training -----------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _optimizer(model: EmotionNet, config: FinetuneConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.learning_rate, momentum=MOMENTUM, weight_decay=config.decay
        )
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.decay)


def _scheduler(
    optimizer: torch.optim.Optimizer, config: FinetuneConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    every = max(1, config.epochs // STEP_EVERY)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=STEP_GAMMA)


def predict(
    pipeline: Pipeline, forward: Callable[[Tensor], Tensor], images: np.ndarray
) -> np.ndarray:
    """Predicted classes for uint8 images, in eval mode, batch by batch."""
    pipeline.model.eval()
    out = []
    with torch.inference_mode(), pipeline.autocast():
        for start in range(0, len(images), 256):
            batch = torch.from_numpy(images[start : start + 256])
            out.append(forward(pipeline.preprocess_batched(batch)).argmax(1).cpu())
    return torch.cat(out).numpy()


def _score(
    labels: np.ndarray, pred: np.ndarray, num_classes: int
) -> tuple[float, float, np.ndarray]:
    cm = confusion_matrix(labels, pred, num_classes)
    return float((pred == labels).mean()), macro_f1(cm), cm


def _latency_b1_ms(
    pipeline: Pipeline, forward: Callable[[Tensor], Tensor], image: np.ndarray
) -> float:
    """Median batch-1 inference with preprocessing, from the host uint8 image to the logits."""
    batch = torch.from_numpy(image[None])
    samples = []
    pipeline.model.eval()
    with torch.inference_mode(), pipeline.autocast():
        for i in range(LATENCY_WARMUP + LATENCY_SAMPLES):
            _sync(pipeline.device)
            start = time.perf_counter()
            forward(pipeline.preprocess_batched(batch))
            _sync(pipeline.device)
            if i >= LATENCY_WARMUP:
                samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


class _Trainer:
    """One pipeline, one seed: train, checkpoint, resume, score."""

    def __init__(
        self,
        config: FinetuneConfig,
        data: LabeledData,
        pipeline_name: str,
        seed: int,
        device: torch.device,
        build: BuildFn,
        folder: Path,
        progress: FinetuneProgress,
    ) -> None:
        self.config, self.data, self.seed, self.device = config, data, seed, device
        self.progress = progress
        self.paths = checkpoint_paths(folder, pipeline_name, seed)
        self.fingerprint = recipe_hash(config, data)
        torch.manual_seed(seed)
        model = build(
            config.backbone,
            pipeline_name,
            num_classes=len(data.class_names),
            pretrained=config.pretrained,
            freeze_backbone=config.freeze_backbone,
        )
        self.pipe = Pipeline(pipeline_name, model, device, config.precision, config.channels_last)
        self.forward: Callable[[Tensor], Tensor] = model
        if config.compile != "none":
            self.forward = torch.compile(model, mode=config.compile)
        self.optimizer = _optimizer(model, config)
        self.scheduler = _scheduler(self.optimizer, config)
        self.scaler = torch.amp.GradScaler(device.type) if config.precision == "fp16" else None
        self.train_set = AugmentedImages(data.train, seed, augment=True)
        self.history: list[EpochMetrics] = []
        self.best_epoch, self.best_val = 0, -1.0
        self.resumed_from = 0

    @property
    def model(self) -> EmotionNet:
        return self.pipe.model

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        with self.pipe.autocast():
            loss = F.cross_entropy(self.forward(x), y, label_smoothing=self.config.label_smoothing)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def resume(self) -> None:
        state_path = self.paths["state"]
        if not state_path.exists():
            return
        state = torch.load(state_path, weights_only=True, map_location=self.device)
        if state["recipe"] != self.fingerprint:
            raise UsageError(
                f"--resume: {state_path} was written by a different recipe or data set; "
                "use the same options, or another --checkpoint-dir"
            )
        self.model.load_state_dict(torch.load(self.paths["last"], weights_only=True))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        self.history = [EpochMetrics(**e) for e in state["history"]]
        self.best_epoch, self.best_val = state["best_epoch"], state["best_val"]
        self.resumed_from = len(self.history)

    def _checkpoint(self) -> None:
        """last.pt (and best.pt), then state.pt: the state file is the commit point."""
        _save_atomic(self.model.state_dict(), self.paths["last"])
        if self.best_epoch == len(self.history):
            _save_atomic(self.model.state_dict(), self.paths["best"])
        state = {
            "recipe": self.fingerprint,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "rng": torch.get_rng_state(),
            "history": [dataclasses.asdict(e) for e in self.history],
            "best_epoch": self.best_epoch,
            "best_val": self.best_val,
        }
        _save_atomic(state, self.paths["state"])

    def train_epoch(self, epoch: int) -> EpochMetrics:
        cfg, device = self.config, self.device
        self.train_set.epoch = epoch
        loader = _loader(self.train_set, cfg, device, True, hash((self.seed, epoch)) & 0xFFFFFFFF)
        batches = len(loader)
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.model.train()
        data_s = pre_s = step_s = 0.0
        losses: list[Tensor] = []
        seen = 0
        every = max(1, batches // 10)
        started = time.perf_counter()
        it: Iterator[tuple[Tensor, Tensor]] = iter(loader)
        for batch in range(batches):
            t0 = time.perf_counter()
            x_u8, y = next(it)
            t1 = time.perf_counter()
            x = self.pipe.preprocess_batched(x_u8)
            y = y.to(device, non_blocking=True)
            _sync(device)
            t2 = time.perf_counter()
            losses.append(self.step(x, y))
            _sync(device)
            t3 = time.perf_counter()
            data_s, pre_s, step_s = data_s + t1 - t0, pre_s + t2 - t1, step_s + t3 - t2
            seen += len(y)
            if (batch + 1) % every == 0 or batch + 1 == batches:
                loss_now = float(losses[-1])
                self.progress(
                    self.pipe.name, self.seed, epoch, cfg.epochs, batch + 1, batches, loss_now, None
                )
        train_s = time.perf_counter() - started
        self.scheduler.step()
        t4 = time.perf_counter()
        pred = predict(self.pipe, self.forward, self.data.val.images)
        acc, f1, _ = _score(self.data.val.labels, pred, len(self.data.class_names))
        eval_s = time.perf_counter() - t4
        mean_loss = float(torch.stack(losses).float().mean())
        self.progress(
            self.pipe.name, self.seed, epoch, cfg.epochs, batches, batches, mean_loss, acc
        )
        return EpochMetrics(
            epoch=epoch,
            train_loss=mean_loss,
            val_accuracy=acc,
            val_macro_f1=f1,
            lr=lr,
            data_s=data_s,
            preprocess_s=pre_s,
            step_s=step_s,
            train_s=train_s,
            eval_s=eval_s,
            images_per_s=seen / train_s if train_s > 0 else float("nan"),
        )

    def train_peak(self) -> PeakMemory | None:
        """One training step at the training batch size, measured like `compare` measures."""
        n = min(self.config.batch_size, len(self.data.train.labels))
        x = self.pipe.preprocess_batched(torch.from_numpy(self.data.train.images[:n]))
        y = torch.from_numpy(self.data.train.labels[:n]).to(self.device)
        state = {k: v.clone() for k, v in self.model.state_dict().items()}
        opt_state = self.optimizer.state_dict()
        self.model.train()
        existing = [*self.model.parameters(), *self.model.buffers(), x, y]
        peak = peak_memory(lambda: self.step(x, y), self.device, existing)
        self.model.load_state_dict(state)  # the probe step must not change the run
        self.optimizer.load_state_dict(opt_state)
        return peak

    def run(self) -> FinetuneRun:
        if self.config.resume:
            self.resume()
        peak = None
        for epoch in range(len(self.history) + 1, self.config.epochs + 1):
            metrics = self.train_epoch(epoch)
            self.history.append(metrics)
            if metrics.val_accuracy > self.best_val:
                self.best_epoch, self.best_val = epoch, metrics.val_accuracy
            self._checkpoint()
        if self.config.measure_memory:
            rng = torch.get_rng_state()
            peak = self.train_peak()
            torch.set_rng_state(rng)
        return self.score(peak)

    def score(self, peak: PeakMemory | None) -> FinetuneRun:
        self.model.load_state_dict(torch.load(self.paths["best"], weights_only=True))
        test = self.data.test
        n_classes = len(self.data.class_names)
        pred = predict(self.pipe, self.forward, test.images)
        acc, f1, cm = _score(test.labels, pred, n_classes)
        precision, recall, _ = per_class(cm)
        elapsed, to_target = 0.0, None
        target = self.config.target_acc
        for e in self.history:
            elapsed += e.train_s
            if target is not None and to_target is None and e.val_accuracy >= target:
                to_target = (e.epoch, elapsed)
        model = self.model
        transfer = model.transfer
        return FinetuneRun(
            backbone=self.config.backbone,
            pipeline=self.pipe.name,
            seed=self.seed,
            input_size=self.pipe.input_size,
            params_total=sum(p.numel() for p in model.parameters()),
            params_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
            transfer={
                "source": transfer.source if transfer else "unknown",
                "copied": list(transfer.copied) if transfer else [],
                "derived": dict(transfer.derived) if transfer else {},
                "fresh": list(transfer.fresh) if transfer else [],
            },
            epochs=list(self.history),
            best_epoch=self.best_epoch,
            best_val_accuracy=self.best_val,
            target_accuracy=target,
            time_to_target_s=to_target[1] if to_target else None,
            epoch_to_target=to_target[0] if to_target else None,
            train_peak=peak,
            test=TestScore(
                split=test.source,
                checkpoint_epoch=self.best_epoch,
                images=len(test.labels),
                accuracy=acc,
                macro_f1=f1,
                precision=precision.tolist(),
                recall=recall.tolist(),
                confusion=cm.tolist(),
                latency_b1_ms=_latency_b1_ms(self.pipe, self.forward, test.images[0]),
                predictions=pred.tolist(),
            ),
            checkpoint_best=str(self.paths["best"]),
            checkpoint_last=str(self.paths["last"]),
            resumed_from_epoch=self.resumed_from,
        )


def _no_progress(*_: Any) -> None:
    return None


def run_finetune(
    config: FinetuneConfig,
    data: LabeledData,
    device: torch.device,
    build: BuildFn | None = None,
    progress: FinetuneProgress = _no_progress,
) -> Report:
    """Fine-tune every pipeline for every seed, score on the test split, compare paired."""
    started = time.perf_counter()
    build = build or build_model  # looked up now, so tests can patch the module's build_model
    folder = Path(config.checkpoint_dir)
    runs: list[FinetuneRun] = []
    seeds = [config.seed + i for i in range(config.seeds)]
    for seed in seeds:
        for pipeline in config.pipelines:
            trainer = _Trainer(config, data, pipeline, seed, device, build, folder, progress)
            runs.append(trainer.run())
    labels = data.test.labels
    paired = []
    for seed in seeds:
        by = {r.pipeline: r for r in runs if r.seed == seed}
        if UPSCALE in by and DIRECT in by:
            paired.append(
                paired_comparison(
                    labels,
                    np.asarray(by[UPSCALE].test.predictions),
                    np.asarray(by[DIRECT].test.predictions),
                    seed,
                )
            )
    summary = FinetuneSummary(
        data=data.summary(),
        test_labels=labels.tolist(),
        runs=runs,
        paired=paired,
        spread=spread_of(runs),
    )
    notes = []
    emulated = emulated_precision(config.precision, device)
    if emulated:
        notes.append(f"precision {config.precision} is EMULATED here ({emulated})")
    if any(r.resumed_from_epoch for r in runs):
        notes.append(
            "resumed: "
            + ", ".join(
                f"{r.pipeline} seed {r.seed} from epoch {r.resumed_from_epoch}"
                for r in runs
                if r.resumed_from_epoch
            )
        )
    return Report(
        kind="finetune",
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        wall_time_s=time.perf_counter() - started,
        config=json.loads(json.dumps(dataclasses.asdict(config)))
        | {
            "resolved_device": str(device),
            "learning_rate": config.learning_rate,
            "weight_decay_resolved": config.decay,
            "seeds_used": seeds,
            "augmentation": f"random crop 48 from 48 padded by {CROP_PADDING}, horizontal flip "
            "(at 48x48, before any upscaling)",
            "num_threads": torch.get_num_threads(),
        },
        environment=fingerprint(device),
        results=[],
        notes=notes,
        finetune=summary,
    )
