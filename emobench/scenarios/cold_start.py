"""The cold start: each pipeline's first model call at batch 1, on CUDA timed in a fresh process.

In one process the pipeline that runs first pays for what the other then reuses: CUDA's lazy
loading of kernel modules (the fp16/bf16 ones included), cuDNN/cuBLAS heuristics, the caching
allocator's first segments. So on CUDA each pipeline's first call is timed in a fresh isolated
interpreter (`launchers.child.run_child`, as maxbatch confirms its batch), which pays the same
one-time library initialisation as the run itself does before any pipeline
(`compare.pay_one_time_costs`), builds the model and times its first call; pipeline order cannot
bias it. Each child imports torch and opens a CUDA context before it can time anything: about
4-6 s per pipeline and backbone, taken only when the run measures latency on CUDA without
--compile (bounded by what is left of --time-budget).

On the CPU nothing lazy is shared between the pipelines once the one-time costs are paid (oneDNN
builds its primitives per shape), so the first call is timed in the run's own process, as
before. Under --compile the first call compiles (`compile_s`): no cold start is reported.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from emobench.config import RunConfig
from emobench.launchers.child import ChildResult, run_child

COLD_START_TIMEOUT_S = 120.0  # a fresh process's import, context, build and first call
CHILD_ENTRY = "emobench.scenarios.cold_start:_child_main"  # run by launchers.child

FRESH_PROCESS = (
    "fresh process: the first batch-1 call of the model built in a new interpreter after the "
    "one-time library initialisation, so neither pipeline pays for the other's kernel loading"
)
IN_PROCESS = (
    "in process: the first batch-1 call of the freshly built model, after the one-time library "
    "initialisation (nothing lazy is shared between pipelines on the CPU)"
)
COMPILED = (
    "not measured under --compile: the first call compiles (see compile_s), and a fresh "
    "process would time the compiler, not the model"
)

Launch = Callable[[str, str, float], ChildResult]


def child_argument(config: RunConfig, backbone: str, pipeline: str, device: str) -> str:
    """What the child needs to build and call the pipeline as the run does."""
    from emobench.models import get_backbone

    return json.dumps(
        {
            "backbone": backbone,
            "pipeline": pipeline,
            "device": device,
            "num_classes": config.num_classes,
            "precision": config.precision,
            "channels_last": config.channels_last,
            "cudnn_benchmark": config.cudnn_benchmark,
            "tf32": config.tf32,
            "threads": config.threads,
            "seed": config.seed,
            # a plugin's folder, passed explicitly: the child never imports from its cwd
            "plugin_path": get_backbone(backbone).plugin_path,
        }
    )


def cold_start_in_child(
    config: RunConfig,
    backbone: str,
    pipeline: str,
    device: str,
    timeout_s: float = COLD_START_TIMEOUT_S,
    launch: Launch = run_child,
) -> tuple[float | None, str]:
    """(the first call in ms, how it was taken) from a fresh process; (None, why) when the
    child failed or ran past `timeout_s`."""
    child = launch(CHILD_ENTRY, child_argument(config, backbone, pipeline, device), timeout_s)
    if child.timed_out:
        return None, f"not measured: the fresh process ran past {timeout_s:.3g} s"
    out = child.last_json()
    ms = out.get("cold_start_ms") if isinstance(out, dict) else None
    if not isinstance(ms, int | float) or isinstance(ms, bool) or not ms > 0:
        return None, f"not measured: the fresh process failed: {child.last_error_line()}"
    return float(ms), f"{FRESH_PROCESS} (the process took {child.seconds:.1f} s in all)"


def _child_main(raw: str) -> None:
    """Child process: the run's backend settings and one-time costs, the model, its first
    batch-1 call timed as the run times latency; prints {"cold_start_ms": ...}."""
    args: dict[str, Any] = json.loads(raw)
    if args.get("plugin_path"):
        from emobench.models import plugin

        plugin.import_from_cwd = False
        sys.path.insert(0, args["plugin_path"])
    import torch

    from emobench.data.images import synthetic_images
    from emobench.device import apply_backend_settings, device_scope, resolve_device
    from emobench.measure.timing import timer_for
    from emobench.models import build_model
    from emobench.runtimes.torch import Pipeline
    from emobench.scenarios.compare import pay_one_time_costs

    config = RunConfig(
        backbones=(args["backbone"],),
        device=args["device"],
        num_classes=args["num_classes"],
        precision=args["precision"],
        channels_last=args["channels_last"],
        cudnn_benchmark=args["cudnn_benchmark"],
        tf32=args["tf32"],
        threads=args["threads"],
    )
    device = resolve_device(config.device)
    with device_scope(device):
        apply_backend_settings(config)
        pay_one_time_costs(device)
        model = build_model(args["backbone"], args["pipeline"], num_classes=config.num_classes)
        pipe = Pipeline(
            args["pipeline"],
            model,
            device,
            config.precision,
            config.channels_last,
            config.num_classes,
        )
        host = torch.from_numpy(synthetic_images(1, args["seed"]))
        if device.type == "cuda":
            host = host.pin_memory()
        x1 = pipe.preprocess_batched(host)
        timer, _name = timer_for(device)
        ms = timer(partial(pipe.infer, x1))
    print(json.dumps({"cold_start_ms": ms}))


if __name__ == "__main__":
    _child_main(sys.argv[1])
