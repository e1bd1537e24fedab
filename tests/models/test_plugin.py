"""Backbones from outside emobench: `--model module:function` and `emobench.backbones` entry
points, with a small model defined here and imported the way a user's would be."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from emobench.cli import app
from emobench.cli.options import backbone_names
from emobench.errors import UsageError
from emobench.models import BACKBONES, EmotionNet, build_model, get_backbone
from emobench.models.plugin import entry_point_backbones
from tests.conftest import TINY_ARGS

runner = CliRunner()

PLUGIN_SOURCE = '''
from torch import nn


def build(pipeline, num_classes=7):
    """8 filters; stride 4 at 224 (a 56x56 map), stride 1 at 48 (48x48)."""
    stride = 4 if pipeline == "upscale224" else 1
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=stride, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


def not_a_module(pipeline, num_classes=7):
    return 42


def wrong_output(pipeline, num_classes=7):
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (N, 3)


def raises(pipeline, num_classes=7):
    raise RuntimeError("no such pipeline here")
'''
PLUGIN_PARAMS = (3 * 8 * 9 + 8) + (8 * 7 + 7)  # conv + linear, 7 classes


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh module (unique name) in a folder that is the cwd; sys.path restored after."""
    name = f"emoplug_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"{name}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(folder)
    return name


@pytest.mark.parametrize(
    ("pipeline", "size", "fmap"), [("upscale224", 224, (56, 56)), ("direct48", 48, (48, 48))]
)
def test_plugin_is_wrapped_as_an_emotion_net(plugin: str, pipeline: str, size: int, fmap) -> None:
    ref = f"{plugin}:build"
    model = build_model(ref, pipeline, num_classes=5)
    assert isinstance(model, EmotionNet)
    assert (model.backbone_name, model.pipeline, model.input_size) == (ref, pipeline, size)
    assert model.feature_map == fmap  # measured: the input of the last adaptive pool
    assert model.transfer is not None and model.transfer.source == f"plugin {ref}"
    assert model.transfer.copied == () and model.transfer.fresh == tuple(model.state_dict())
    with torch.no_grad():
        assert model(torch.zeros(2, 3, size, size)).shape == (2, 5)


def test_plugin_cannot_freeze_a_backbone_it_does_not_separate(plugin: str) -> None:
    with pytest.raises(UsageError, match="no separate head"):
        build_model(f"{plugin}:build", "direct48", freeze_backbone=True)


