"""An independent verifier of hostmeter's UsageEvent 1.1 hash chains, for the tests.

It shares no code with the agent: RFC 8785 canonical JSON is written here from the RFC (numbers
as ECMAScript prints a double, members sorted by UTF-16 code units), hashes come from hashlib, the
RFC 9162 Merkle roots are computed here, and Ed25519 signatures are checked with the
``cryptography`` package.
The tests run it beside ``hostmeter verify`` on clean and tampered sets of delivered events and
expect the same verdict and the same first problem.

Command line::

    python3 -m hostmeter_tools.usage_verify [--from-start] [--key FILE]... FILE...

Input: JSON lines; a line is one event, a CloudEvent carrying one in ``data``, or a JSON array of
either. Prints ``{"ok": ..., "events": N, "duplicates": N, "first_problem": {"kind", "location"}}``
and exits 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key


def canonical_number(value: float) -> str:
    """ECMAScript's Number.prototype.toString of an IEEE 754 double (RFC 8785 §3.2.2.3)."""
    if isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"no canonical form for {value!r}")
    value = float(value)
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    text = repr(abs(value))  # Python's repr is the shortest round-trip digits, as ECMAScript's
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    fraction = fraction.rstrip("0")
    digits = (whole + fraction).lstrip("0")
    # The value is 0.DIGITS x 10^point.
    if whole.strip("0"):
        point = len(whole.lstrip("0")) + int(exponent or 0)
    else:
        point = int(exponent or 0) - (len(fraction) - len(fraction.lstrip("0")))
    digits = digits.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        body = digits + "0" * (point - count)
    elif 0 < point <= 21:
        body = digits[:point] + "." + digits[point:]
    elif -6 < point <= 0:
        body = "0." + "0" * -point + digits
    else:
        power = point - 1
        fraction_part = "." + digits[1:] if count > 1 else ""
        body = digits[0] + fraction_part + "e" + ("+" if power >= 0 else "-") + str(abs(power))
    return sign + body


def canonical(value) -> str:
    """RFC 8785 canonical JSON text of a parsed JSON value."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return canonical_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(canonical(item) for item in value) + "]"
    if isinstance(value, dict):
        names = sorted(value, key=lambda name: name.encode("utf-16-be"))
        members = (json.dumps(name, ensure_ascii=False) + ":" + canonical(value[name]) for name in names)
        return "{" + ",".join(members) + "}"
    raise TypeError(f"not JSON: {type(value).__name__}")


def event_hash(event: dict) -> str:
    """The lower-case hex SHA-256 of the event's canonical JSON without ``hash``."""
    rest = {name: member for name, member in event.items() if name != "hash"}
    return hashlib.sha256(canonical(rest).encode("utf-8")).hexdigest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1: MTH over the leaves."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:split]) + merkle_root(leaves[split:])).digest()


def read_key(path: str) -> tuple[str | None, Ed25519PublicKey]:
    """A key file: the identity document (host and key), or a PEM or base64 key alone."""
    text = Path(path).read_text(encoding="utf-8").strip()
    host = None
    if text.startswith("{"):
        document = json.loads(text)
        host, text = document.get("host_id"), document["public_key"]
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        key = load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path}: not an Ed25519 key")
        return host, key
    return host, Ed25519PublicKey.from_public_bytes(base64.b64decode(text))


def key_id(key: Ed25519PublicKey) -> str:
    return "sha256:" + hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()


@dataclass
class Problem:
    order: int
    location: str
    kind: str


@dataclass
class Held:
    event: dict
    location: str
    order: int


