"""`finetune`: both pipelines fine-tuned with one recipe and scored on the same images.

Every option, --data (its kind, then its contents), --out and the checkpoint folder are
checked before torch is imported, so a refusal is answered at once; then the device, a
plugin's models and, with --resume, every checkpoint, before anything trains.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from emobench import files as fileio
from emobench.cli.options import (
    AllowEmulatedOpt,
    ChannelsLastOpt,
    CheckpointDirOpt,
    CompileOpt,
    DeviceOpt,
    EpochsOpt,
    FinetuneBackboneOpt,
    FinetuneForceOpt,
    FreezeBackboneOpt,
    JsonOpt,
    LabeledDataOpt,
    LabelSmoothingOpt,
    LrOpt,
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
    check_model_refs,
    file_label,
)
from emobench.cli.shell import clean_errors, default_report_path, fail, save_report
from emobench.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, UsageError
from emobench.names import PIPELINE_NAMES, RESULTS_DIR
from emobench.render.console import stderr_console, stdout_console

NprocOpt = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        min=1,
        help="Train data-parallel on N processes of this machine: runs this command under "
        "torchrun --nproc-per-node N (one GPU each on CUDA, gloo on the CPU). --batch-size "
        "is the global batch, split evenly; the learning rate is unchanged.",
        rich_help_panel="Training",
    ),
]


@clean_errors
def finetune_cmd(
    data: LabeledDataOpt,
    backbone: FinetuneBackboneOpt = "vgg16",
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
    allow_emulated: AllowEmulatedOpt = False,
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
    force: FinetuneForceOpt = False,
    nproc: NprocOpt = None,
) -> None:
    """Fine-tune upscale224 and direct48 with one recipe; score both on the same test images.

    Example: emobench finetune --backbone vgg16 --data fer2013.csv --device cuda --epochs 10

    Data-parallel: torchrun --nproc-per-node 4 -m emobench finetune ... (or --nproc 4).
    """
    from emobench.scenarios.finetune.settings import (
        CHECKPOINT_DIR,
        FinetuneConfig,
        per_process_batch,
        world_from_env,
    )

    world = world_from_env()
    per_process_batch(batch_size, world)  # the global batch divides across the processes

    if ":" in backbone:  # module:function syntax, a findable module; no torch yet
        try:
            check_model_refs([backbone])
        except UsageError as exc:
            raise UsageError(str(exc).replace("--model ", "--backbone ", 1)) from None
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
        checkpoint_dir=str(checkpoint_dir or CHECKPOINT_DIR),
        resume=resume,
        allow_emulated=allow_emulated,
    )
    if nproc is not None and nproc > 1:  # every option checked: hand over to torchrun
        if world.distributed:
            raise UsageError("--nproc: already running under torchrun; leave --nproc out")
        _exec_torchrun(nproc, batch_size, device)
    config, labeled, data_hash = _checked_inputs(config, data, checkpoint_dir, out, force)
    _finetune_and_show(config, labeled, data_hash, out, json_out)


def _exec_torchrun(nproc: int, batch_size: int, device: str) -> None:
    """Replace this process with torchrun running this same command on nproc processes,
    once the batch divides and (on CUDA) there are nproc GPUs."""
    from emobench.scenarios.finetune.settings import World, per_process_batch

    per_process_batch(batch_size, World(size=nproc))  # torch-free: refused before torch
    from emobench.scenarios.finetune.distributed import check_nproc

    check_nproc(nproc, device)
    # --standalone: a rendezvous of its own on a free port, so two runs on one host do not meet
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(nproc),
    ]
    argv += ["-m", "emobench", *without_nproc(sys.argv[1:])]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


@contextmanager
def _no_progress() -> Iterator[Any]:
    yield lambda *_: None


def without_nproc(args: list[str]) -> list[str]:
    """The command line without its --nproc N / --nproc=N."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _checked_inputs(
    config: Any, data: Path, checkpoint_dir: Path | None, out: Path | None, force: bool
) -> tuple[Any, Any, str]:
    """Without torch: --data's kind, --out (never --data; an existing file replaced only when
    it is a report, or with --force), the checkpoint folder, then --data's contents, and
    whether the folder's checkpoints fit --resume. The config with its checkpoint folder
    (keyed by the data and the recipe by default), the data and its sha256."""
    import dataclasses

    from emobench.data.labeled import check_source, load_labeled
    from emobench.scenarios.finetune import settings

    is_folder = check_source(data)
    if out is not None:
        inputs = [data]
        if is_folder and _one_of_its_images(out, data):
            inputs.append(out)
        fileio.check_output(out, "--out", report=True, force=force, inputs=inputs)
    else:
        fileio.check_folder(RESULTS_DIR, "--out (default results/)")
    if checkpoint_dir is not None:
        settings.check_checkpoint_folder(checkpoint_dir, f"--checkpoint-dir {checkpoint_dir}")
    labeled = load_labeled(
        data, seed=config.seed, val_fraction=config.val_fraction, test_fraction=config.test_fraction
    )
    data_hash = labeled.content_sha256()
    folder = checkpoint_dir
    if folder is None:
        folder = settings.default_checkpoint_dir(config, data, data_hash)
        settings.check_checkpoint_folder(folder, f"checkpoint folder {folder}")
    settings.check_checkpoint_state(config, folder, force, default_folder=checkpoint_dir is None)
    return dataclasses.replace(config, checkpoint_dir=str(folder)), labeled, data_hash


