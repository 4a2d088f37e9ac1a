"""Exceptions raised by isospike.

Every error names what is wrong and how to fix it, so that a user never has to read
isospike's source to understand a failure.
"""

from __future__ import annotations


class IsospikeError(Exception):
    """Base class of isospike's own errors."""


class UnsupportedLayerError(IsospikeError, TypeError):
    """A model contains a layer or operation that the chosen coding cannot convert.

    Attributes:
        layer_type: the module class name or function name, e.g. ``"Sigmoid"``.
        path: the dotted path of the layer inside the model, e.g. ``"features.3"``.
        coding: the coding that was requested (set once, where the conversion was asked for:
            graph passes shared by the codings raise without it).
    """

    def __init__(self, layer_type: str, path: str, coding: str = "", hint: str = "") -> None:
        self.layer_type = layer_type
        self.path = path
        self.coding = coding
        self.hint = hint
        super().__init__(self._message())

    def _message(self) -> str:
        by = f"the '{self.coding}' coding" if self.coding else "this coding"
        return f"{self.layer_type} at '{self.path}' is not supported by {by}" + (f": {self.hint}" if self.hint else "")

    def for_coding(self, coding: str) -> UnsupportedLayerError:
        """The same error naming ``coding`` (the entry point's name for what was requested)."""
        self.coding = coding
        self.args = (self._message(),)
        return self

    def __str__(self) -> str:
        return self._message()


class DatasetNotFoundError(IsospikeError, FileNotFoundError):
    """A dataset's files are not where isospike looked; the message says how to get them."""


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's message on one line (torch's and other libraries' span several), cut
    after ``limit`` characters when given."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


class FileFormatError(IsospikeError, ValueError):
    """A saved network or NIR file is malformed, inconsistent with its tensors, or asks for
    something isospike never loads (an unknown operation, a name that is not a plain identifier,
    an argument outside its range). The message names the file and the field."""


class SimulationTooLargeError(IsospikeError, ValueError, MemoryError):
    """A simulation would need more memory than the machine has: raised before anything is
    allocated, with the estimate and what to change (fewer steps, a smaller batch, chunks)."""


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int when it is a whole number >= ``minimum`` (a bool, 2.7 or NaN is
    refused, never truncated); a ValueError naming ``name`` otherwise."""
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or (whole := int(value)) != value or value < minimum:  # type: ignore[call-overload]  # typeshed: Real lacks __int__
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return whole
