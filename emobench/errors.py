"""Typed errors; the CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # the run itself failed or found a regression
EXIT_USAGE = 2  # bad input: nothing was measured or written


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
