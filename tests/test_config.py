from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench.cli import app
from emobench.config import RunConfig, load_suite
from emobench.device import parse_device_spec
from emobench.errors import UsageError
from tests.factories import TINY_SUITE
from tests.paths import CONFIGS


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
        ("[suite]\nmin_time_s = nan\n", "key 'min_time_s' must be a finite number, got nan"),
        ("[suite]\nmax_time_s = inf\n", "key 'max_time_s' must be a finite number, got inf"),
        ("[suite]\ntarget_ci = -inf\n", "key 'target_ci' must be a finite number"),
        ("[suite]\nseed = -1\n", "seed must be >= 0"),
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


def test_option_names_match_the_registry() -> None:
    """config knows the names without importing torch; they must stay the registry's."""
    from emobench import config as config_mod
    from emobench.models import BACKBONES, PIPELINES

    assert tuple(BACKBONES) == config_mod.BACKBONE_NAMES
    assert tuple(PIPELINES) == config_mod.ALL_PIPELINES
    assert config_mod.INPUT_SIZES == PIPELINES


def test_suite_that_is_not_a_regular_file(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "s.toml")
    with pytest.raises(UsageError, match="is a FIFO"):
        load_suite(tmp_path / "s.toml")


@pytest.mark.parametrize("command", ["run", "compare"])
def test_unreadable_data_is_one_error_line_from_a_suite_or_the_flag(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One validation path for --data and a suite's `data` (a suite's gave a traceback)."""
    import os

    data = tmp_path / "fer.csv"
    data.write_text("pixels\n" + " ".join(["1"] * 2304) + "\n")
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE + f'data = "{data}"\n')
    real_open = os.open

    def denied(file, flags, *args, **kwargs):
        if Path(file) == data:
            raise PermissionError(13, "Permission denied")
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    monkeypatch.chdir(tmp_path)
    args = ["run", str(suite)] if command == "run" else ["compare", "--data", str(data)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"error: --data {data}: cannot open (Permission denied)"]
    assert not (tmp_path / "results").exists()


def test_input_memory_estimate_refuses_what_cannot_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import psutil

    from emobench.config import check_input_memory, input_bytes

    config = RunConfig(batch_sizes=(1000,), preprocess_images=64)
    host, device = input_bytes(config)
    float_batch = 1000 * 3 * 224 * 224 * 4
    assert device == float_batch and host == 1000 * 48 * 48 + float_batch
    direct_only = RunConfig(batch_sizes=(1000,), pipelines=("direct48",))
    assert input_bytes(direct_only)[1] == 1000 * 3 * 48 * 48 * 4
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=host))
    check_input_memory(config)  # exactly fits
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=host - 1))
    with pytest.raises(UsageError) as info:
        check_input_memory(config)
    message = str(info.value)
    assert message.startswith("--batch-size 1000 needs at least 0.6 GiB for its inputs alone")
    assert "more than the 0.6 GiB of available RAM" in message
