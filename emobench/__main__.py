"""`python -m emobench`: the same command line as the `emobench` script."""

from emobench.cli import app

app(prog_name="emobench")