def _one_of_its_images(path: Path, folder: Path) -> bool:
    """Whether path is an existing image file somewhere under the --data folder."""
    from emobench.data.images import IMAGE_SUFFIXES

    if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return False
    return folder.resolve() in path.resolve().parents


def _finetune_and_show(
    config: Any, labeled: Any, data_hash: str, out: Path | None, json_out: bool
) -> None:
    """Check the device (torch is imported here) and a plugin's models, fine-tune with a
    progress display, write the report and show it."""
    from emobench import results as report_mod
    from emobench.config import is_plugin
    from emobench.device import cap_threads_to_usable_cores, resolve_device
    from emobench.render.compare import render_finetune
    from emobench.render.progress import finetune_progress
    from emobench.scenarios.finetune import settings
    from emobench.scenarios.finetune.distributed import device_for, process_group, world_from_env
    from emobench.scenarios.finetune.run import run_finetune_distributed

    world, resolved = device_for(world_from_env(), resolve_device(config.device))
    # the checks compare makes: fp16 needs CUDA, an emulated precision (bf16 before sm_80)
    # needs --allow-emulated, --compile needs its compiler
    settings.check_device(config, resolved)
    if is_plugin(config.backbone):
        from emobench.models import check_backbone

        check_backbone(config.backbone, config.pipelines, num_classes=len(labeled.class_names))
    label = file_label((config.backbone,))
    path = out or default_report_path(label, str(resolved), "finetune")
    folder = Path(config.checkpoint_dir)
    cap_threads_to_usable_cores()
    try:
        # across processes rank 0 alone shows progress, writes the report and shows it
        shown = finetune_progress(stderr_console()) if world.main else _no_progress()
        with process_group(world), shown as progress:
            result = run_finetune_distributed(
                config, labeled, resolved, world, progress=progress, data_hash=data_hash
            )
    except (KeyboardInterrupt, Terminated) as exc:
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated (SIGTERM)"
        code = EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_TERMINATED
        if settings.run_checkpoints(config, folder):
            where = f"checkpoints are in {folder}: rerun with --resume to continue"
        else:
            where = "no checkpoint was written yet"
        raise fail(f"{what}; {where}", code) from None
    if result is None:  # not rank 0
        return
    save_report(result, path)
    typer.echo(f"report written to {path} ({result.wall_time_s:.1f} s)", err=True)
    for note in result.notes:
        if "not finite" in note:
            typer.echo(f"warning: {note}", err=True)
    if json_out:
        sys.stdout.write(report_mod.to_json(result))
    else:
        render_finetune(result, stdout_console())
