"""Typed errors; the CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # the run itself failed or found a regression
EXIT_USAGE = 2  # bad input: nothing was measured or written
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)


class EmobenchError(Exception):
    """Base class for every error the tool reports without a traceback."""

    exit_code = EXIT_USAGE


class UsageError(EmobenchError):
    """An option, config or argument is invalid."""


class DeviceUnavailable(EmobenchError):
    """The requested device does not exist on this machine."""


class DataError(EmobenchError):
    """An input data file or folder cannot be read as 48x48 grayscale images."""


class WeightsUnavailable(EmobenchError):
    """Pretrained weights are neither cached nor downloadable."""


class ReportError(EmobenchError):
    """A report or baseline file is missing, malformed or of an unsupported schema."""


class MeasurementError(EmobenchError):
    """A measurement failed for a reason other than bad input."""

    exit_code = EXIT_FAILURE


class Terminated(BaseException):
    """SIGTERM arrived: raised from the signal handler the CLI installs, so `finally` blocks run
    (temporary files removed, a maxbatch child killed) just as for Ctrl-C. A BaseException, like
    KeyboardInterrupt, so no `except Exception` swallows it."""


class PluginError(UsageError):
    """A plugin backbone (`module:function` or an installed entry point) that does not import,
    whose function fails or returns something other than an nn.Module, or whose models do not
    map N x 3 x S x S to (N, num_classes) when checked before the run.

    The message starts with how the user named the plugin: `plugin NAME` until the command
    that knows which option (or suite file) it came from says so with `named_by`.
    """

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.detail = detail
        self.label = _plugin_label("plugin", name)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.label}: {self.detail}"

    def named_by(self, option: str) -> PluginError:
        """Name the plugin as given: `--backbone`, `--model`, `suite.toml: backbone`."""
        self.label = _plugin_label(option, self.name)
        return self


def _plugin_label(option: str, name: str) -> str:
    plain = name and all(c.isalnum() or c in "_.:-" for c in name)
    return f"{option} {name}" if plain else f"{option} {name!r}"


class ModelError(EmobenchError):
    """A model failed while it was measured: at some batch size it raised, exited, or returned
    something other than a (batch, num_classes) tensor. The run stops (exit 1); nothing is
    written."""

    exit_code = EXIT_FAILURE
