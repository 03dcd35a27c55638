"""JSON from files that strangers may have written (model-file metadata), read within limits,
and a canonical digest of JSON values.

Python's ``json`` module trusts its input: a document nested 100,000 deep raises a bare
``RecursionError``, a 5,000-digit number "Exceeds the limit (4300 digits) for integer string
conversion", ``NaN`` and ``1e999`` come back as floats nobody asked for, a key given twice
silently keeps its last value, and ``"\\ud800"`` yields a string that cannot be printed or
encoded. :func:`loads` and :func:`load` refuse all of these, and anything larger than
``max_bytes``, *before* doing the work, with one exception type, :class:`JSONLimitError`
(a ``ValueError``), whose message names the document (``what``) and the limit:

- ``max_bytes``: the size of the document in UTF-8 (checked against the file's size before
  it is read, for :func:`load`);
- ``max_depth``: how deeply arrays and objects nest (``[]`` is 1, ``[[]]`` 2), checked by a
  linear scan before parsing, so the parser never recurses deeper;
- ``max_number_chars``: the length of a number as written (sign and exponent included),
  checked before it is converted; a float that overflows to infinity is refused too;
- ``allow_nan`` (default False): the non-standard ``NaN``, ``Infinity``, ``-Infinity``;
- keys must be unique within an object, and strings valid Unicode (no unpaired surrogates);
- malformed JSON and invalid UTF-8 raise the same :class:`JSONLimitError` with the position.

:func:`canonical_dumps` serialises a JSON value one way only: keys sorted, no whitespace,
ASCII with ``\\uXXXX`` escapes, floats as Python's shortest round-tripping ``repr``
(``1.0``, ``1e-07``), integers as digits, no NaN or infinities; :func:`canonical_digest` is the
sha256 of that, in hex. The digest depends only on the value -- not on key order, spacing or
how a number was spelt (``1e2`` and ``100.0`` are the same float) -- and ``loads`` of any
document gives back a value with the same digest as the one that was written, so a file can
carry the digest of its metadata and a reader can check it after parsing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NUMBER_CHARS",
    "JSONLimitError",
    "canonical_digest",
    "canonical_dumps",
    "load",
    "loads",
]

DEFAULT_MAX_BYTES = 16 << 20  # 16 MiB
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_NUMBER_CHARS = 100  # a 128-bit generator state has 39 digits; a float's repr at most 24 characters


class JSONLimitError(ValueError):
    """A JSON document that is malformed or outside the limits it was read with."""


# A JSON string token, or an unterminated one up to the end of the text: the unrolled form of
# "(?:[^"\\]|\\.)*" with an ending that cannot fail, so that a match begun at a quote always
# succeeds and the scan stays linear whatever the text (a pattern that could fail would be
# retried at every later quote: quadratic on '"\"\"\"...').
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SURROGATE = re.compile("[\ud800-\udfff]")
# An escape that may denote half of a surrogate pair (or a literal backslash before "ud800":
# then the check after parsing finds nothing).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _too_deep(raw: bytes, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep in the UTF-8 text ``raw``
    (brackets inside strings do not count); linear, with NumPy for the running depth."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    b = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((b == ord("[")) | (b == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max()) > limit


def loads(
    data: str | bytes | bytearray,
    *,
    what: str = "JSON document",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_number_chars: int = DEFAULT_MAX_NUMBER_CHARS,
    allow_nan: bool = False,
) -> Any:
    """Parse one JSON document within limits (see the module doc); raises JSONLimitError.

    ``data``: text, or bytes in UTF-8. ``what`` names the document in messages, e.g.
    ``"model.safetensors: metadata 'training'"``.
    """
    _positive(max_bytes, "max_bytes")
    _positive(max_depth, "max_depth")
    _positive(max_number_chars, "max_number_chars")
    if isinstance(data, (bytes, bytearray)):
        if len(data) > max_bytes:
            raise JSONLimitError(f"{what}: {len(data):,} bytes, more than the limit of {max_bytes:,}")
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")  # refuses encoded surrogates too
        except UnicodeDecodeError as e:
            raise JSONLimitError(f"{what}: not valid UTF-8 at byte {e.start}") from None
    elif isinstance(data, str):
        if len(data) > max_bytes:  # characters <= bytes
            raise JSONLimitError(f"{what}: more than {max_bytes:,} bytes (the limit)")
        m = _SURROGATE.search(data)
        if m:
            raise JSONLimitError(f"{what}: holds a lone surrogate \\u{ord(m.group()):04x} (not valid Unicode)")
        raw = data.encode("utf-8")
        if len(raw) > max_bytes:
            raise JSONLimitError(f"{what}: {len(raw):,} bytes, more than the limit of {max_bytes:,}")
        text = data
    else:
        raise TypeError(f"data must be str or bytes, got {type(data).__name__}")

    if _too_deep(raw, max_depth):
        raise JSONLimitError(f"{what}: arrays and objects nested more than {max_depth} deep (the limit)")

    def number_text(s: str) -> str:
        if len(s) > max_number_chars:
            raise JSONLimitError(
                f"{what}: a number of {len(s):,} characters ({s[:12]}…), more than the limit of {max_number_chars}"
            )
        return s

    def parse_int(s: str) -> int:
        try:
            return int(number_text(s))
        except JSONLimitError:
            raise
        except ValueError as e:  # a max_number_chars above Python's own conversion limit
            raise JSONLimitError(f"{what}: cannot convert a number of {len(s):,} digits ({e})") from None

    def parse_float(s: str) -> float:
        v = float(number_text(s))
        if not math.isfinite(v):
            raise JSONLimitError(f"{what}: the number {s} is out of the range of a 64-bit float")
        return v

    def parse_constant(s: str) -> float:
        if not allow_nan:
            raise JSONLimitError(f"{what}: {s} is not a JSON number (non-finite values are not allowed here)")
        return float(s)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(pairs)
        if len(d) != len(pairs):
            seen: set[str] = set()
            for k, _ in pairs:
                if k in seen:
                    raise JSONLimitError(f"{what}: the key {k!r} appears twice in one object")
                seen.add(k)
        return d

    try:
        value = json.loads(
            text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant, object_pairs_hook=unique
        )
    except json.JSONDecodeError as e:
        raise JSONLimitError(f"{what}: not valid JSON: {e}") from None
    except RecursionError:  # cannot happen after the depth scan; kept as a guard
        raise JSONLimitError(f"{what}: arrays and objects nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text):  # rare: only then walk the value for unpaired halves
        _check_strings(value, what)
    return value


def _check_strings(value: Any, what: str) -> None:
    """Refuse strings (values and keys) with unpaired surrogates, which no encoder accepts."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            m = _SURROGATE.search(v)
            if m:
                raise JSONLimitError(
                    f"{what}: a string holds an unpaired surrogate \\u{ord(m.group()):04x} (not valid Unicode)"
                )
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())


