"""Run settings and suite files: shipped suites load, bad keys named with their file, options match
the registry, the input-memory estimate refuses what cannot fit."""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from emobench import config as config_mod
from emobench.config import RunConfig, load_suite
from emobench.errors import UsageError
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


def test_option_names_match_the_registry() -> None:
    """config knows the names without importing torch; they must stay the registry's."""
    from emobench import config as config_mod
    from emobench.models import BACKBONES, PIPELINES

    assert tuple(BACKBONES) == config_mod.BACKBONE_NAMES
    assert tuple(PIPELINES) == config_mod.ALL_PIPELINES
    assert config_mod.INPUT_SIZES == PIPELINES


def test_suite_that_is_not_a_regular_file(tmp_path: Path) -> None:

    os.mkfifo(tmp_path / "s.toml")
    with pytest.raises(UsageError, match="is a FIFO"):
        load_suite(tmp_path / "s.toml")


def test_input_memory_estimate_refuses_what_cannot_fit(monkeypatch: pytest.MonkeyPatch) -> None:

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


def test_suite_accepts_speed_options(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[suite]\nprecision = "bf16"\nchannels_last = true\nmode = "both"\nthreads = 2\n'
    )
    config = config_mod.load_suite(path)
    assert (config.precision, config.channels_last, config.mode, config.threads) == (
        "bf16",
        True,
        "both",
        2,
    )
    path.write_text("[suite]\nthreads = 0\n")
    with pytest.raises(config_mod.UsageError, match="--threads must be >= 1"):
        config_mod.load_suite(path)
