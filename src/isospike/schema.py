"""Reading untrusted JSON structure field by field.

Every value a saved file holds is read through a :class:`Field`, which knows where in the file it
sits (``modules['fc1'].args.in_features``) and checks its type and range before the caller sees
it. A failed check raises :class:`~isospike.errors.FileFormatError` (a ``ValueError``) naming the
file, the field and what was expected, so a damaged or crafted file gives one clear line instead
of a ``KeyError`` deep inside the loader.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

from isospike.errors import FileFormatError

# Nesting deeper than this is never written by isospike; refusing it up front keeps the JSON
# parser and the recursive readers away from Python's recursion limit.
MAX_DEPTH = 32
# A plain ASCII identifier: what a module attribute, an fx node or a keyword argument may be
# called. A single leading underscore is allowed (fx names constants ``_tensor_constant0``), a
# double one (dunder names: ``__class__``) never.
_IDENTIFIER = re.compile(r"(?!__)[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
# One part of a dotted module path: an identifier or a Sequential index (``features.0``).
_PATH_PART = re.compile(r"(?!__)[A-Za-z0-9_][A-Za-z0-9_]{0,127}\Z")
# Names that would shadow what generated code refers to.
_RESERVED = frozenset({"self", "torch", "inf", "nan", "fx_pytree", "pytree", "device", "builtins"})


def _preview(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def nesting_depth(text: str) -> int:
    """Deepest bracket nesting of a JSON text (brackets inside strings ignored)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json(text: Any, source: str, what: str) -> Any:
    """``json.loads`` of ``text`` with its failures (not text, not JSON, nested too deep) as one
    :class:`FileFormatError` naming ``source`` and ``what``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise FileFormatError(f"{source}: {what} is not UTF-8 text; the file is damaged") from None
    if not isinstance(text, str):
        raise FileFormatError(f"{source}: {what} is a {type(text).__name__}, not JSON text; the file is damaged")
    if nesting_depth(text) > MAX_DEPTH:
        raise FileFormatError(f"{source}: {what} nests deeper than {MAX_DEPTH} levels, which isospike never writes; "
                              "the file is damaged or crafted")
    try:
        return json.loads(text, parse_constant=_constant)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise FileFormatError(f"{source}: {what} is not valid JSON ({str(exc).splitlines()[0]}); the file is damaged") \
            from None


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def is_identifier(name: Any) -> bool:
    """A plain ASCII identifier, not a Python keyword and not a name generated code relies on."""
    return (isinstance(name, str) and _IDENTIFIER.match(name) is not None and not keyword.iskeyword(name)
            and name not in _RESERVED)


def is_module_path(path: Any) -> bool:
    """A dotted module path whose every part is an identifier-like name or an index (``features.0``)."""
    if not isinstance(path, str) or not path or len(path) > 512:
        return False
    parts = path.split(".")
    return all(_PATH_PART.match(p) is not None and not keyword.iskeyword(p) and p not in _RESERVED for p in parts)


class Entries(dict):
    """The entries of a JSON object as :class:`Field` values; a missing one is a
    :class:`FileFormatError` naming the object, not a ``KeyError``."""

    owner: Field

    def __missing__(self, key: str) -> Field:
        raise FileFormatError(f"{self.owner.source}: field {self.owner.where} has no entry {key!r}; the file is "
                              "damaged or was not written by this version of isospike")


class Field:
    """One value of an untrusted JSON document and where it sits in it.

    ``source`` names the file (used in every error); ``where`` is the field's path."""

    __slots__ = ("value", "where", "source")

    def __init__(self, value: Any, where: str, source: str) -> None:
        self.value = value
        self.where = where
        self.source = source

    # ------------------------------------------------------------------ errors
    def error(self, expected: str) -> FileFormatError:
        return FileFormatError(f"{self.source}: refusing field {self.where} = {_preview(self.value)}: it must be "
                               f"{expected}; the file is damaged, crafted, or was not written by this version of isospike")

    # ------------------------------------------------------------------ containers
    def _child(self, key: str | int, value: Any) -> Field:
        where = f"{self.where}[{key!r}]" if isinstance(key, int) or not is_identifier(key) else f"{self.where}.{key}"
        return Field(value, where, self.source)

    def object(self, allowed: Iterable[str] | None = None) -> Entries:
        """The value as a JSON object; with ``allowed``, any other key is refused."""
        if not isinstance(self.value, dict):
            raise self.error("an object")
        if allowed is not None:
            extra = sorted(set(self.value) - set(allowed))
            if extra:
                raise FileFormatError(f"{self.source}: field {self.where} has unknown entries {extra[:5]} "
                                      f"(allowed: {sorted(allowed)}); the file is damaged or crafted")
        entries = Entries((k, self._child(k, v)) for k, v in self.value.items())
        entries.owner = self
        return entries

    def __getitem__(self, key: str) -> Field:
        if not isinstance(self.value, dict):
            raise self.error("an object")
        if key not in self.value:
            raise FileFormatError(f"{self.source}: field {self.where} has no entry {key!r}; the file is damaged or "
                                  "was not written by this version of isospike")
        return self._child(key, self.value[key])

    def get(self, key: str) -> Field | None:
        """The entry ``key`` of an object, None when absent."""
        if not isinstance(self.value, dict):
            raise self.error("an object")
        return self._child(key, self.value[key]) if key in self.value else None

    def items(self, max_len: int = 1_000_000) -> Iterator[Field]:
        """The entries of a JSON array (at most ``max_len``)."""
        if not isinstance(self.value, list):
            raise self.error("an array")
        if len(self.value) > max_len:
            raise self.error(f"an array of at most {max_len} entries")
        return (self._child(i, v) for i, v in enumerate(self.value))

    # ------------------------------------------------------------------ scalars
    @property
    def is_none(self) -> bool:
        return self.value is None

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error("true or false")
        return self.value

    def integer(self, lo: int = -(2**31), hi: int = 2**31 - 1) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or not lo <= self.value <= hi:
            raise self.error(f"an integer in [{lo}, {hi}]")
        return self.value

    def number(self, lo: float = -math.inf, hi: float = math.inf, *, finite: bool = True, lo_open: bool = False) -> float:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error("a number")
        v = float(v)
        if finite and not math.isfinite(v):
            raise self.error("a finite number")
        if not (lo < v if lo_open else lo <= v) or not v <= hi:
            raise self.error(f"a number in {'(' if lo_open else '['}{lo}, {hi}]")
        return v

    def text(self, max_len: int = 4096) -> str:
        if not isinstance(self.value, str) or len(self.value) > max_len:
            raise self.error(f"a string of at most {max_len} characters")
        return self.value

    def choice(self, options: Iterable[str], what: str = "") -> str:
        """The value, which must be one of ``options`` (``what`` names the set in the error
        when it is too long to list)."""
        options = tuple(options)
        if not isinstance(self.value, str) or self.value not in options:
            listed = f"one of {list(options)}" if len(options) <= 8 or not what else \
                f"one of the {len(options)} {what} (e.g. {', '.join(options[:3])})"
            raise FileFormatError(f"{self.source}: refusing field {self.where} = {_preview(self.value)}: it must be "
                                  f"{listed}; the file is damaged, crafted, or was not written by this version of "
                                  "isospike")
        return self.value

    def identifier(self) -> str:
        if not is_identifier(self.value):
            raise self.error("a plain identifier (ASCII letters, digits and _, not starting with a digit or __)")
        return self.value

    def module_path(self) -> str:
        if not is_module_path(self.value):
            raise self.error("a dotted module path of plain names (e.g. 'features.0')")
        return self.value

    def integers(self, length: int | None = None, lo: int = 0, hi: int = 2**31 - 1) -> tuple[int, ...]:
        """An array of integers (of ``length`` entries when given)."""
        items = list(self.items(max_len=64))
        if length is not None and len(items) != length:
            raise self.error(f"an array of {length} integers")
        return tuple(f.integer(lo, hi) for f in items)

    def numbers(self, max_len: int = 1_000_000, **bounds: Any) -> list[float]:
        return [f.number(**bounds) for f in self.items(max_len=max_len)]