def load(path: str | os.PathLike, *, what: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES, **limits: Any) -> Any:
    """:func:`loads` of a file; its size is checked before anything is read."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    _positive(max_bytes, "max_bytes")
    label = what if what is not None else str(p)
    with open(p, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise JSONLimitError(f"{label}: {size:,} bytes, more than the limit of {max_bytes:,}")
        data = f.read(max_bytes + 1)  # a file that grew meanwhile is still caught below
    return loads(data, what=label, max_bytes=max_bytes, **limits)


def _check_canonical(value: Any, max_depth: int, max_number_chars: int) -> None:
    """Refuse what JSON cannot say exactly once: non-str keys (json would turn 1 and "1" into
    the same key), non-finite floats, other types, too deep nesting (cycles included)."""
    stack: list[tuple[Any, int]] = [(value, 0)]  # a cycle ends as "nested too deep"
    while stack:
        v, depth = stack.pop()
        if v is None or isinstance(v, (bool, str)):
            if isinstance(v, str) and _SURROGATE.search(v):
                raise ValueError(f"canonical JSON: the string {v[:20]!r} holds an unpaired surrogate")
            continue
        if isinstance(v, int):
            if v.bit_length() > 4 * max_number_chars or len(str(v)) > max_number_chars:
                raise ValueError(f"canonical JSON: an int of more than {max_number_chars} characters")
            continue
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError(f"canonical JSON: {v} is not a JSON number")
            continue
        if isinstance(v, (list, tuple, dict)):
            if depth + 1 > max_depth:
                raise ValueError(f"canonical JSON: nested more than {max_depth} deep")
            if isinstance(v, dict):
                for k in v:
                    if not isinstance(k, str):
                        raise TypeError(f"canonical JSON: keys must be str, got {type(k).__name__} {k!r}")
                items = list(v.keys()) + list(v.values())
            else:
                items = list(v)
            stack.extend((x, depth + 1) for x in items)
            continue
        raise TypeError(f"canonical JSON: cannot serialise a {type(v).__name__}")


def canonical_dumps(
    value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, max_number_chars: int = DEFAULT_MAX_NUMBER_CHARS
) -> bytes:
    """The one serialisation of a JSON value (see the module doc), as ASCII bytes.

    ``value`` holds None, bool, int, float (finite), str, list/tuple and dict with str
    keys only; anything else raises TypeError, and non-finite floats, unpaired surrogates
    and nesting beyond ``max_depth`` raise ValueError."""
    _check_canonical(value, max_depth, max_number_chars)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def canonical_digest(value: Any, **limits: Any) -> str:
    """sha256 (hex) of :func:`canonical_dumps` of ``value``."""
    return hashlib.sha256(canonical_dumps(value, **limits)).hexdigest()
