"""A plugin model checked at every batch size it runs at (issue #26): one that passes the check
before the run (batches 2 and 1) but fails at another batch size stops the run with one error
line naming the plugin, the pipeline and the batch size (exit 1), in compare and in maxbatch's
search; registered backbones go through the same check unharmed."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from emobench.cli import app
from emobench.errors import ModelError
from emobench.models import build_model
from emobench.runtimes.torch import Pipeline
from tests.conftest import TINY_ARGS

runner = CliRunner()
CPU = torch.device("cpu")

# Every model here is right at batches 1 and 2 (the check before the run); at batch 4, on real
# data, each fails its own way.
SOURCE = """
import sys

import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, num_classes, failure):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)
        self.failure = failure

    def forward(self, x):
        out = self.fc(x.mean((2, 3)))
        if x.shape[0] != 4 or x.is_meta:
            return out
        if self.failure == "shape":
            return out[:1]
        if self.failure == "tuple":
            return out, out
        if self.failure == "raises":
            raise RuntimeError("no kernel for batch 4")
        if self.failure == "exits":
            sys.exit(0)
        if self.failure == "oom":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return out


def shape(pipeline, num_classes=7):
    return Model(num_classes, "shape")


def tuple_out(pipeline, num_classes=7):
    return Model(num_classes, "tuple")


def raises(pipeline, num_classes=7):
    return Model(num_classes, "raises")


def exits(pipeline, num_classes=7):
    return Model(num_classes, "exits")


def oom(pipeline, num_classes=7):
    return Model(num_classes, "oom")


def good(pipeline, num_classes=7):
    return Model(num_classes, "none")
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh module (unique name) in a folder that is the cwd; sys.path restored after."""
    name = f"batchplug_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"{name}.py").write_text(SOURCE)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(folder)
    return name


def _args(ref: str, out: Path) -> list[str]:
    args = [a for a in TINY_ARGS if a not in ("--backbone", "resnet18")]
    batch = args.index("--batch-size")
    args[batch + 1] = "4"
    return ["compare", *args, "--model", ref, "--out", str(out)]


@pytest.mark.real_models
@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("shape", "returned shape (1, 7); expected (4, 7)"),
        ("tuple_out", "returned tuple; expected a tensor of shape (4, 7)"),
        ("raises", "raised RuntimeError: no kernel for batch 4"),
        ("exits", "exited (SystemExit 0)"),
    ],
)
def test_a_model_failing_at_another_batch_size_stops_the_run_with_one_line(
    plugin: str, function: str, message: str, tmp_path: Path
) -> None:
    ref = f"{plugin}:{function}"
    out = tmp_path / "r.json"
    result = runner.invoke(app, _args(ref, out))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [result.stderr.splitlines()[-1]]  # under the progress lines: one error line
    assert errors[0].startswith(f"error: plugin {ref}: at batch 4, the "), errors
    assert message in errors[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_the_output_is_checked_once_per_batch_size_and_mode(
    plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call at each batch size (eval, then train) is checked; later ones cost a set
    lookup, not a check."""
    pipe = Pipeline("direct48", build_model(f"{plugin}:good", "direct48"), CPU, num_classes=7)
    checked: list[tuple[bool, int]] = []
    real_check = pipe._check_output

    def check(x: torch.Tensor, out: object) -> None:
        checked.append((pipe.model.training, x.shape[0]))
        real_check(x, out)

    monkeypatch.setattr(pipe, "_check_output", check)
    for bs in (1, 4, 4, 4, 1, 8):
        pipe.infer(pipe.example_input(bs))
    pipe.model.train()
    optimizer = pipe.new_optimizer()
    for _ in range(2):
        pipe.train_step(pipe.example_input(4), torch.zeros(4, dtype=torch.long), optimizer)
    assert checked == [(False, 1), (False, 4), (False, 8), (True, 4)]


def test_a_registered_backbone_passes_the_same_check() -> None:
    pipe = Pipeline("direct48", build_model("resnet18", "direct48"), CPU, num_classes=7)
    for bs in (1, 3):
        assert pipe.infer(pipe.example_input(bs)).shape == (bs, 7)


def test_a_registered_backbone_with_the_wrong_width_is_named_without_plugin() -> None:
    model = build_model("resnet18", "direct48", num_classes=5)
    pipe = Pipeline("direct48", model, CPU, num_classes=7)
    with pytest.raises(ModelError, match=r"^resnet18: at batch 2, the direct48 model returned"):
        pipe.infer(pipe.example_input(2))


def test_out_of_memory_passes_unchanged_for_maxbatch(plugin: str) -> None:
    """maxbatch tells out-of-memory from every other failure by the exception itself."""
    pipe = Pipeline("direct48", build_model(f"{plugin}:oom", "direct48"), CPU)
    with pytest.raises(RuntimeError, match="CUDA out of memory") as caught:
        pipe.infer(pipe.example_input(4))
    assert not isinstance(caught.value, ModelError)


@pytest.mark.parametrize(
    ("function", "outcome", "message"),
    [
        ("shape", "error", "plugin {ref}: at batch 4, the direct48 model returned shape (1, 7)"),
        ("raises", "error", "at batch 4, the direct48 model raised RuntimeError"),
        ("exits", "error", "at batch 4, the direct48 model exited (SystemExit 0)"),
        ("oom", "oom", "CUDA out of memory"),
    ],
)
def test_maxbatch_search_stops_with_the_batch_size_named(
    plugin: str, function: str, outcome: str, message: str
) -> None:
    from emobench.measure import search as mb
    from emobench.scenarios.maxbatch import make_step

    ref = f"{plugin}:{function}"
    step = make_step(build_model(ref, "direct48"), "infer", CPU)
    hooks = mb.MemoryHooks(lambda: None, lambda: None, lambda: None)
    result = mb.search_max_batch(mb.guarded_try_batch(step, hooks), 16)
    failed = [p for p in result.probes if p.outcome != mb.OK]
    assert [p.batch_size for p in failed] == [4] and failed[0].outcome == outcome
    assert message.format(ref=ref) in (failed[0].message or "")
    if outcome == mb.ERROR:
        assert result.error is not None and result.max_batch == 2
