"""The configuration writer: what it writes must read back, with a real YAML parser, as the dict it
was given, whatever the strings hold."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from hostmeter_tools import config

# Strings a plain YAML scalar would misread or refuse: indicators, YAML 1.1 booleans and nulls,
# numbers, line breaks, quotes, controls, and the characters YAML does not allow raw.
TRICKY = [
    "", " leading", "trailing ", "a: b", "a #b", "#x", "- x", "* x", "&anchor", "*alias", "!tag", "%x", "@x",
    "`x", "{x}", "[x]", "|", ">", "?", "yes", "no", "on", "off", "y", "n", "true", "False", "null", "~", "NULL",
    "123", "0x1F", "0o17", "1e3", ".inf", "-.nan", "1_000", "12:30:00", "2026-12-03", "line\nbreak", "tab\there",
    'quote " here', "single ' here", "back\\slash", "\x00\x01\x1f", "\x7f", "\x85", "\x9f", "\u00a0",
    "\u2028\u2029", "\ufeff", "\ufffe\uffff", "é ü 日本 😀", "/tmp/with space/state",
    "http://127.0.0.1:8080/events?a=1#frag",
]


@pytest.mark.parametrize("text", TRICKY)
def test_a_string_value_reads_back_as_itself(text: str) -> None:
    document = {"value": text, "nested": {"value": text}, "list": [text]}
    assert yaml.safe_load(config.render(document)) == document


@pytest.mark.parametrize("key", ["no", "yes", "on", "Off", "null", "with space", "a:b", "1", "-x", "ü"])
def test_a_key_yaml_would_misread_is_quoted(key: str) -> None:
    text = config.render({key: 1})
    assert not text.startswith(f"{key}:")
    assert yaml.safe_load(text) == {key: 1}


def test_the_agents_keys_stay_plain_and_block_style() -> None:
    text = config.render({"host_id": "chaos", "interval_seconds": 1, "api": {"listen": "127.0.0.1:0"},
                          "retry": {"base_seconds": 0.05}, "gpu": {"enabled": False}, "x": None})
    assert text == ('host_id: "chaos"\ninterval_seconds: 1\napi:\n  listen: "127.0.0.1:0"\n'
                    'retry:\n  base_seconds: 0.05\ngpu:\n  enabled: false\nx: null\n')


def test_numbers_booleans_and_nesting_keep_their_types() -> None:
    document = {"int": -3, "big": 2**62, "float": 0.1, "tiny": 1e-9, "huge": 1e300, "negative": -2.5e-7,
                "true": True, "false": False, "none": None,
                "empty_list": [], "empty_map": {}, "rules": [{"metric": "cpu", "above": 90.5, "tags": ["a", "b"]},
                                                         {"metric": "mem", "nested": {"deep": [1, [2, 3]]}}]}
    loaded = yaml.safe_load(config.render(document))
    assert loaded == document
    assert type(loaded["int"]) is int and type(loaded["float"]) is float and loaded["true"] is True


def test_paths_are_written_as_strings(tmp_path: Path) -> None:
    written = config.write(tmp_path / "c.yaml", {"state_dir": tmp_path / "state: x"})
    assert yaml.safe_load(written.read_text()) == {"state_dir": str(tmp_path / "state: x")}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {1, 2}, b"bytes", object()])
def test_a_value_a_configuration_cannot_hold_is_refused(value: object) -> None:
    with pytest.raises(config.ConfigError):
        config.render({"value": value})


def test_keys_must_be_strings_and_the_top_a_mapping() -> None:
    with pytest.raises(config.ConfigError):
        config.render({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(config.ConfigError):
        config.render(["x"])  # type: ignore[arg-type]
