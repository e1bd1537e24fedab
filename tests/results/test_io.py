from __future__ import annotations

import dataclasses
import json
import os
import stat
import statistics
from pathlib import Path

import pytest

from emobench import results as R
from emobench.config import RunConfig
from emobench.errors import ReportError
from emobench.scenarios.compare import run_benchmark
from tests.conftest import TINY
from tests.paths import DOCS


@pytest.fixture(scope="module")
def real_report() -> R.Report:
    """A real (tiny) run of both pipelines, shared by the tests in this module."""
    config = RunConfig(backbones=("resnet18",), device="cpu", **TINY)  # type: ignore[arg-type]
    return run_benchmark(config)


def test_report_has_every_measurement(real_report: R.Report) -> None:
    assert [r.pipeline for r in real_report.results] == ["upscale224", "direct48"]
    up, dn = real_report.results
    assert (up.input_size, dn.input_size) == (224, 48)
    assert up.memory.input_bytes_per_image == 3 * 224 * 224 * 4
    assert dn.memory.input_bytes_per_image == 3 * 48 * 48 * 4
    assert up.params.unused == 0 and dn.params.unused == 0
    assert up.params.total == 11_180_103
    assert up.flops_per_image and dn.flops_per_image
    assert up.latency is not None and up.latency.stats.n >= 2 and up.latency.stats.unit == "ms"
    assert [b.batch_size for b in up.throughput] == [2]
    assert [b.batch_size for b in dn.end_to_end] == [2]
    assert {p.path for p in up.preprocess} == {"per_image_pil", "batched_tensor"}
    assert up.memory.peak is not None and up.memory.peak.cpu_peak_rss_growth_bytes is not None
    assert up.memory.peak.cuda_peak_allocated_bytes is None  # CPU: absent, never 0
    env = real_report.environment
    assert env["device"] == "cpu" and env["num_threads"] >= 1 and env["gpu_name"] is None
    assert real_report.config["backbones"] == ["resnet18"]
    assert real_report.wall_time_s > 0


