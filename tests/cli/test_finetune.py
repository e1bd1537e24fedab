"""`emobench finetune` and the reading of its report: the command, bad input, the trade-off,
claims."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from emobench import results as R
from emobench.cli import app
from emobench.readout.tradeoff import build_tradeoff, pareto_front, training_speedup
from tests.conftest import small_cnn
from tests.factories import PIX, csv_file, make_report


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """One intra-op thread: on a shared 2-core machine more only adds contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


cli = CliRunner()


FT_ARGS = [
    "--backbone", "resnet18", "--device", "cpu", "--epochs", "3", "--batch-size", "16",
    "--workers", "0", "--optimizer", "adamw", "--lr", "0.01", "--no-pretrained",
]  # fmt: skip


@pytest.fixture
def small_models(monkeypatch: pytest.MonkeyPatch) -> None:
    import emobench.scenarios.finetune.run as ft_run

    monkeypatch.setattr(ft_run, "build_model", small_cnn)


@pytest.fixture(scope="module")
def ft_report(tmp_path_factory: pytest.TempPathFactory, fer_csv: Path) -> Path:
    import emobench.scenarios.finetune.run as ft_run

    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "ft.json"
    mp = pytest.MonkeyPatch()
    mp.setattr(ft_run, "build_model", small_cnn)  # run_finetune looks it up there, at call time
    try:
        result = cli.invoke(
            app,
            [
                "finetune",
                "--data",
                str(fer_csv),
                *FT_ARGS,
                "--target-acc",
                "0.3",
                "--checkpoint-dir",
                str(tmp / "ck"),
                "--out",
                str(out),
            ],
        )
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    assert "report written to" in result.output
    assert "epoch 3/3: loss" in result.output  # plain progress lines: not a terminal
    assert "fine-tune on cpu" in result.output
    assert "Usage=PublicTest" in result.output and "Usage=PrivateTest" in result.output
    return out