class Verifier:
    def __init__(self, from_start: bool = False, keys: dict | None = None) -> None:
        self.from_start = from_start
        self.keys = keys or {}
        self.commitments: dict[str, dict[int, Held]] = {}
        self.signatures_checked = 0
        self.chains: dict[tuple[str, str], dict[int, Held]] = {}
        self.problems: list[Problem] = []
        self.count = 0
        self.duplicates = 0

    def add(self, value, location: str) -> None:
        self.count += 1
        order = self.count
        if not isinstance(value, dict):
            self.problems.append(Problem(order, location, "not_json"))
            return
        if isinstance(value.get("specversion"), str):
            value = value.get("data")
            if not isinstance(value, dict):
                self.problems.append(Problem(order, location, "not_an_event"))
                return
        if not isinstance(value.get("event_type"), str):
            self.problems.append(Problem(order, location, "not_an_event"))
            return
        if value["event_type"] == "usage_commitment":
            self.add_commitment(value, location, order)
            return
        if value["event_type"] == "metering_gap":
            if not isinstance(value.get("gap"), dict) or not isinstance(value.get("seq"), int):
                self.problems.append(Problem(order, location, "not_an_event"))
                return
        elif value["event_type"] != "resource_usage":
            return
        texts = ("event_id", "version", "host_id", "instance_id", "user_id")
        objects = ("gap",) if value["event_type"] == "metering_gap" else ("period", "metrics")
        if not all(isinstance(value.get(name), str) for name in texts) or not all(
            isinstance(value.get(name), dict) for name in objects
        ):
            self.problems.append(Problem(order, location, "not_an_event"))
            return
        if not isinstance(value.get("seq"), int) or not isinstance(value.get("hash"), str):
            self.problems.append(Problem(order, location, "unchained"))
            return
        if event_hash(value) != value["hash"]:
            self.problems.append(Problem(order, location, "changed"))
            return
        chain = self.chains.setdefault((value["host_id"], value["instance_id"]), {})
        held = chain.get(value["seq"])
        if held is not None:
            if held.event["hash"] == value["hash"]:
                self.duplicates += 1
            else:
                self.problems.append(Problem(order, location, "fork"))
            return
        chain[value["seq"]] = Held(value, location, order)

    def add_commitment(self, value: dict, location: str, order: int) -> None:
        sealed = {name: member for name, member in value.items() if name not in ("hash", "signature")}
        signed = canonical(sealed).encode("utf-8")
        if hashlib.sha256(signed).hexdigest() != value.get("hash"):
            self.problems.append(Problem(order, location, "changed"))
            return
        key = self.keys.get(value["host_id"], self.keys.get(None))
        if key is not None:
            if value["key_id"] != key_id(key):
                self.problems.append(Problem(order, location, "bad_signature"))
                return
            try:
                key.verify(base64.b64decode(value["signature"]), signed)
            except (InvalidSignature, ValueError):
                self.problems.append(Problem(order, location, "bad_signature"))
                return
            self.signatures_checked += 1
        held = self.commitments.setdefault(value["host_id"], {})
        if value["seq"] in held:
            if held[value["seq"]].event["hash"] != value["hash"]:
                self.problems.append(Problem(order, location, "fork"))
            return
        held[value["seq"]] = Held(value, location, order)

    def check_commitments(self, problems: list[Problem]) -> set:
        covered: set = set()
        for host, held in self.commitments.items():
            ordered = [held[seq] for seq in sorted(held)]
            if ordered and ordered[0].event["seq"] == 1 and ordered[0].event["prev_hash"] is not None:
                problems.append(Problem(ordered[0].order, ordered[0].location, "commitment_broken"))
            if self.from_start and ordered and ordered[0].event["seq"] != 1:
                problems.append(Problem(ordered[0].order, ordered[0].location, "commitment_missing"))
            for earlier, later in zip(ordered, ordered[1:], strict=False):
                if later.event["seq"] != earlier.event["seq"] + 1:
                    problems.append(Problem(later.order, later.location, "commitment_missing"))
                elif later.event["prev_hash"] != earlier.event["hash"]:
                    problems.append(Problem(later.order, later.location, "commitment_broken"))
            held_count = sum(len(chain) for (chain_host, _), chain in self.chains.items() if chain_host == host)
            for entry in ordered:
                size, ranges = entry.event["tree_size"], entry.event["ranges"]
                lengths = [span["last_seq"] - span["first_seq"] + 1 for span in ranges]
                sound = all(span["first_seq"] >= 1 for span in ranges) and all(length >= 1 for length in lengths)
                if not (0 < size <= held_count and sound and sum(lengths) == size):
                    kind = "uncovered" if size > held_count else "root_mismatch"
                    problems.append(Problem(entry.order, entry.location, kind))
                    continue
                leaves, absent = [], False
                for span in ranges:
                    chain = self.chains.get((host, span["instance_id"]), {})
                    for seq in range(span["first_seq"], span["last_seq"] + 1):
                        if seq not in chain:
                            absent = True
                            continue
                        if (host, span["instance_id"], seq) in covered:
                            problems.append(Problem(entry.order, entry.location, "covered_twice"))
                        covered.add((host, span["instance_id"], seq))
                        leaves.append((span["instance_id"].encode("utf-8"), seq, chain[seq].event["hash"]))
                if absent:
                    problems.append(Problem(entry.order, entry.location, "uncovered"))
                    continue
                leaves.sort(key=lambda leaf: (leaf[0], leaf[1]))
                root = merkle_root([bytes.fromhex(leaf[2]) for leaf in leaves]).hex()
                if len(leaves) != entry.event["tree_size"] or root != entry.event["root"]:
                    problems.append(Problem(entry.order, entry.location, "root_mismatch"))
        return covered

    def report(self) -> dict:
        problems, covered = self.all_problems()
        held = [(host, instance, seq) for (host, instance), chain in self.chains.items() for seq in chain]
        uncommitted = sum(1 for place in held if place not in covered)
        report = {
            "ok": not problems,
            "events": self.count,
            "duplicates": self.duplicates,
            "problems": len(problems),
            "commitments": sum(len(held) for held in self.commitments.values()),
            "signatures_checked": self.signatures_checked,
            "uncommitted_events": uncommitted,
        }
        if problems:
            report["first_problem"] = {"kind": problems[0].kind, "location": problems[0].location}
        return report

    def all_problems(self) -> tuple[list[Problem], set]:
        """Every problem in input order, and the (host, instance, seq) of every event a commitment covers."""
        problems = list(self.problems)
        covered = self.check_commitments(problems)
        for chain in self.chains.values():
            ordered = [chain[seq] for seq in sorted(chain)]
            first = ordered[0]
            if first.event["seq"] == 1 and first.event["prev_hash"] is not None:
                problems.append(Problem(first.order, first.location, "broken"))
            if self.from_start and first.event["seq"] != 1:
                problems.append(Problem(first.order, first.location, "not_from_start"))
            # The last usage period, and the gap events since it.
            last_usage = first if "period" in first.event else None
            gaps = [first.event["gap"]] if "gap" in first.event else []
            for earlier, later in zip(ordered, ordered[1:], strict=False):
                if later.event["seq"] != earlier.event["seq"] + 1:
                    problems.append(Problem(later.order, later.location, "missing"))
                    last_usage = later if "period" in later.event else None
                    gaps = [later.event["gap"]] if "gap" in later.event else []
                    continue
                if later.event["prev_hash"] != earlier.event["hash"]:
                    problems.append(Problem(later.order, later.location, "broken"))
                if "gap" in later.event:
                    gaps.append(later.event["gap"])
                    continue
                if last_usage is not None:
                    start, end = later.event["period"]["start"], last_usage.event["period"]["end"]
                    if start < end:
                        problems.append(Problem(later.order, later.location, "overlap"))
                    elif start > end and not any(gap["from"] <= end and gap["to"] >= start for gap in gaps):
                        problems.append(Problem(later.order, later.location, "hole"))
                last_usage, gaps = later, []
        problems.sort(key=lambda problem: problem.order)
        return problems, covered


def verify(paths: list[str], from_start: bool = False, keys: dict | None = None) -> dict:
    verifier = Verifier(from_start, keys)
    for path in paths:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                location = f"{path}:{number}"
                try:
                    value = json.loads(line)
                except ValueError:
                    verifier.add(None, location)
                    continue
                if isinstance(value, list):
                    for index, item in enumerate(value, start=1):
                        verifier.add(item, f"{location}#{index}")
                else:
                    verifier.add(value, location)
    return verifier.report()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-start", action="store_true")
    parser.add_argument("--key", action="append", default=[])
    parser.add_argument("files", nargs="+")
    arguments = parser.parse_args(argv)
    keys = dict(read_key(path) for path in arguments.key)
    report = verify(arguments.files, arguments.from_start, keys)
    print(json.dumps(report, sort_keys=True))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