def test_plugin_spec_keeps_the_folder_it_was_imported_from(plugin: str, tmp_path: Path) -> None:
    spec = get_backbone(f"{plugin}:build")
    assert spec.is_plugin and spec.family == "plugin"
    assert spec.plugin_path == str((tmp_path / "mine").resolve())


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("build", None),
        ("missing", "has no function 'missing'"),
        ("not_a_module", "returned int for 'upscale224'; expected a torch.nn.Module"),
        ("wrong_output", "output is (2, 3) for a 2x3x224x224 input; expected (N, num_classes)"),
        ("raises", "raised RuntimeError: no such pipeline here"),
    ],
)
def test_compare_plugin_errors_exit_2_with_one_line(
    plugin: str, function: str, message: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if message is None:  # the good plugin with a module that does not exist
        function, plugin, message = "build", "no_such_module_xyz", "no module named"
    result = runner.invoke(app, ["compare", "--model", f"{plugin}:{function}", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert not Path("results").exists()


@pytest.mark.parametrize("command", ["compare", "maxbatch", "run"])
def test_a_broken_plugin_is_refused_before_the_outputs_and_inputs(
    plugin: str, command: str, tmp_path: Path
) -> None:
    """The plugin's models are checked with the settings, first: a broken one is the error,
    not the foreign --out file or the missing --data that come after it."""
    foreign = tmp_path / "notes.txt"
    foreign.write_text("mine\n")
    ref = f"{plugin}:wrong_output"
    if command == "run":
        suite = tmp_path / "suite.toml"
        suite.write_text(f'[suite]\nbackbones = ["{ref}"]\ndevice = "cpu"\ndata = "nope.csv"\n')
        args = ["run", str(suite), "--out", str(foreign)]
    else:
        args = [command, "--model", ref, "--device", "cpu", "--out", str(foreign)]
        args += ["--data", "nope.csv"] if command == "compare" else []
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "expected (N, num_classes)" in result.stderr, result.stderr
    assert foreign.read_text() == "mine\n"


def test_model_ref_syntax_is_checked_before_torch(plugin: str) -> None:
    result = runner.invoke(app, ["compare", "--model", "not a ref"])
    assert result.exit_code == 2
    assert "expected module:function" in result.stderr


@pytest.mark.real_models
def test_compare_runs_a_plugin_end_to_end(plugin: str, tmp_path: Path) -> None:
    ref = f"{plugin}:build"
    out = tmp_path / "r.json"
    args = [a for a in TINY_ARGS if a not in ("--backbone", "resnet18")]
    result = runner.invoke(app, ["compare", *args, "--model", ref, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = {r["pipeline"]: r for r in report["results"]}
    assert {r["backbone"] for r in report["results"]} == {ref}
    assert rows["direct48"]["feature_map"] == [48, 48]
    assert rows["upscale224"]["feature_map"] == [56, 56]
    assert all(r["error"] is None for r in report["results"])


def test_compare_takes_several_backbones_into_one_report(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = [*TINY_ARGS, "--backbone", "mobilenet_v3_small", "--out", str(out)]
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [r["backbone"] for r in report["results"]] == ["resnet18"] * 2 + [
        "mobilenet_v3_small"
    ] * 2
    assert result.stdout.count("upscale224 vs direct48") == 2  # one table per backbone


def test_backbone_all_and_model_refs(plugin: str) -> None:
    ref = f"{plugin}:build"
    assert backbone_names(["all"], [ref]) == (*BACKBONES, ref)
    assert backbone_names(None, [ref]) == (ref,)
    assert backbone_names(None, None) == ("vgg16",)
    assert backbone_names(["resnet18", "resnet18"], None) == ("resnet18",)


def test_models_command_lists_a_plugin(plugin: str) -> None:
    ref = f"{plugin}:build"
    result = runner.invoke(app, ["models", "--json", "--model", ref])
    assert result.exit_code == 0, result.output
    data = {(m["backbone"], m["pipeline"]): m for m in json.loads(result.stdout)}
    assert len(data) == 2 * (len(BACKBONES) + 1)
    assert data[(ref, "direct48")]["params_total"] == PLUGIN_PARAMS
    assert data[(ref, "direct48")]["feature_map"] == [48, 48]
    assert data[(ref, "upscale224")]["family"] == "plugin"


def test_entry_point_plugin_by_name(plugin: str, tmp_path: Path) -> None:
    """An installed package's `emobench.backbones` entry point, as importlib sees it."""
    name = f"tiny_{plugin[-8:]}"
    dist = tmp_path / "mine" / f"{plugin}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {plugin}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[emobench.backbones]\n{name} = {plugin}:build\n")
    sys.path.insert(0, str(tmp_path / "mine"))
    model = build_model(name, "direct48")
    assert model.feature_map == (48, 48) and model.backbone_name == name
    assert entry_point_backbones()[name] == f"{plugin}:build"  # what `emobench models` lists


def test_maxbatch_child_imports_the_plugin_only_from_the_passed_folder(
    plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emobench.measure import search as mb
    from emobench.scenarios.maxbatch import MaxBatchConfig, _child_probe

    config = MaxBatchConfig(backbone=f"{plugin}:build", pipelines=("direct48",), device="cpu")
    config.validate()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the child's cwd does not hold the plugin
    probe = _child_probe(config, "direct48", batch=2, budget=2**40)
    assert probe.outcome == mb.OK, probe.message


# -- a plugin's own code is fenced (issue #26) ----------------------------------------------------


def test_a_real_ctrl_c_during_a_plugin_import_still_ends_as_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGINT that arrives while the module imports is the user's: exit 130, as anywhere
    else. (A module that raises KeyboardInterrupt itself, with no SIGINT, exits 2: the
    bad-input matrix.)"""
    name = f"emoplug_sigint_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(30)\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["compare", "--model", f"{name}:build", "--device", "cpu"])
    assert result.exit_code == 130, result.output
    assert result.stderr == "error: interrupted; no report was written\n"


def test_an_entry_points_failure_names_the_backbone_option(
    plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"exits_{plugin[-8:]}"
    (tmp_path / "mine" / f"{plugin}_exits.py").write_text("import sys\nsys.exit(4)\n")
    dist = tmp_path / "mine" / f"{plugin}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {plugin}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[emobench.backbones]\n{name} = {plugin}_exits:b\n")
    sys.path.insert(0, str(tmp_path / "mine"))
    result = runner.invoke(app, ["compare", "--backbone", name, "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: --backbone {name}: during import, module {plugin}_exits exited (SystemExit 4)\n"
    )


def test_without_a_command_a_plugin_error_names_the_plugin(plugin: str) -> None:
    from emobench.errors import PluginError

    with pytest.raises(PluginError, match=rf"^plugin {plugin}:missing: module {plugin} has no"):
        get_backbone(f"{plugin}:missing")
    with pytest.raises(PluginError, match=r"^plugin 'not a:ref': expected module:function"):
        get_backbone("not a:ref")


@pytest.mark.parametrize("option", ["--backbone", "--model"])
def test_compare_names_the_option_the_plugin_came_from(plugin: str, option: str) -> None:
    result = runner.invoke(app, ["compare", option, f"{plugin}:raises", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {option} {plugin}:raises: {plugin}:raises(")


def test_a_missing_dependency_is_not_reported_as_the_missing_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin imports a module whose name starts its own: the dependency is what is
    missing, not the plugin."""
    name = f"emoplug_dep_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import emoplug_d\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["compare", "--model", f"{name}:build", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: --model {name}:build: importing {name} failed: No module named 'emoplug_d'\n"
    )
