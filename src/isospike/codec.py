"""How a module is written to a saved file and read back: the codec of one module type, and the
checks every reader shares (sizes a file may declare, constructors whose refusals name the field,
tensors that must be stored). A leaf below the codings (which define their populations' codecs)
and the serializer (which holds the closed table of them): it imports only the error types and
the untrusted-JSON reader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from torch import Tensor, nn

from isospike.errors import FileFormatError
from isospike.schema import Field

# Sizes a file may declare for one dimension of a layer (the stored tensors must match them).
MAX_SIZE = 2**31 - 1
# The longest TTFS window a file may declare (each population keeps T + 1 read values).
MAX_WINDOW = 4096
# Samples of a device curve stored in a file.
MAX_CURVE_SAMPLES = 4097

Stored = Callable[[str], "Tensor | None"]  # a module's stored tensor by its state-dict key, or None


class ModuleCodec(NamedTuple):
    """How one module type is written (``write(module, paths) -> dict``) and read
    (``read(field, stored) -> module``)."""

    write: Callable[[nn.Module, dict[int, str]], dict[str, Any]]
    read: Callable[[Field, Stored], nn.Module]


_T = TypeVar("_T")


def built(field: Field, build: Callable[[], _T]) -> _T:
    """Run a constructor on validated arguments; its own refusals name the file's field."""
    try:
        return build()
    except (ValueError, TypeError, RuntimeError) as exc:
        raise FileFormatError(f"{field.source}: field {field.where} does not describe a valid "
                              f"module ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def needed(stored: Stored, key: str, field: Field) -> Tensor:
    """The module's stored tensor ``key`` (a FileFormatError naming it when missing)."""
    t = stored(key)
    if t is None:
        raise FileFormatError(f"{field.source}: the tensor '{key}' of the module at {field.where} is missing")
    return t