def test_finetune_command_writes_a_finetune_report(ft_report: Path) -> None:
    rep = R.load(ft_report)
    assert rep.kind == "finetune" and rep.finetune is not None
    assert rep.config["pretrained"] is False and rep.config["optimizer"] == "adamw"
    assert rep.config["seeds_used"] == [0]
    assert len(rep.finetune.runs) == 2 and len(rep.finetune.paired) == 1
    assert all(r.test.accuracy > 2 / 7 for r in rep.finetune.runs)
    assert all(Path(r.checkpoint_best).exists() for r in rep.finetune.runs)


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([f"9,{PIX}"], "line 2 has emotion '9'"),
        ([f"0,{' '.join(['7'] * 10)}"], "line 2 has 10 pixel values"),
    ],
)
def test_bad_data_is_one_error_line_exit_2_nothing_written(
    tmp_path: Path, rows: list[str], needle: str, small_models: None
) -> None:
    bad = csv_file(tmp_path / "bad.csv", rows)
    out = tmp_path / "r.json"
    result = cli.invoke(app, ["finetune", "--data", str(bad), *FT_ARGS, "--out", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert not out.exists() and not (tmp_path / "results").exists()


def test_bad_option_fails_before_reading_data(tmp_path: Path) -> None:
    result = cli.invoke(
        app, ["finetune", "--data", str(tmp_path / "missing.csv"), "--optimizer", "rmsprop"]
    )
    assert result.exit_code == 2 and "error: --optimizer rmsprop" in result.output


def test_report_prints_the_tradeoff_table(ft_report: Path, tmp_path: Path) -> None:
    compare = tmp_path / "cmp.json"
    R.save(make_report(backbones=("resnet18",)), compare)
    md, csv_out, png = tmp_path / "t.md", tmp_path / "t.csv", tmp_path / "t.png"
    args = ["report", str(ft_report), str(compare), "--markdown", str(md), "--csv", str(csv_out)]
    result = cli.invoke(app, [*args, "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "speed against accuracy" in result.output
    assert "direct48" in result.output and "resnet18" in result.output
    text = md.read_text()
    assert "| resnet18 | direct48" in text and "Pareto" in text
    assert png.stat().st_size > 10_000

    loaded = [(ft_report, R.load(ft_report)), (compare, R.load(compare))]
    rows = {r.pipeline: r for r in build_tradeoff(loaded).rows}
    ft = loaded[0][1].finetune
    assert ft is not None
    assert rows["direct48"].values["accuracy"] == ft.runs_for("direct48")[0].test.accuracy
    # latency comes from the compare report (median of TIGHT_DN), not the fine-tune's own
    assert rows["direct48"].values["latency_b1_ms"] == pytest.approx(10.0, abs=0.05)
    assert rows["direct48"].sources["latency_b1_ms"].startswith("cmp.json")
    assert rows["upscale224"].values["params"] == 134_289_223
    assert (
        rows["direct48"].values["train_s_per_epoch"] == ft.runs_for("direct48")[0].train_s_per_epoch
    )


def test_pareto_front() -> None:
    # (cost, accuracy): the second is dominated by the first; ties on both are both kept
    points = [(1.0, 0.8), (2.0, 0.7), (3.0, 0.9), (3.0, 0.9), (0.5, 0.5)]
    assert pareto_front(points) == [True, False, True, True, True]


def test_claims_checks_training_speed_from_a_finetune_report(ft_report: Path) -> None:
    rep = R.load(ft_report)
    speed = training_speedup(rep)["resnet18"]
    ft = rep.finetune
    assert ft is not None
    up, dn = (ft.runs_for(p)[0].train_s_per_epoch for p in ("upscale224", "direct48"))
    assert speed == pytest.approx(up / dn)
    from emobench.readout.claims import evaluate_reports, interval_verdict

    (verdict,) = [v for v in evaluate_reports([(ft_report, rep)]).verdicts if v.key == "training"]
    # the verdict is read from the interval of the per-epoch ratio, not from the point
    assert verdict.measured == pytest.approx(speed)
    assert verdict.threshold is not None
    assert verdict.verdict == interval_verdict(verdict.low, verdict.high, verdict.threshold)
    result = cli.invoke(app, ["claims", str(ft_report)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "training 5-10x" in line]
    (row,) = [line for line in lines if "│" in line]  # the table's row; a "why" line follows
    assert verdict.verdict in row


def test_tradeoff_takes_max_batch_from_a_maxbatch_report(ft_report: Path) -> None:
    from tests.factories import maxbatch_report

    mb = maxbatch_report(250, 6000)
    mb = dataclasses.replace(
        mb, maxbatch=[dataclasses.replace(m, backbone="resnet18") for m in mb.maxbatch]
    )
    loaded = [(Path("mb.json"), mb), (ft_report, R.load(ft_report))]
    rows = {r.pipeline: r for r in build_tradeoff(loaded).rows}
    assert rows["upscale224"].values["max_batch"] == 250
    assert rows["direct48"].values["max_batch"] == 6000
    assert rows["direct48"].sources["max_batch"] == "mb.json (infer)"
    # without a compare report, latency and parameters are the fine-tune's own
    ft = R.load(ft_report).finetune
    assert ft is not None
    run = ft.runs_for("direct48")[0]
    assert rows["direct48"].values["latency_b1_ms"] == run.test.latency_b1_ms
    assert rows["direct48"].values["params"] == run.params_total


# -- hardening (issue #26) -------------------------------------------------------------------------

ONE_EPOCH = [
    "--backbone", "resnet18", "--device", "cpu", "--epochs", "1", "--batch-size", "32",
    "--workers", "0", "--optimizer", "adamw", "--no-pretrained", "--pipeline", "direct48",
]  # fmt: skip


def _error_line(result) -> str:  # type: ignore[no-untyped-def]
    """The one `error:` line, the last on stderr (progress lines may come before it)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert "Traceback" not in result.output
    return errors[0]


def test_held_checkpoints_need_resume_or_force_and_out_needs_force(
    tmp_path: Path, fer_csv: Path, small_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emobench.data.labeled import load_labeled
    from emobench.scenarios.finetune.settings import FinetuneConfig, default_checkpoint_dir

    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    base = ["finetune", "--data", str(fer_csv), *ONE_EPOCH]
    refused = cli.invoke(app, [*base, "--out", str(notes)])
    assert refused.exit_code == 2
    assert "exists and is not an emobench report" in _error_line(refused)
    assert notes.read_text() == "my notes\n" and not (tmp_path / "results").exists()

    first = cli.invoke(app, [*base, "--out", str(notes), "--force"])
    assert first.exit_code == 0, first.output
    assert R.load(notes).kind == "finetune"
    # the default folder: results/finetune/<backbone>-<data name>-<12 hex of data and recipe>
    config = FinetuneConfig(
        backbone="resnet18", epochs=1, batch_size=32, optimizer="adamw", pretrained=False
    )
    data_hash = load_labeled(fer_csv).content_sha256()
    folder = default_checkpoint_dir(config, fer_csv, data_hash)
    assert folder.parent == Path("results/finetune") and folder.name.startswith("resnet18-fer-")
    assert sorted(p.name for p in folder.iterdir()) == [
        "direct48-seed0-best.pt",
        "direct48-seed0-last.pt",
        "direct48-seed0-state.pt",
    ]
    assert R.load(notes).finetune.runs[0].checkpoint_last == str(folder / "direct48-seed0-last.pt")  # type: ignore[union-attr]

    again = cli.invoke(app, [*base, "--out", "again.json"])
    assert again.exit_code == 2
    line = _error_line(again)
    assert f"{folder} holds checkpoints of a run (direct48-seed0-best.pt)" in line
    assert "--resume to continue it, or --force to start over" in line
    assert not Path("again.json").exists()

    resumed = cli.invoke(app, [*base, "--out", "again.json", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "epoch 1/1" not in resumed.output  # nothing left to train
    assert R.load(Path("again.json")).finetune.runs[0].resumed_from_epoch == 1  # type: ignore[union-attr]

    over = cli.invoke(app, [*base, "--out", "again.json", "--force"])
    assert over.exit_code == 0, over.output
    assert "epoch 1/1" in over.output
    assert R.load(Path("again.json")).finetune.runs[0].resumed_from_epoch == 0  # type: ignore[union-attr]

    other = cli.invoke(app, [*base, "--lr", "0.02", "--resume"])  # another recipe, another folder
    assert other.exit_code == 2
    line = _error_line(other)
    assert "--resume: no checkpoint to resume in results/finetune/resnet18-fer-" in line
    assert "the default folder is named after the data and the recipe" in line


def test_sigterm_during_training_keeps_whole_checkpoints_and_says_how_to_resume(
    tmp_path: Path,
    fer_csv: Path,
    small_models: None,
    sigterm_guard: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import signal

    from emobench.scenarios.finetune.checkpoint import Checkpoints

    real_save = Checkpoints.save

    def save_then_sigterm(self, trainer):  # type: ignore[no-untyped-def]
        real_save(self, trainer)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Checkpoints, "save", save_then_sigterm)
    ck, out = tmp_path / "ck", tmp_path / "r.json"
    args = ["finetune", "--data", str(fer_csv), *ONE_EPOCH, "--epochs", "2"]
    args += ["--checkpoint-dir", str(ck), "--out", str(out)]
    result = cli.invoke(app, args)
    assert result.exit_code == 143, result.output
    assert _error_line(result) == (
        f"error: terminated (SIGTERM); checkpoints are in {ck}: rerun with --resume to continue"
    )
    assert not out.exists()
    assert sorted(p.name for p in ck.iterdir()) == [
        "direct48-seed0-best.pt",
        "direct48-seed0-last.pt",
        "direct48-seed0-state.pt",
    ]
    monkeypatch.undo()
    import emobench.scenarios.finetune.run as ft_run

    monkeypatch.setattr(ft_run, "build_model", small_cnn)
    resumed = cli.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    run = R.load(out).finetune.runs[0]  # type: ignore[union-attr]
    assert run.resumed_from_epoch == 1 and [e.epoch for e in run.epochs] == [1, 2]


def test_a_diverged_fine_tune_writes_its_report_with_nulls(
    tmp_path: Path, fer_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emobench.scenarios.finetune.run as ft_run
    from tests.scenarios.test_finetune import diverging_cnn

    monkeypatch.setattr(ft_run, "build_model", diverging_cnn)
    out = tmp_path / "r.json"
    args = ["finetune", "--data", str(fer_csv), *ONE_EPOCH, "--epochs", "2", "--lr", "10"]
    result = cli.invoke(app, [*args, "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning: direct48 seed 0: the training loss was not finite (nan)" in result.stderr
    rep = R.load(out)
    assert [e.train_loss for e in rep.finetune.runs[0].epochs] == [None, None]  # type: ignore[union-attr]
    assert any("recorded as null" in n for n in rep.notes)


def test_missing_weights_say_no_pretrained(
    tmp_path: Path, fer_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.error

    def offline(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    args = ["finetune", "--data", str(fer_csv), "--backbone", "resnet18", "--device", "cpu"]
    result = cli.invoke(app, [*args, "--checkpoint-dir", str(tmp_path / "ck")])
    assert result.exit_code == 2
    line = _error_line(result)
    assert "or pass --no-pretrained (random initialisation" in line
    assert "without --pretrained" not in line


def test_an_emulated_precision_is_refused_as_compare_refuses_it(
    tmp_path: Path, fer_csv: Path, no_native_bf16: None
) -> None:
    args = ["finetune", "--data", str(fer_csv), *ONE_EPOCH, "--precision", "bf16"]
    result = cli.invoke(app, [*args, "--checkpoint-dir", str(tmp_path / "ck")])
    assert result.exit_code == 2
    assert "--precision bf16: this CPU has no native bf16" in _error_line(result)
    assert "pass --allow-emulated" in _error_line(result)
    assert not (tmp_path / "ck").exists()


def test_help_names_every_backbone_source_and_force() -> None:
    result = cli.invoke(app, ["finetune", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Any backbone of `emobench models`, plugins included" in text
    assert "--force" in text and "--allow-emulated" in text
    assert "in (0, 10]" in text  # --lr's range


@pytest.fixture
def turing_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake sm_75 GPU (Tesla T4): fp16 native, bf16 only emulated."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")


def test_bf16_before_sm_80_is_refused_as_compare_refuses_it(
    tmp_path: Path, fer_csv: Path, turing_gpu: None
) -> None:
    args = ["finetune", "--data", str(fer_csv), *ONE_EPOCH, "--precision", "bf16"]
    args[args.index("cpu")] = "cuda:1"
    result = cli.invoke(app, [*args, "--checkpoint-dir", str(tmp_path / "ck")])
    assert result.exit_code == 2
    line = _error_line(result)
    assert "--precision bf16: Tesla T4 is sm_75; native bf16 needs sm_80 or newer" in line
    assert "pass --allow-emulated" in line
    assert not (tmp_path / "ck").exists()
