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
