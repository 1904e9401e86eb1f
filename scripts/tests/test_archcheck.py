"""The architecture check on a tiny package made up here (each kind of forbidden edge fails with
its message) and on this repository (which passes)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hostmeter_tools import REPO, archcheck

PACKAGE = '''// swift-tools-version:6.2
import PackageDescription

/* a comment with .target(name: "Ghost") in it */
let package = Package(
    name: "tiny",
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.0.0"),
        .package(url: "https://github.com/jpsim/Yams.git", "5.0.1"..<"7.0.0"),
    ],
    targets: [
        .target(name: "Model"),  // the bottom
        .target(
            name: "Engine",
            dependencies: ["Model", .product(name: "Logging", package: "swift-log")],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
        .executableTarget(name: "tiny-cli", dependencies: [.target(name: "Engine"), "Model"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", .product(name: "Yams", package: "Yams")]),
    ]
)
'''

TABLE = '''# tiny

## Targets

| target | holds | imports |
| --- | --- | --- |
| `*Tests` (tests) | tests | all below, Testing, Yams |
| `tiny-cli` (executable) | the CLI | Engine and below |
| `Engine` | the engine | Model, swift-log, Foundation (for Date) |
| `Model` | values | libc |

## Next section
'''

ENGINE = '''import Model
public import Logging
#if canImport(Glibc)
@preconcurrency import Foundation
#endif

let python = """
import json, sys
"""
let raw = #"import Yams "# + #"""
    import Ghost
    """#
/* import Nested /* deeper */ import StillComment */
// import Commented
let interpolated = "\\("import Hidden".count)"
'''


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "Package.swift").write_text(PACKAGE)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/ARCHITECTURE.md").write_text(TABLE)
    for directory, files in {
        "Sources/Model": {"Model.swift": "import Glibc\nimport Synchronization\npublic struct Value {}\n"},
        "Sources/Engine": {"Engine.swift": ENGINE},
        "Sources/tiny-cli": {"main.swift": "import Engine\nimport Model\nimport Foundation\n"},
        "Tests/EngineTests": {"EngineTests.swift": "@testable import Engine\nimport Testing\nimport Yams\n"},
    }.items():
        (tmp_path / directory).mkdir(parents=True)
        for name, text in files.items():
            (tmp_path / directory / name).write_text(text)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_the_tiny_package_passes(tiny: Path) -> None:
    assert archcheck.check(tiny) == []


def test_imports_in_strings_and_comments_are_not_imports() -> None:
    assert archcheck.swift_imports(ENGINE) == [(1, "Model"), (2, "Logging"), (4, "Foundation")]


def test_every_import_form_is_read() -> None:
    source = ("import A\n@testable import B\npublic import C\ninternal import D\n@_exported import E\n"
              "package import F\n@_spi(X) @preconcurrency private import G\nimport struct H.Type\n"
              "  import I.Sub\nlet important = 1\n")
    assert [module for _, module in archcheck.swift_imports(source)] == list("ABCDEFGHI")


def test_a_forbidden_import_fails_naming_file_line_and_edge(tiny: Path) -> None:
    (tiny / "Sources/Model/Model.swift").write_text("import Glibc\nimport Logging\n")
    assert archcheck.check(tiny) == [
        "Sources/Model/Model.swift:2: import Logging: the edge Model → swift-log is not allowed by "
        "docs/ARCHITECTURE.md (row 'Model' allows: libc)"]


def test_an_upward_import_is_named_as_such(tiny: Path) -> None:
    (tiny / "Sources/Model/Extra.swift").write_text("\n\nimport Engine\n")
    assert archcheck.check(tiny) == [
        "Sources/Model/Extra.swift:3: import Engine: the edge Model → Engine points upward by "
        "docs/ARCHITECTURE.md (row 'Model' allows: libc)"]


def test_an_import_of_a_target_without_a_row_is_not_allowed(tiny: Path) -> None:
    edit(tiny / "Package.swift", '.target(name: "Model"),', '.target(name: "Model"),\n        .target(name: "Extra"),')
    (tiny / "Sources/Model/Extra.swift").write_text("import Extra\n")
    assert archcheck.check(tiny) == [
        "Sources/Model/Extra.swift:1: import Extra: the edge Model → Extra is not allowed by "
        "docs/ARCHITECTURE.md (row 'Model' allows: libc)",
        "Package.swift: target Extra has no row in docs/ARCHITECTURE.md's table"]


def test_foundation_is_an_edge_too(tiny: Path) -> None:
    (tiny / "Sources/Model/Extra.swift").write_text("import Foundation\n")
    assert archcheck.check(tiny) == [
        "Sources/Model/Extra.swift:1: import Foundation: the edge Model → Foundation is not allowed by "
        "docs/ARCHITECTURE.md (row 'Model' allows: libc)"]


def test_an_allowed_but_undeclared_import_fails(tiny: Path) -> None:
    edit(tiny / "Package.swift", '"Engine", .product(name: "Yams", package: "Yams")', '"Engine"')
    assert archcheck.check(tiny) == [
        "Tests/EngineTests/EngineTests.swift:3: import Yams: EngineTests does not declare Yams in Package.swift"]


def test_an_upward_dependency_in_package_swift_fails(tiny: Path) -> None:
    edit(tiny / "Package.swift", '.target(name: "Model")', '.target(name: "Model", dependencies: ["Engine"])')
    assert archcheck.check(tiny) == [
        "Package.swift: Model → Engine points upward (Engine is not below Model in docs/ARCHITECTURE.md)"]


def test_a_dependency_the_table_does_not_allow_fails(tiny: Path) -> None:
    edit(tiny / "Package.swift", '.target(name: "Model")',
         '.target(name: "Model", dependencies: [.product(name: "Yams", package: "Yams")])')
    assert archcheck.check(tiny) == [
        "Package.swift: Model depends on Yams, which docs/ARCHITECTURE.md does not allow it "
        "(its row 'Model' allows: libc)"]


def test_the_table_must_point_downwards_and_name_known_things(tiny: Path) -> None:
    edit(tiny / "docs/ARCHITECTURE.md", "| values | libc |", "| values | libc, Engine, Kafka |")
    problems = archcheck.check(tiny)
    assert problems[:2] == [
        "docs/ARCHITECTURE.md:10: Model lists Engine, which is not below it: dependencies point downwards in the table",
        "docs/ARCHITECTURE.md:10: Model lists 'Kafka', which is neither a target in the table nor one of "
        + ", ".join(sorted(archcheck.EXTERNALS))]


def test_targets_and_rows_must_match(tiny: Path) -> None:
    edit(tiny / "docs/ARCHITECTURE.md", "| `Model` | values | libc |\n", "| `Gone` | nothing | libc |\n")
    problems = archcheck.check(tiny)
    assert "docs/ARCHITECTURE.md:10: the table lists Gone, which Package.swift does not declare" in problems
    assert "Package.swift: target Model has no row in docs/ARCHITECTURE.md's table" in problems


def test_a_table_it_cannot_read_is_an_error(tiny: Path) -> None:
    edit(tiny / "docs/ARCHITECTURE.md", "| target | holds | imports |", "| target | imports |")
    with pytest.raises(archcheck.ReadError, match="target | holds | imports"):
        archcheck.check(tiny)


def test_main_exits_1_listing_the_problems(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tiny / "Sources/Model/Model.swift").write_text("import Logging\n")
    assert archcheck.main(["--root", str(tiny)]) == 1
    err = capsys.readouterr().err
    assert "Sources/Model/Model.swift:1: import Logging" in err and "archcheck: 1 problem:" in err


def test_this_repository_passes() -> None:
    assert archcheck.check(REPO) == []


def test_the_package_reader_agrees_with_swiftpm(tmp_path: Path) -> None:
    """Package.swift read by the parser, against SwiftPM's own reading of it (when swift is here)."""
    if shutil.which("swift") is None:
        pytest.skip("no swift toolchain on PATH")
    result = subprocess.run(["swift", "package", "--scratch-path", str(tmp_path / "scratch"), "dump-package"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    swiftpm = {}
    for target in json.loads(result.stdout)["targets"]:
        swiftpm[target["name"]] = [next(iter(d.values()))[0] for d in target["dependencies"]]
    ours = {target.name: [d.name for d in target.dependencies] for target in
            archcheck.parse_package((REPO / "Package.swift").read_text())}
    assert ours == swiftpm
