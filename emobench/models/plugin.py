"""Backbones from outside emobench: `module:function` or an `emobench.backbones` entry point.

The contract: `function(pipeline, num_classes=7)` returns an `nn.Module` for "upscale224"
(input N x 3 x 224 x 224) or "direct48" (N x 3 x 48 x 48) whose output is (N, num_classes).
The module is imported from the current folder or PYTHONPATH; the folder it came from is kept
on the spec (`plugin_path`) so a child process can import it without relying on its own cwd.

A plugin's own code (its import, its function, the check's forward passes) runs fenced: whatever
it raises or exits with (`sys.exit`, `raise KeyboardInterrupt`, any exception) becomes one
PluginError naming it. Only a real Ctrl-C (a SIGINT that arrived while the plugin's code ran)
and SIGTERM pass through as themselves.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

from emobench.errors import PluginError, Terminated
from emobench.models.registry import BackboneSpec, input_size
from emobench.names import PLUGIN_GROUP

ENTRY_POINT_GROUP = PLUGIN_GROUP
PLUGIN_FAMILY = "plugin"
PLUGIN_SOURCE = "plugin"
CHECK_DEVICES = ("meta", "cpu")  # meta is free; cpu for a model meta tensors cannot run
# The output check's batches: 2 catches a model that ignores the batch dimension, 1 one that
# squeezes it away (latency runs at batch 1). Every other batch size is checked on its first
# call while the run measures (runtimes.torch.Pipeline).
CHECK_BATCHES = (2, 1)
MESSAGE_CHARS = 200
# A child process (maxbatch's probes) turns this off: it imports a plugin only from the folder
# its parent passed, never from its own working folder.
import_from_cwd = True
_REF = re.compile(r"^(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)$")


def is_plugin_ref(name: str) -> bool:
    return ":" in name


def check_ref_syntax(ref: str) -> tuple[str, str]:
    """(module, function) of a `module:function` reference, or PluginError. Imports nothing."""
    match = _REF.match(ref)
    if match is None:
        raise PluginError(
            ref,
            "expected module:function, e.g. mymodels:build (a function taking "
            "(pipeline, num_classes=7) and returning an nn.Module)",
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
    function, path = load_function(ref, name)
    return BackboneSpec(name, PLUGIN_FAMILY, function, None, plugin_path=path)


class _CtrlC:
    """Tells the user's Ctrl-C from a KeyboardInterrupt a plugin raises itself.

    While inside (main thread, Python's own SIGINT handler or any other callable one), a SIGINT
    also sets `seen` before the usual handler raises. A KeyboardInterrupt is the user's only
    when one arrived: with SIGINT ignored or at its default (the process would die) a signal
    raises none, and outside the main thread no signal ever raises one.
    """

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):
            return self

        def handler(signum: int, frame: FrameType | None) -> Any:
            self.seen = True
            return previous(signum, frame)

        signal.signal(signal.SIGINT, handler)
        self._previous = previous
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:  # also undoes a handler the plugin itself installed
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _failure(exc: BaseException, ctrl_c: _CtrlC) -> str:
    """What a plugin's own code ended with, for its one error line. A real Ctrl-C and SIGTERM
    are re-raised as themselves (exit 130, 143)."""
    if isinstance(exc, Terminated) or (isinstance(exc, KeyboardInterrupt) and ctrl_c.seen):
        raise exc
    if isinstance(exc, SystemExit):
        return f"exited (SystemExit {exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "raised KeyboardInterrupt itself (no Ctrl-C arrived)"
    lines = str(exc).strip().splitlines()
    text = f": {lines[0][:MESSAGE_CHARS]}" if lines else ""
    return f"raised {type(exc).__name__}{text}"


def load_function(ref: str, name: str | None = None) -> tuple[Callable[..., Any], str | None]:
    """Import `module:function` from the current folder or PYTHONPATH; the function and the
    sys.path entry its module was found under (None for a module with no file). `name` is how
    the user named the plugin (an entry point's name), `ref` by default."""
    name = ref if name is None else name
    module_name, function_name = check_ref_syntax(ref)
    cwd = os.getcwd()
    if import_from_cwd and not sys.flags.isolated and cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # an installed `emobench` script does not put the cwd on sys.path
    with _CtrlC() as ctrl_c:
        try:
            module = importlib.import_module(module_name)
            function = getattr(module, function_name, None)  # a module __getattr__ runs here
        except ModuleNotFoundError as exc:
            if exc.name == module_name or module_name.startswith(f"{exc.name}."):
                raise PluginError(
                    name,
                    f"no module named {module_name!r} in the current folder ({cwd}) or on "
                    "PYTHONPATH",
                ) from None
            raise PluginError(name, f"importing {module_name} failed: {exc}") from None
        except BaseException as exc:  # sys.exit, KeyboardInterrupt: see _failure
            detail = _failure(exc, ctrl_c)
            raise PluginError(name, f"during import, module {module_name} {detail}") from None
    if not callable(function):
        raise PluginError(name, f"module {module_name} has no function {function_name!r}")
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

    with _CtrlC() as ctrl_c:
        try:
            module = spec.builder(pipeline, num_classes=num_classes)
        except BaseException as exc:  # the plugin's own code: see _failure
            detail = _failure(exc, ctrl_c)
            raise PluginError(
                spec.name, f"{spec.name}({pipeline!r}, num_classes={num_classes}) {detail}"
            ) from None
    if not isinstance(module, nn.Module):
        raise PluginError(
            spec.name,
            f"returned {type(module).__name__} for {pipeline!r}; expected a torch.nn.Module",
        )
    return module


def check_plugin(spec: Any, pipeline: str, num_classes: int) -> None:
    """PluginError unless the plugin's `pipeline` model maps N x 3 x S x S to (N, num_classes)
    at every batch in CHECK_BATCHES."""
    _checked_feature_map(spec, pipeline, num_classes, input_size(pipeline))


@cache
def _checked_feature_map(spec: Any, pipeline: str, num_classes: int, size: int) -> tuple[int, ...]:
    """Meta first (free); a model that cannot run on meta tensors is checked on the CPU."""
    failure: PluginError | None = None
    for device in CHECK_DEVICES:
        try:
            return _forward_check(spec, pipeline, num_classes, size, device)
        except _ForwardFailed as exc:
            failure = PluginError(spec.name, str(exc))
    assert failure is not None
    raise failure


class _ForwardFailed(Exception):
    pass


def _forward_check(
    spec: Any, pipeline: str, num_classes: int, size: int, device: str
) -> tuple[int, ...]:
    """The final feature map: the input of the last adaptive pool, else the last 4-D activation
    wider than 1x1, else () (unknown). Read at the first of CHECK_BATCHES; the output's shape is
    checked at each."""
    import torch
    from torch import nn

    global_pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)

    with torch.device(device):
        module = _call(spec, pipeline, num_classes)
    module.eval()
    maps: list[tuple[int, int]] = []  # 4-D activations wider than 1x1, in execution order
    pooled: list[tuple[int, int]] = []  # inputs of adaptive (global) pools: the last one wins

    def record(m: Any, inputs: Any, out: Any) -> None:
        if isinstance(m, global_pools) and inputs and inputs[0].dim() == 4:
            pooled.append((int(inputs[0].shape[-2]), int(inputs[0].shape[-1])))
        elif isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] > 1:
            maps.append((int(out.shape[-2]), int(out.shape[-1])))

    feature_map: tuple[int, ...] = ()
    for batch in CHECK_BATCHES:
        handles = []
        if batch == CHECK_BATCHES[0]:
            handles = [m.register_forward_hook(record) for m in module.modules() if m is not module]
        x = torch.zeros(batch, 3, size, size, device=device)
        out = _checked_forward(spec, module, x, pipeline, handles)
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        if shape != (batch, num_classes):
            got = shape if shape is not None else type(out).__name__
            raise PluginError(
                spec.name,
                f"the {pipeline} model's output is {got} for a {batch}x3x{size}x{size} input; "
                f"expected (N, num_classes) = ({batch}, {num_classes})",
            )
        if batch == CHECK_BATCHES[0]:
            feature_map = pooled[-1] if pooled else maps[-1] if maps else ()
    return feature_map


def _checked_forward(spec: Any, module: Any, x: Any, pipeline: str, handles: list[Any]) -> Any:
    """One forward of the plugin's model, fenced like its import."""
    import torch

    size = x.shape[-1]
    with _CtrlC() as ctrl_c:
        try:
            with torch.no_grad():
                return module(x)
        except BaseException as exc:  # the plugin's own code: see _failure
            detail = _failure(exc, ctrl_c)
            raise _ForwardFailed(
                f"the {pipeline} model failed on a {x.shape[0]}x3x{size}x{size} input: {detail}"
            ) from None
        finally:
            for h in handles:
                h.remove()