def test_json_round_trip(real_report: R.Report, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    R.save(real_report, path)
    data = json.loads(path.read_text())
    assert data["schema"] == "emobench.report" and data["schema_version"] == R.SCHEMA_VERSION
    loaded = R.load(path)
    assert loaded == real_report
    assert R.to_dict(loaded) == data
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_metric_rows_and_ratio_orientation(real_report: R.Report) -> None:
    rows = {r.key: r for r in R.metric_rows(real_report)}
    params = rows["params_total"]
    assert params.ratio == pytest.approx(params.upscale224 / params.direct48)
    tput = rows["throughput_b2_images_per_s"]
    assert tput.higher_is_better
    # headline ratios are measured in interleaved rounds: the median of the per-round ratios
    paired = real_report.paired_ratio("resnet18", "throughput_b2_images_per_s")
    assert paired is not None and tput.ratio == paired.ratio
    up = real_report.result("resnet18", "upscale224").throughput[0].timing.stats.samples
    dn = real_report.result("resnet18", "direct48").throughput[0].timing.stats.samples
    # one ratio per round, from that round's two samples (time upscale224 / time direct48)
    assert paired.ratios == pytest.approx([u / d for u, d in zip(up, dn, strict=True)])
    assert paired.ratio == pytest.approx(statistics.median(paired.ratios))
    assert rows["params_unused"].ratio is None  # 0 / 0 is undefined, not 1 or 0
    assert rows["input_bytes_per_image"].ratio == pytest.approx(224**2 / 48**2)
    assert "peak_cuda_allocated_bytes" not in rows  # absent on both sides: no row


def test_ratio_helper() -> None:
    assert R.ratio(10.0, 2.0, higher_is_better=False) == 5.0
    assert R.ratio(10.0, 2.0, higher_is_better=True) == 0.2
    assert R.ratio(None, 2.0, higher_is_better=False) is None
    assert R.ratio(3.0, 0.0, higher_is_better=False) is None


def test_load_rejects_bad_files(real_report: R.Report, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no such report"):
        R.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        R.load(bad)
    bad.write_text('{"hello": 1}')
    with pytest.raises(ReportError, match="not an emobench report"):
        R.load(bad)
    newer = R.to_dict(real_report) | {"schema_version": R.SCHEMA_VERSION + 1}
    bad.write_text(json.dumps(newer))
    with pytest.raises(ReportError, match="newer than this emobench"):
        R.load(bad)
    broken = R.to_dict(real_report)
    del broken["results"][0]["params"]
    bad.write_text(json.dumps(broken))
    with pytest.raises(ReportError, match="malformed report"):
        R.load(bad)
    wrong_type = R.to_dict(real_report)
    wrong_type["results"][0]["params"]["total"] = "many"
    bad.write_text(json.dumps(wrong_type))
    with pytest.raises(ReportError, match="malformed"):
        R.load(bad)


def test_write_atomic_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("old")

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        R.write_atomic(path, Boom())  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_report_is_plain_dataclasses(real_report: R.Report) -> None:
    assert dataclasses.is_dataclass(real_report)
    json.dumps(dataclasses.asdict(real_report))  # every field serialises


def test_latency_cold_start_is_the_models_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import emobench.scenarios.compare as runner_mod

    order: list[str] = []
    real_time_loop, real_count = runner_mod.time_loop, runner_mod.count_parameters

    def time_loop(*args, **kwargs):
        order.append("timed")
        return real_time_loop(*args, **kwargs)

    def count_parameters(*args, **kwargs):
        order.append("counted")
        return real_count(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "time_loop", time_loop)
    monkeypatch.setattr(runner_mod, "count_parameters", count_parameters)
    config = RunConfig(  # type: ignore[arg-type]
        backbones=("resnet18",), pipelines=("direct48",), device="cpu", **TINY
    )
    steps: list[tuple[str, int, int]] = []
    run_benchmark(config, progress=lambda d, a, b: steps.append((d, a, b)))
    assert order[:2] == ["timed", "counted"]  # latency first, then the counting forward
    assert steps[-1][1] == steps[-1][2]  # the step total matches the steps taken
    assert [a for _, a, _ in steps] == list(range(len(steps)))


def test_metric_table_in_docs_is_the_catalogue() -> None:
    """The metric table in docs/metrics.md is generated from results.metrics and cannot drift
    from it."""

    from emobench.results.metrics import CATALOGUE, TABLE_BEGIN, TABLE_END, markdown_table

    docs = DOCS / "metrics.md"
    page = docs.read_text(encoding="utf-8")
    start, end = page.index(TABLE_BEGIN), page.index(TABLE_END) + len(TABLE_END)
    assert page[start:end] + "\n" == markdown_table(), "run: make docs"
    keys = [m.key for m in CATALOGUE]
    assert len(keys) == len(set(keys))  # every metric defined once
    assert all(m.how and m.unit and m.kind in ("exact", "portable", "machine") for m in CATALOGUE)


def test_catalogue_expands_per_batch_blocks_in_report_order() -> None:
    from emobench.results.metrics import metric_defs

    keys = [d.key for d in metric_defs([1, 8])]
    i = keys.index("throughput_b1_images_per_s")
    assert keys[i : i + 4] == [
        "throughput_b1_images_per_s",
        "end_to_end_b1_images_per_s",
        "throughput_b8_images_per_s",
        "end_to_end_b8_images_per_s",
    ]
    j = keys.index("train_b1_images_per_s")
    assert keys[j + 5] == "train_b8_images_per_s"  # five train metrics per batch size


# -- issue #13: what a report file may be, and how it is written ---------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"results": []}, "a run report with no results"),
        ({"schema_version": 0}, "schema version 0 is not one this emobench reads"),
        ({"schema_version": True}, "no integer schema_version"),
        ({"kind": "weird"}, "unknown report kind 'weird'"),
        ({"kind": "maxbatch", "maxbatch": []}, "a maxbatch report with no maxbatch"),
    ],
)
def test_load_checks_kind_version_and_results(
    real_report: R.Report, tmp_path: Path, change: dict, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(R.to_dict(real_report) | {"kind": "run"} | change))
    with pytest.raises(ReportError, match=message):
        R.load(bad)


def test_deeply_nested_json_is_a_report_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ReportError, match="nested too deeply"):
        R.load(deep)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        R.write_atomic(tmp_path / "new.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o666 & ~umask


def test_replacing_keeps_the_mode_and_the_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    R.write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_special_files_are_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="FIFO"):
        R.write_atomic(fifo, "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_check_output_refuses_special_and_foreign_files(tmp_path: Path) -> None:
    from emobench.errors import UsageError
    from emobench.files import check_output

    with pytest.raises(UsageError, match="--out /dev/null: is a character device"):
        check_output(Path("/dev/null"), "--out", report=True)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(UsageError, match=r"not an emobench report; .* or pass --force"):
        check_output(notes, "--out", report=True)
    check_output(notes, "--out", report=True, force=True)
    check_output(notes, "--markdown")  # only reports are protected this way
    with pytest.raises(UsageError, match=r"--markdown .*: is a folder"):
        check_output(tmp_path, "--markdown")
