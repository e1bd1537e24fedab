"""`finetune`: both pipelines fine-tuned with one recipe and scored on the same images."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from emobench import files as fileio
from emobench.cli.options import (
    DeviceOpt,
    JsonOpt,
    OutOpt,
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
    data: Annotated[
        Path,
        typer.Option(
            help="FER2013 CSV (emotion, pixels, optional Usage) or a folder with one sub-folder "
            "per class (optionally under train/, val/, test/)."
        ),
    ],
    backbone: Annotated[str, typer.Option(help="Backbone: vgg16, vgg19 or resnet18.")] = "vgg16",
    device: DeviceOpt = "auto",
    pipeline: Annotated[
        list[str] | None,
        typer.Option(help="upscale224 or direct48; repeat for both (default: both)."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs per pipeline.")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Training batch size.")] = 64,
    optimizer: Annotated[str, typer.Option(help="sgd (momentum 0.9) or adamw.")] = "sgd",
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (default sgd 0.01, adamw 0.001).")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Weight decay (default sgd 5e-4, adamw 0.05).")
    ] = None,
    schedule: Annotated[
        str, typer.Option(help="cosine (to 0 over the epochs) or step (/10 every third).")
    ] = "cosine",
    label_smoothing: Annotated[
        float, typer.Option(help="Cross-entropy label smoothing, 0 to <1.")
    ] = 0.0,
    pretrained: Annotated[
        bool,
        typer.Option(
            help="ImageNet weights from the torchvision cache; --no-pretrained: random init."
        ),
    ] = True,
    freeze_backbone: Annotated[
        bool, typer.Option(help="Linear probing: train only the head.")
    ] = False,
    precision: Annotated[str, typer.Option(help="fp32, fp16 or bf16 (autocast).")] = "fp32",
    channels_last: Annotated[
        bool, typer.Option(help="Run the model in channels-last memory format.")
    ] = False,
    compile_mode: Annotated[
        str,
        typer.Option(
            "--compile", help="torch.compile mode: none, default, reduce-overhead, max-autotune."
        ),
    ] = "none",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
    seed: Annotated[int, typer.Option(help="First seed (weights, order, augmentation).")] = 0,
    seeds: Annotated[
        int, typer.Option(help="Repeat the whole fine-tune with this many seeds.")
    ] = 1,
    target_acc: Annotated[
        float | None,
        typer.Option(help="Report the training time until validation accuracy reaches this."),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Validation share when the data has no given splits.")
    ] = 0.1,
    test_fraction: Annotated[
        float, typer.Option(help="Test share when the data has no given splits.")
    ] = 0.1,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(help="Where best/last checkpoints go (default results/finetune/<run>)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from its checkpoints.")
    ] = False,
    out: OutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fine-tune upscale224 and direct48 with one recipe; score both on the same test images.

    Example: emobench finetune --backbone vgg16 --data fer2013.csv --device cuda --epochs 10
    """
    import torch

    from emobench import results as report_mod
    from emobench.data.labeled import load_labeled
    from emobench.device import compile_unavailable, resolve_device
    from emobench.models import get_backbone
    from emobench.render.compare import render_finetune
    from emobench.render.progress import finetune_progress
    from emobench.scenarios.finetune import FinetuneConfig, run_finetune

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
    resolved = resolve_device(device)
    if compile_mode != "none" and (why := compile_unavailable(resolved)):
        raise UsageError(f"--compile {compile_mode}: {why}")
    path = out or default_report_path(backbone, str(resolved), "finetune")
    fileio.check_output(path, "--out", report=True, force=False)
    labeled = load_labeled(data, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores and torch.get_num_threads() > cores:
        torch.set_num_threads(cores)
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
