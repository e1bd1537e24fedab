from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench.cli import app
from emobench.config import RunConfig, load_suite, parse_device_spec
from emobench.errors import UsageError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY_SUITE = """
[suite]
backbones = ["resnet18"]
device = "cpu"
batch_sizes = [2]
warmup_iters = 0
min_iters = 2
min_time_s = 0
max_time_s = 0.001
limits_time_s = 0.01
preprocess_images = 4
"""


@pytest.mark.parametrize("name", ["default.toml", "ci.toml", "gpu.toml"])
def test_shipped_suites_load(name: str) -> None:
    config = load_suite(CONFIGS / name)
    assert config.name == name.removesuffix(".toml")
    assert config.pipelines == ("upscale224", "direct48")


def test_default_suite_matches_compare_defaults() -> None:
    config = load_suite(CONFIGS / "default.toml")
    defaults = RunConfig()
    fields = ("backbones", "batch_sizes", "warmup_iters", "min_iters", "min_time_s")
    for field in (*fields, "max_time_s", "target_ci", "preprocess_images"):
        assert getattr(config, field) == getattr(defaults, field), field


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[suite]\nbackbone = ["vgg16"]\n', "unknown key 'backbone'"),
        ('[suite]\nbatch_sizes = "16"\n', "key 'batch_sizes' must be a list of integers"),
        ("[suite]\nmin_iters = 2.5\n", "key 'min_iters' must be an integer"),
        ("[suite]\npretrained = 1\n", "key 'pretrained' must be a boolean"),
        ('[suite]\nbackbones = ["alexnet"]\n', "unknown backbone 'alexnet'"),
        ("[suite]\nbatch_sizes = [0]\n", "batch size must be a positive integer"),
        ("[other]\nx = 1\n", "unknown key 'other'"),
        ("[suite\n", "invalid TOML"),
    ],
)
def test_bad_suite_names_file_key_and_expectation(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(body)
    with pytest.raises(UsageError) as info:
        load_suite(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_device_specs() -> None:
    assert parse_device_spec("cuda:1") == ("cuda", 1)
    assert parse_device_spec("auto") == ("auto", None)
    for bad in ("gpu", "cuda:x", "cuda:-1", ""):
        with pytest.raises(UsageError):
            parse_device_spec(bad)


def test_run_and_ci_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(suite), "--out", "r1.json"])
    assert first.exit_code == 0, first.output
    data = json.loads((tmp_path / "r1.json").read_text())
    assert data["kind"] == "run" and data["config"]["name"] == "tiny"
    saved = runner.invoke(app, ["baseline", "save", "r1.json", "--name", "tiny"])
    assert saved.exit_code == 0
    ci = runner.invoke(
        app,
        [
            "ci",
            str(suite),
            "--baseline",
            "tiny",
            "--fail-on",
            "exact",
            "--markdown",
            "summary.md",
            "--out",
            "r2.json",
        ],
    )
    assert ci.exit_code == 0, ci.output
    assert "regression check" in ci.stdout
    assert "the same as this report's" in ci.stdout  # results/baselines/tiny/<this class>.json
    assert "| exact |" in (tmp_path / "summary.md").read_text()


def test_ci_bad_baseline_fails_before_running(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    result = CliRunner().invoke(app, ["ci", str(suite), "--baseline", str(tmp_path / "no.json")])
    assert result.exit_code == 2 and "no such report" in result.stderr
