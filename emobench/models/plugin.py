"""Backbones from outside emobench: `module:function` or an `emobench.backbones` entry point.

The contract: `function(pipeline, num_classes=7)` returns an `nn.Module` for "upscale224"
(input N x 3 x 224 x 224) or "direct48" (N x 3 x 48 x 48) whose output is (N, num_classes).
The module is imported from the current folder or PYTHONPATH; the folder it came from is kept
on the spec (`plugin_path`) so a child process can import it without relying on its own cwd.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from emobench.errors import UsageError
from emobench.models.registry import BackboneSpec, input_size
from emobench.names import PLUGIN_GROUP

ENTRY_POINT_GROUP = PLUGIN_GROUP
PLUGIN_FAMILY = "plugin"
PLUGIN_SOURCE = "plugin"
CHECK_DEVICES = ("meta", "cpu")  # meta is free; cpu for a model meta tensors cannot run
CHECK_BATCH = 2  # the output check's batch: catches a model that ignores the batch dimension
# A child process (maxbatch's probes) turns this off: it imports a plugin only from the folder
# its parent passed, never from its own working folder.
import_from_cwd = True
_REF = re.compile(r"^(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)$")


def is_plugin_ref(name: str) -> bool:
    return ":" in name


def check_ref_syntax(ref: str) -> tuple[str, str]:
    """(module, function) of a `module:function` reference, or UsageError. Imports nothing."""
    match = _REF.match(ref)
    if match is None:
        raise UsageError(
            f"--model {ref!r}: expected module:function, e.g. mymodels:build (a function "
            "taking (pipeline, num_classes=7) and returning an nn.Module)"
        )
    return match["module"], match["function"]


def entry_point_backbones() -> dict[str, str]:
    """Installed plugins: entry-point name -> `module:function`."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def plugin_spec(name: str) -> Any:
    """A plugin's BackboneSpec, named `module:function` or by an entry point; else None."""
    if is_plugin_ref(name):
        ref = name
    else:
        ref = entry_point_backbones().get(name, "")
        if not ref:
            return None
    return _load_spec(name, ref)


@cache
def _load_spec(name: str, ref: str) -> Any:
    function, path = load_function(ref)
    return BackboneSpec(name, PLUGIN_FAMILY, function, None, plugin_path=path)


def load_function(ref: str) -> tuple[Callable[..., Any], str | None]:
    """Import `module:function` from the current folder or PYTHONPATH; the function and the
    sys.path entry its module was found under (None for a module with no file)."""
    module_name, function_name = check_ref_syntax(ref)
    cwd = os.getcwd()
    if import_from_cwd and not sys.flags.isolated and cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # an installed `emobench` script does not put the cwd on sys.path
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(
                f"--model {ref}: no module named {module_name!r} in the current folder ({cwd}) "
                "or on PYTHONPATH"
            ) from None
        raise UsageError(f"--model {ref}: importing {module_name} failed: {exc}") from None
    except Exception as exc:
        raise UsageError(
            f"--model {ref}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(f"--model {ref}: module {module_name} has no function {function_name!r}")
    return function, _search_path(module, module_name)


def _search_path(module: Any, module_name: str) -> str | None:
    """The sys.path entry that makes `module_name` importable: its file's folder, minus one
    level per package in its dotted name."""
    file = getattr(module, "__file__", None)
    if file is None:
        return None
    folder = Path(file).resolve().parent
    levels = module_name.count(".") + (1 if Path(file).name == "__init__.py" else 0)
    for _ in range(levels):
        folder = folder.parent
    return str(folder)


def build_plugin(spec: Any, pipeline: str, num_classes: int) -> Any:
    """Call the plugin and check what it returns; wrap it as an EmotionNet.

    The output shape is checked on the meta device (no weights, no compute), where the final
    feature map is read too: the spatial size of the last 4-D activation any submodule returns.
    """
    from torch import nn

    from emobench.models.net import EmotionNet, TransferReport

    size = input_size(pipeline)
    module = _call(spec, pipeline, num_classes)
    feature_map = _checked_feature_map(spec, pipeline, num_classes, size)
    model = EmotionNet(
        module,
        nn.Identity(),
        backbone_name=spec.name,
        pipeline=pipeline,
        input_size=size,
        feature_map=feature_map,
    )
    model.transfer = TransferReport(
        source=f"{PLUGIN_SOURCE} {spec.name}", copied=(), fresh=tuple(model.state_dict())
    )
    return model


def _call(spec: Any, pipeline: str, num_classes: int) -> Any:
    from torch import nn

    try:
        module = spec.builder(pipeline, num_classes=num_classes)
    except Exception as exc:
        raise UsageError(
            f"--model {spec.name}: {spec.name}({pipeline!r}, num_classes={num_classes}) raised "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(module, nn.Module):
        raise UsageError(
            f"--model {spec.name}: returned {type(module).__name__} for {pipeline!r}; "
            "expected a torch.nn.Module"
        )
    return module


def check_plugin(spec: Any, pipeline: str, num_classes: int) -> None:
    """UsageError unless the plugin's `pipeline` model maps N x 3 x S x S to (N, num_classes)."""
    _checked_feature_map(spec, pipeline, num_classes, input_size(pipeline))


@cache
def _checked_feature_map(spec: Any, pipeline: str, num_classes: int, size: int) -> tuple[int, ...]:
    """Meta first (free); a model that cannot run on meta tensors is checked on the CPU."""
    failure: UsageError | None = None
    for device in CHECK_DEVICES:
        try:
            return _forward_check(spec, pipeline, num_classes, size, device)
        except _ForwardFailed as exc:
            failure = UsageError(str(exc))
    assert failure is not None
    raise failure


class _ForwardFailed(Exception):
    pass


def _forward_check(
    spec: Any, pipeline: str, num_classes: int, size: int, device: str
) -> tuple[int, ...]:
    """The final feature map: the input of the last adaptive pool, else the last 4-D activation
    wider than 1x1, else () (unknown)."""
    import torch
    from torch import nn

    global_pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)

    with torch.device(device):
        module = _call(spec, pipeline, num_classes)
        x = torch.zeros(CHECK_BATCH, 3, size, size)
    module.eval()
    maps: list[tuple[int, int]] = []  # 4-D activations wider than 1x1, in execution order
    pooled: list[tuple[int, int]] = []  # inputs of adaptive (global) pools: the last one wins

    def record(m: Any, inputs: Any, out: Any) -> None:
        if isinstance(m, global_pools) and inputs and inputs[0].dim() == 4:
            pooled.append((int(inputs[0].shape[-2]), int(inputs[0].shape[-1])))
        elif isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] > 1:
            maps.append((int(out.shape[-2]), int(out.shape[-1])))

    handles = [m.register_forward_hook(record) for m in module.modules() if m is not module]
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as exc:
        raise _ForwardFailed(
            f"--model {spec.name}: the {pipeline} model failed on a {CHECK_BATCH}x3x{size}x{size} "
            f"input: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    finally:
        for h in handles:
            h.remove()
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape != (CHECK_BATCH, num_classes):
        got = shape if shape is not None else type(out).__name__
        raise UsageError(
            f"--model {spec.name}: the {pipeline} model's output is {got} for a "
            f"{CHECK_BATCH}x3x{size}x{size} input; expected (N, num_classes) = "
            f"({CHECK_BATCH}, {num_classes})"
        )
    return pooled[-1] if pooled else maps[-1] if maps else ()
