"""`finetune`: both pipelines fine-tuned with one recipe and scored on the same images."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from emobench import files as fileio
from emobench.cli.options import (
    ChannelsLastOpt,
    CheckpointDirOpt,
    CompileOpt,
    DeviceOpt,
    EpochsOpt,
    FreezeBackboneOpt,
    JsonOpt,
    LabeledDataOpt,
    LabelSmoothingOpt,
    LrOpt,
    OneBackboneOpt,
    OptimizerOpt,
    OutOpt,
    PipelinesOpt,
    PrecisionOpt,
    PretrainedOpt,
    ResumeOpt,
    ScheduleOpt,
    SeedsOpt,
    TargetAccOpt,
    TestFractionOpt,
    TrainBatchSizeOpt,
    TrainSeedOpt,
    ValFractionOpt,
    WeightDecayOpt,
    WorkersOpt,
)
from emobench.cli.shell import (
    clean_errors,
    default_report_path,
    fail,
    save_report,
)
from emobench.errors import UsageError
from emobench.names import FINETUNE_DIR, PIPELINE_NAMES
from emobench.render.console import stderr_console, stdout_console


@clean_errors
def finetune_cmd(
    data: LabeledDataOpt,
    backbone: OneBackboneOpt = "vgg16",
    device: DeviceOpt = "auto",
    pipeline: PipelinesOpt = None,
    epochs: EpochsOpt = 10,
    batch_size: TrainBatchSizeOpt = 64,
    optimizer: OptimizerOpt = "sgd",
    lr: LrOpt = None,
    weight_decay: WeightDecayOpt = None,
    schedule: ScheduleOpt = "cosine",
    label_smoothing: LabelSmoothingOpt = 0.0,
    pretrained: PretrainedOpt = True,
    freeze_backbone: FreezeBackboneOpt = False,
    precision: PrecisionOpt = "fp32",
    channels_last: ChannelsLastOpt = False,
    compile_mode: CompileOpt = "none",
    workers: WorkersOpt = 2,
    seed: TrainSeedOpt = 0,
    seeds: SeedsOpt = 1,
    target_acc: TargetAccOpt = None,
    val_fraction: ValFractionOpt = 0.1,
    test_fraction: TestFractionOpt = 0.1,
    checkpoint_dir: CheckpointDirOpt = None,
    resume: ResumeOpt = False,
    out: OutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fine-tune upscale224 and direct48 with one recipe; score both on the same test images.

    Example: emobench finetune --backbone vgg16 --data fer2013.csv --device cuda --epochs 10
    """
    from emobench.models import get_backbone
    from emobench.scenarios.finetune import FinetuneConfig

    get_backbone(backbone)  # an unknown backbone fails here
    folder = checkpoint_dir or FINETUNE_DIR / f"{backbone}-{data.stem}"
    config = FinetuneConfig(
        backbone=backbone,
        data=str(data),
        device=device,
        pipelines=tuple(pipeline or PIPELINE_NAMES),
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        schedule=schedule,
        label_smoothing=label_smoothing,
        pretrained=pretrained,
        freeze_backbone=freeze_backbone,
        precision=precision,
        channels_last=channels_last,
        compile=compile_mode,
        workers=workers,
        seed=seed,
        seeds=seeds,
        target_acc=target_acc,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        checkpoint_dir=str(folder),
        resume=resume,
    )
    _finetune_and_show(config, data, folder, out, json_out)


def _finetune_and_show(
    config: Any, data: Path, folder: Path, out: Path | None, json_out: bool
) -> None:
    """Check the device and the output path, load the data, fine-tune with a progress display,
    write the report and show it."""
    from emobench import results as report_mod
    from emobench.data.labeled import load_labeled
    from emobench.device import cap_threads_to_usable_cores, compile_unavailable, resolve_device
    from emobench.render.compare import render_finetune
    from emobench.render.progress import finetune_progress
    from emobench.scenarios.finetune import run_finetune

    resolved = resolve_device(config.device)
    if config.compile != "none" and (why := compile_unavailable(resolved)):
        raise UsageError(f"--compile {config.compile}: {why}")
    path = out or default_report_path(config.backbone, str(resolved), "finetune")
    fileio.check_output(path, "--out", report=True, force=False)
    labeled = load_labeled(
        data,
        seed=config.seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
    )
    cap_threads_to_usable_cores()
    try:
        with finetune_progress(stderr_console()) as progress:
            result = run_finetune(config, labeled, resolved, progress=progress)
    except KeyboardInterrupt:
        raise fail(
            f"interrupted; checkpoints are in {folder}: rerun with --resume to continue", 130
        ) from None
    save_report(result, path)
    typer.echo(f"report written to {path} ({result.wall_time_s:.1f} s)", err=True)
    if json_out:
        sys.stdout.write(report_mod.to_json(result))
    else:
        render_finetune(result, stdout_console())
