"""Training one pipeline with one seed: the train step, one epoch with its val score, and the
peak memory of a step. Checkpoints and the final test score live in checkpoint.py and
scoring.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from emobench.data.labeled import LabeledData
from emobench.measure.memory import PeakMemory, peak_memory
from emobench.models import EmotionNet
from emobench.results.finetune import EpochMetrics
from emobench.results.progress import FinetuneProgress
from emobench.runtimes.torch import Pipeline
from emobench.scenarios.finetune.distributed import SINGLE, World, all_gather_floats, all_sum
from emobench.scenarios.finetune.loaders import AugmentedImages, make_loader
from emobench.scenarios.finetune.recipe import FinetuneConfig, make_optimizer, make_scheduler
from emobench.scenarios.finetune.scoring import predict, score, sync

PROGRESS_REPORTS_PER_EPOCH = 10

BuildFn = Callable[..., EmotionNet]


@dataclass
class _Tally:
    """What one pass over the training batches adds up: seconds per phase, losses, images."""

    data_s: float = 0.0
    preprocess_s: float = 0.0
    step_s: float = 0.0
    images: int = 0
    losses: list[Tensor] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def mean_loss(self, world: World) -> float:
        """The mean over the steps of each step's loss on the whole global batch: every
        process's loss x images and images summed (all-reduced), then divided."""
        losses = torch.stack(self.losses).double()
        counts = torch.tensor(self.counts, dtype=torch.float64, device=losses.device)
        summed = all_sum(torch.stack([losses * counts, counts]), world)
        return float((summed[0] / summed[1]).mean())


class Trainer:
    """One pipeline, one seed: the model, its optimizer and schedule, and the epochs so far.

    Kept whole (longer than a screen) because its methods share this state and each is short."""

    def __init__(
        self,
        config: FinetuneConfig,
        data: LabeledData,
        pipeline_name: str,
        seed: int,
        device: torch.device,
        build: BuildFn,
        progress: FinetuneProgress,
        world: World = SINGLE,
    ) -> None:
        self.config, self.data, self.seed, self.device = config, data, seed, device
        self.world = world
        self.progress = progress
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
        # training steps go through DDP (its backward all-reduces the gradients); validation
        # and test (rank 0 alone) use the bare model, which needs no other process
        self.train_forward: Callable[[Tensor], Tensor] = self.forward
        if world.distributed:
            ids = [device.index] if device.type == "cuda" else None
            ddp = DistributedDataParallel(model, device_ids=ids)
            self.train_forward = (
                torch.compile(ddp, mode=config.compile) if config.compile != "none" else ddp
            )
        self.rank_images_per_s: list[list[float]] = []  # per epoch trained here, per rank
        self.optimizer = make_optimizer(model, config)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.scaler = torch.amp.GradScaler(device.type) if config.precision == "fp16" else None
        self.train_set = AugmentedImages(data.train, seed, augment=True)
        self.history: list[EpochMetrics] = []
        self.best_epoch, self.best_val = 0, -1.0

    @property
    def model(self) -> EmotionNet:
        return self.pipe.model

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """Forward, loss, backward and one optimizer step; the loss, detached."""
        with self.pipe.autocast():
            loss = F.cross_entropy(
                self.train_forward(x), y, label_smoothing=self.config.label_smoothing
            )
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def record(self, metrics: EpochMetrics) -> None:
        """Add a finished epoch to the history; the best val accuracy so far picks best.pt."""
        self.history.append(metrics)
        if metrics.val_accuracy > self.best_val:
            self.best_epoch, self.best_val = metrics.epoch, metrics.val_accuracy

    def train_epoch(self, epoch: int) -> EpochMetrics:
        """Every training batch once, then the schedule's step, then the score on val."""
        cfg, device = self.config, self.device
        self.train_set.epoch = epoch
        loader = make_loader(
            self.train_set, cfg, device, True, self.seed, epoch, self.world.size, self.world.rank
        )
        batches = len(loader)
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.model.train()
        started = time.perf_counter()
        tally = self._train_batches(loader, epoch)
        train_s = time.perf_counter() - started
        self.scheduler.step()
        mean_loss = tally.mean_loss(self.world)
        rates = all_gather_floats(
            tally.images / train_s if train_s > 0 else float("nan"), self.world, device
        )
        self.rank_images_per_s.append(rates)
        t4 = time.perf_counter()
        acc, f1 = float("nan"), float("nan")  # validation is rank 0's alone
        if self.world.main:
            pred = predict(self.pipe, self.forward, self.data.val.images)
            acc, f1, _ = score(self.data.val.labels, pred, len(self.data.class_names))
        eval_s = time.perf_counter() - t4
        self.progress(
            self.pipe.name, self.seed, epoch, cfg.epochs, batches, batches, mean_loss, acc
        )
        return EpochMetrics(
            epoch=epoch,
            train_loss=mean_loss,
            val_accuracy=acc,
            val_macro_f1=f1,
            lr=lr,
            data_s=tally.data_s,
            preprocess_s=tally.preprocess_s,
            step_s=tally.step_s,
            train_s=train_s,
            eval_s=eval_s,
            # every process's images: the throughput of the whole world
            images_per_s=sum(rates) if self.world.distributed else rates[0],
        )

    def _train_batches(self, loader: DataLoader[tuple[Tensor, int]], epoch: int) -> _Tally:
        """The train steps of one epoch, timed by phase, reporting progress ten times."""
        device, cfg, tally = self.device, self.config, _Tally()
        batches = len(loader)
        every = max(1, batches // PROGRESS_REPORTS_PER_EPOCH)
        it: Iterator[tuple[Tensor, Tensor]] = iter(loader)
        for batch in range(batches):
            t0 = time.perf_counter()
            x_u8, y = next(it)
            t1 = time.perf_counter()
            x = self.pipe.preprocess_batched(x_u8)
            y = y.to(device, non_blocking=True)
            sync(device)
            t2 = time.perf_counter()
            tally.losses.append(self.step(x, y))
            sync(device)
            t3 = time.perf_counter()
            tally.data_s += t1 - t0
            tally.preprocess_s += t2 - t1
            tally.step_s += t3 - t2
            tally.images += len(y)
            tally.counts.append(len(y))
            if (batch + 1) % every == 0 or batch + 1 == batches:
                loss_now = float(tally.losses[-1])
                self.progress(
                    self.pipe.name, self.seed, epoch, cfg.epochs, batch + 1, batches, loss_now, None
                )
        return tally

    def train_peak(self) -> PeakMemory | None:
        """One training step at the training batch size, measured like `compare` measures."""
        rng = torch.get_rng_state()
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
        torch.set_rng_state(rng)
        return peak
