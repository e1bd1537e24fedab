"""The emobench command line: parse options, call one core function, render the result.

app.py wires the commands; shell.py turns every failure into one `error:` line and an exit code;
options.py declares each shared option once; one module per command group (compare, maxbatch,
gate, readout, finetune). The only place typer is imported.
"""

from emobench.cli.app import app

__all__ = ["app"]
