"""The independent verifier's RFC 8785 writer against the Node.js golden vectors the Swift tests
read, so the two implementations are each checked against ECMAScript itself."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from hostmeter_tools.usage_verify import canonical, canonical_number, event_hash

FIXTURES = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "jcs"


def test_numbers_are_written_as_ecmascript_writes_them() -> None:
    lines = (FIXTURES / "numbers.txt").read_text().splitlines()
    assert len(lines) > 4000
    for line in lines:
        bits, expected = line.split()
        value = struct.unpack(">d", bytes.fromhex(bits))[0]
        assert canonical_number(value) == expected, line


def test_documents_are_canonicalized_as_rfc_8785_says() -> None:
    lines = (FIXTURES / "documents.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
    pairs = list(zip(lines[0::2], lines[1::2], strict=True))
    assert len(pairs) >= 3
    for text, expected in pairs:
        assert canonical(json.loads(text)) == expected, text


def test_an_event_hash_leaves_out_the_hash_member() -> None:
    event = {"seq": 1, "prev_hash": None, "hash": "ignored", "a": 1.5}
    assert event_hash(event) == event_hash({**event, "hash": "anything else"})
    assert event_hash(event) != event_hash({**event, "a": 1.25})
