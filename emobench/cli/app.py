"""The Typer app: the root help and every command's registration, in the order `--help` lists
them. Each command lives in the module of its group; this file only wires them."""

from __future__ import annotations

import typer

from emobench.cli import compare, export, finetune, gate, maxbatch, readout, stream, sweep
from emobench.cli.shell import HouseGroup

ROOT_HELP = """Benchmark 48x48 emotion-recognition CNNs: upscale-to-224 vs direct 48x48.

\b
Examples:
  emobench compare --backbone vgg16 --device cpu --quick
  emobench compare --backbone resnet18 --device cuda --batch-size 16 --batch-size 64
  emobench maxbatch --backbone vgg16 --device cuda --mode train --budget 8GiB
  emobench run configs/ci.toml --out results/ci.json
  emobench check results/ci.json --baseline ci --rule portable:30%
  emobench report results/*.json --csv all.csv --plot curves.png
  emobench <command> --help   (every option of one command)
"""


app = typer.Typer(
    cls=HouseGroup,
    help=ROOT_HELP,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    # click's plain help: it wraps long lines instead of cutting option names at 80 columns
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)


def _root() -> None:
    """Benchmark 48x48 emotion-recognition CNNs: upscale-to-224 vs direct 48x48."""


baseline_app = typer.Typer()

app.callback()(_root)
app.command("compare")(compare.compare)
app.command("maxbatch")(maxbatch.maxbatch)
app.command("stream")(stream.stream)
app.command("run")(compare.run_suite)
app.command("sweep")(sweep.sweep_cmd)
app.add_typer(baseline_app, name="baseline")
baseline_app.callback()(gate.baseline_root)
baseline_app.command("save")(gate.baseline_save)
baseline_app.command("list")(gate.baseline_list)
app.command("check")(gate.check_cmd)
app.command("ci")(gate.ci_cmd)
app.command("report")(readout.report_cmd)
app.command("claims")(readout.claims_cmd)
app.command("finetune")(finetune.finetune_cmd)
app.command("export")(export.export_cmd)
app.command("models")(readout.models_cmd)
app.command("calibrate")(gate.calibrate_cmd)
app.command("env")(readout.env_cmd)
