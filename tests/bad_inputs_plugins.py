"""Bad-input cases for plugins: imports, functions, shapes (issue #26). Gathered by
tests/bad_inputs.py.

A plugin's own code runs fenced: a module that exits, raises KeyboardInterrupt or anything else
at import, a function that exits, a model whose output is wrong at batch 1 are one error line
naming the plugin as the user gave it (--model, --backbone, a suite's entry) and exit 2. These
checks import the plugin, which imports torch first (needs_torch). A model that fails only at
some other batch size, or is slow, is a run, not a refusal: tests/scenarios/test_compare_plugins.py.
"""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

from tests.bad_input_base import Case, _c

SURFACE = "plugins"


def _p(command: str, message: str) -> Case:
    return _c(command, message, needs_torch=True, surface=SURFACE)


CASES: tuple[Case, ...] = (
    # the import: sys.exit, KeyboardInterrupt, GeneratorExit, an exception
    _p(
        "compare --model plug_exits:build",
        "--model plug_exits:build: during import, module plug_exits exited (SystemExit 0)",
    ),
    _p("compare --backbone plug_exits:build", "--backbone plug_exits:build: during import"),
    _p("compare --model plug_ctrl_c:build", "raised KeyboardInterrupt itself (no Ctrl-C"),
    _p("compare --model plug_genexit:build", "module plug_genexit raised GeneratorExit"),
    _p("compare --model plug_raises:build", "raised ValueError: broken at import"),
    _p("maxbatch --model plug_exits:build", "--model plug_exits:build: during import"),
    # a package whose __init__ exits: finding the submodule must not import it unfenced
    _p("compare --model plugpkg_exits.models:build", "during import, module plugpkg_exits"),
    _p("maxbatch --backbone plug_exits:build", "--backbone plug_exits:build: during import"),
    _p("run plugin-suite.toml", "plugin-suite.toml: backbone plug_exits:build: during import"),
    # the function and its models
    _p("compare --model plug_shapes:missing", "module plug_shapes has no function 'missing'"),
    _p("compare --model plug_shapes:not_callable", "has no function 'not_callable'"),
    _p("compare --model plug_shapes:not_a_module", "returned int for 'upscale224'"),
    _p("compare --model plug_shapes:builder_exits", "num_classes=7) exited (SystemExit 1)"),
    _p("compare --model plug_shapes:squeezes", "output is (7,) for a 1x3x224x224 input"),
    _p("compare --backbone plug_shapes:squeezes", "--backbone plug_shapes:squeezes: the"),
    _p("maxbatch --model plug_shapes:squeezes", "expected (N, num_classes) = (1, 7)"),
    _p("compare --model plug_shapes:forward_exits", "2x3x224x224 input: exited (SystemExit 0)"),
)

MODULES = {
    "plug_exits.py": "import sys\n\nsys.exit(0)\n",
    "plug_ctrl_c.py": "raise KeyboardInterrupt\n",
    "plug_genexit.py": "raise GeneratorExit\n",
    "plug_raises.py": 'raise ValueError("broken at import")\n',
    "plugpkg_exits/__init__.py": "import sys\n\nsys.exit(3)\n",
    "plugpkg_exits/models.py": "def build(pipeline, num_classes=7):\n    return None\n",
    "plug_shapes.py": '''
import sys

from torch import nn

not_callable = 42


class Squeezes(nn.Module):
    """Right at batch 2, (num_classes,) at batch 1: squeeze() drops the batch dimension."""

    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3))).squeeze()


class ExitsInForward(nn.Module):
    def forward(self, x):
        sys.exit(0)


def squeezes(pipeline, num_classes=7):
    return Squeezes(num_classes)


def not_a_module(pipeline, num_classes=7):
    return 42


def builder_exits(pipeline, num_classes=7):
    sys.exit(1)


def forward_exits(pipeline, num_classes=7):
    return ExitsInForward()
''',
}


def make_fixtures(folder: Path) -> None:
    """The plugin modules and the suite these cases name, under `folder` (the working folder
    the cases run in). Each module is compiled here, so importing it writes no __pycache__ file
    into the folder (the matrix checks that a refusal writes nothing)."""
    (folder / "plugpkg_exits").mkdir()
    for name, source in MODULES.items():
        path = folder / name
        path.write_text(source)
        py_compile.compile(str(path), cfile=importlib.util.cache_from_source(str(path)))
    (folder / "plugin-suite.toml").write_text(
        '[suite]\nbackbones = ["plug_exits:build"]\ndevice = "cpu"\nbatch_sizes = [2]\n'
    )
