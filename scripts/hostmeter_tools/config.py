"""The agent's YAML configuration (and instance manifests) written from a dict.

Mappings are written in block style, one key a line, so a reader of a kept work folder sees the
usual layout. Every scalar is written as JSON (``json.dumps``): JSON's strings, numbers, ``true``,
``false`` and ``null`` are YAML too, so a path with a colon, a ``#``, a leading ``-`` or ``*``, a
word YAML 1.1 would read as a boolean (``no``, ``on``) or a number-like string stays the string it
is. Characters YAML does not allow raw in a stream (C0 and C1 controls, DEL, U+FEFF, U+FFFE/U+FFFF,
lone surrogates) and the line breaks YAML 1.1 folds (NEL, U+2028, U+2029) are written as ``\\uXXXX``
escapes, which double-quoted YAML shares with JSON. Keys that look like the agent's keys are written
plain; any other key (or one YAML 1.1 reads as a boolean or null, such as ``no``) is quoted too.
Lists are written as block sequences; empty ones, and empty mappings, as ``[]`` and ``{}``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

#: A key written without quotes: what the agent's keys look like. Anything else is quoted as JSON.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Escaped: what YAML does not allow raw (outside tab, LF, CR, 0x20–0x7E, 0x85, 0xA0–0xD7FF,
#: 0xE000–0xFFFD, 0x10000–0x10FFFF; json.dumps already escapes the C0 controls, '"' and '\\'), and
#: the line breaks YAML 1.1 folds inside a quoted scalar (NEL, U+2028, U+2029).
_ESCAPED = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
#: Plain words YAML 1.1 (Yams' default resolver) reads as booleans or null: such keys are quoted.
_YAML11_WORDS = frozenset({"y", "yes", "n", "no", "true", "false", "on", "off", "null"})


class ConfigError(ValueError):
    """A value the writer cannot express (a NaN, an unknown type, a key that is not a string)."""


def scalar(value: Any) -> str:
    """One scalar as YAML: JSON's spelling, with YAML's non-printable characters escaped."""
    if value is None or isinstance(value, (bool, int, str)):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{value!r} is not a number a configuration can hold")
        text = json.dumps(value)
        mantissa, exponent, power = text.partition("e")
        if exponent and "." not in mantissa:
            # YAML 1.1 reads 1e-09 as a string: its floats need a point (and a signed exponent,
            # which Python always writes).
            text = f"{mantissa}.0e{power}"
    elif isinstance(value, Path):
        text = json.dumps(str(value), ensure_ascii=False)
    else:
        raise ConfigError(f"cannot write a {type(value).__name__} as a configuration value: {value!r}")
    return _ESCAPED.sub(lambda match: f"\\u{ord(match.group(0)):04x}", text)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise ConfigError(f"configuration keys are strings, not {type(key).__name__} ({key!r})")
    return key if _PLAIN_KEY.match(key) and key.lower() not in _YAML11_WORDS else scalar(key)


def _lines(value: Any, indent: int) -> list[str]:
    """The block lines of a mapping or a sequence at ``indent`` spaces."""
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list, tuple)) and item:
                out.append(f"{pad}{_key(key)}:")
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{pad}{_key(key)}: {_inline(item)}")
    else:
        for item in value:
            if isinstance(item, (dict, list, tuple)) and item:
                nested = _lines(item, indent + 2)
                # The first line of the item goes after the dash: "- key: value".
                out.append(f"{pad}- {nested[0][indent + 2:]}")
                out.extend(nested[1:])
            else:
                out.append(f"{pad}- {_inline(item)}")
    return out


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return scalar(value)


def render(document: dict[str, Any]) -> str:
    """The YAML text of a configuration given as a dict (nested dicts and lists allowed)."""
    if not isinstance(document, dict):
        raise ConfigError("a configuration is a mapping at the top")
    return "\n".join(_lines(document, 0)) + "\n"


def write(path: Path, document: dict[str, Any]) -> Path:
    """Writes ``render(document)`` to ``path`` and returns the path."""
    path.write_text(render(document), encoding="utf-8")
    return path
