"""The architecture check: Package.swift's module graph and every ``import`` in Sources/ and Tests/
against the table in docs/ARCHITECTURE.md ("## Targets").

    python3 -m hostmeter_tools.archcheck [--root REPO]

The table is the allowed graph; nothing of it is written here. Its rows run from the top of the
house down, and a row may only name targets in rows below it: dependencies point downwards. Each
row has three columns, ``target | holds | imports``:

* target: the target's name in backticks (e.g. ```AgentAPI```; words after it are a remark), or a
  pattern with ``*`` for a group (```*Tests``` for the test targets). Every target of Package.swift
  must match one row, and every named row must be a target of Package.swift.
* imports: a comma-separated list; text in parentheses and backticks are ignored. Each item is
  ``all below`` (every target in a lower row, with everything each of them may import),
  ``NAME and below`` (a lower target with everything it may import), a lower target's name, or one
  of the names in ``EXTERNALS`` below (a package's products, Foundation, libc, Testing).

Then, for each target, it checks:

1. every dependency Package.swift declares for it is allowed by its row (a target above it in the
   table is an upward dependency);
2. every ``import`` in its Swift sources (plain, ``public``/``package``/``internal``/``private``,
   ``@testable``, ``@_exported``, ``@preconcurrency``, ``import struct M.T`` …) names its own
   module, a module of the standard library (``ALWAYS``), or a module its row allows; and any module
   that is not the toolchain's (Foundation, libc, Testing) must be declared in Package.swift too.

Package.swift is read as text by a small parser of Swift's literal syntax (calls, arrays, strings),
so the check runs before anything is built or resolved. It exits 1 listing every problem as
``FILE:LINE: …``, 2 when Package.swift or the table cannot be read.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import REPO

#: The names the table may use for what is not a target of this package, and the modules each
#: stands for. A package's name stands for the products the project uses of it.
EXTERNALS: dict[str, frozenset[str]] = {
    # The toolchain's own modules, which Package.swift does not declare. Foundation re-exports
    # Dispatch, so an import of Dispatch counts as Foundation's.
    "Foundation": frozenset({"Foundation", "FoundationEssentials", "FoundationNetworking", "FoundationXML",
                             "Dispatch"}),
    "libc": frozenset({"Glibc", "Musl", "Darwin", "Bionic", "Android"}),
    "Testing": frozenset({"Testing", "XCTest"}),
    # Packages of Package.swift, by the name the table uses.
    "ArgumentParser": frozenset({"ArgumentParser"}),
    "AsyncHTTPClient": frozenset({"AsyncHTTPClient"}),
    "compress-nio": frozenset({"CompressNIO"}),
    "GRDB": frozenset({"GRDB"}),
    "Hummingbird": frozenset({"Hummingbird", "HummingbirdCore"}),
    "HummingbirdTLS": frozenset({"HummingbirdTLS"}),
    "HummingbirdTesting": frozenset({"HummingbirdTesting"}),
    "ServiceLifecycle": frozenset({"ServiceLifecycle", "UnixSignals"}),
    "Yams": frozenset({"Yams"}),
    "swift-crypto": frozenset({"Crypto", "_CryptoExtras"}),
    "swift-log": frozenset({"Logging"}),
    "swift-metrics": frozenset({"Metrics", "CoreMetrics"}),
    "swift-nio": frozenset({"NIO", "NIOCore", "NIOPosix", "NIOHTTP1", "NIOEmbedded", "NIOConcurrencyHelpers",
                            "NIOFoundationCompat"}),
    "swift-nio-extras": frozenset({"NIOExtras", "NIOHTTPTypes", "NIOHTTPTypesHTTP1"}),
    "swift-nio-ssl": frozenset({"NIOSSL"}),
    "swift-prometheus": frozenset({"Prometheus"}),
    "swift-property-based": frozenset({"PropertyBased"}),
}
#: Names of EXTERNALS that Package.swift does not declare: the toolchain's.
TOOLCHAIN = frozenset({"Foundation", "libc", "Testing"})
#: The standard library's modules: every target may import them.
ALWAYS = frozenset({"Swift", "_Concurrency", "_StringProcessing", "Synchronization", "RegexBuilder", "Observation"})

TABLE_HEADING = "## Targets"
TARGET_KINDS = {"target", "executableTarget", "testTarget", "systemLibrary", "binaryTarget", "macro", "plugin"}


class ReadError(Exception):
    """Package.swift or the table cannot be read (exit 2)."""


# ----------------------------------------------------------------------------------------- Swift text


def _block_comment_end(source: str, i: int) -> int:
    """The index just after the block comment that opens at ``i`` (Swift's nest), or the end."""
    depth, n = 0, len(source)
    while i < n:
        if source.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif source.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def mask_swift(source: str) -> str:
    """``source`` with comments and the contents of string and regex literals blanked (newlines kept,
    so line numbers stay), and code inside string interpolations kept."""
    out = list(source)
    n = len(source)

    def blank(start: int, end: int) -> None:
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = " "

    def block_comment(i: int) -> int:
        return _block_comment_end(source, i)

    def literal(i: int, hashes: int, closing: str, multiline: bool) -> int:
        """Blanks a literal's contents from ``i`` (after its opening delimiter); returns the index
        after its closing one."""
        close = closing + "#" * hashes
        escape = "\\" + "#" * hashes
        start = i
        while i < n:
            if closing != "/" and source.startswith(escape, i):
                k = i + len(escape)
                if k < n and source[k] == "(":
                    blank(start, k + 1)
                    i = code(k + 1, in_interpolation=True)
                    start = i
                else:
                    i = k + 1
            elif source.startswith(close, i):
                blank(start, i)
                return i + len(close)
            elif source[i] == "\n" and not multiline:
                break  # an unterminated single-line literal ends with its line
            else:
                i += 1
        blank(start, min(i, n))
        return min(i, n)

    opening = re.compile(r'(#*)("""|"|/)')

    def code(i: int, in_interpolation: bool = False) -> int:
        depth = 0
        while i < n:
            c = source[i]
            if source.startswith("//", i):
                end = source.find("\n", i)
                end = n if end < 0 else end
                blank(i, end)
                i = end
            elif source.startswith("/*", i):
                end = block_comment(i)
                blank(i, end)
                i = end
            elif c in "#\"":
                match = opening.match(source, i)
                if match is None or (match.group(2) == "/" and not match.group(1)):
                    i += 1  # a directive (#if, #available) or a lone '#'
                    continue
                hashes, delimiter = len(match.group(1)), match.group(2)
                i = literal(match.end(), hashes, '"""' if delimiter == '"""' else delimiter, delimiter == '"""')
            elif in_interpolation and c == "(":
                depth, i = depth + 1, i + 1
            elif in_interpolation and c == ")":
                if depth == 0:
                    return i + 1
                depth, i = depth - 1, i + 1
            else:
                i += 1
        return n

    code(0)
    return "".join(out)


IMPORT = re.compile(
    r"^[ \t]*(?:@[A-Za-z_]\w*(?:\([^)\n]*\))?\s+)*"
    r"(?:(?:public|package|internal|fileprivate|private|open)\s+)?"
    r"import\s+(?:(?:typealias|struct|class|enum|protocol|let|var|func)\s+)?([A-Za-z_]\w*)",
    re.MULTILINE)


def swift_imports(source: str) -> list[tuple[int, str]]:
    """(line number, module) of every import declaration in a Swift file."""
    masked = mask_swift(source)
    return [(masked.count("\n", 0, match.start()) + 1, match.group(1)) for match in IMPORT.finditer(masked)]


# ------------------------------------------------------------------------------------- Package.swift


@dataclass
class Dependency:
    kind: str  # "target", "product" or "byName"
    name: str
    package: str | None = None


@dataclass
class Target:
    name: str
    kind: str
    dependencies: list[Dependency] = field(default_factory=list)
    path: str | None = None

    @property
    def module(self) -> str:
        return _module(self.name)

    @property
    def directory(self) -> str:
        return self.path or f"{'Tests' if self.kind == 'testTarget' else 'Sources'}/{self.name}"


TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<op>\.\.<|\.\.\.|->|[-+*/<>=!&|]+)
  | (?P<punct>[()\[\]{},:.])
  | (?P<number>\d[\d_.]*)
  | (?P<ident>[A-Za-z_]\w*)
""", re.VERBOSE)


STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def _tokens(source: str) -> list[tuple[str, str, int]]:
    """(kind, text, line) of Package.swift's text without its comments."""
    out: list[tuple[str, str, int]] = []
    i = 0
    while i < len(source):
        match = TOKEN.match(source, i)
        line = source.count("\n", 0, i) + 1
        if match is None:
            raise ReadError(f"Package.swift:{line}: cannot read {source[i:i + 20]!r}")
        if match.lastgroup == "string" and "\\(" in match.group(0):
            raise ReadError(f"Package.swift:{line}: string interpolation is not read by this check")
        if match.lastgroup != "space":
            out.append((match.lastgroup or "", match.group(0), line))
        i = match.end()
    return out


def _strip_comments(source: str) -> str:
    """Package.swift without its comments (strings kept as they are)."""
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        if source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
        elif source.startswith("/*", i):
            end = _block_comment_end(source, i)
            out.append("".join("\n" if c == "\n" else " " for c in source[i:end]))
            i = end
        elif source[i] == '"':
            match = STRING.match(source, i)
            end = match.end() if match else i + 1
            out.append(source[i:end])
            i = end
        else:
            out.append(source[i])
            i += 1
    return "".join(out)


class _Parser:
    """Swift's literal expressions: calls with labelled arguments, member access, arrays, strings,
    numbers, identifiers, and binary operators (as in ``"3.12.3"..<"5.0.0"``)."""

    def __init__(self, tokens: list[tuple[str, str, int]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, str, int]:
        index = self.i + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "", self.tokens[-1][2] if self.tokens else 0)

    def take(self, text: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if text is not None and token[1] != text:
            raise ReadError(f"Package.swift:{token[2]}: expected {text!r}, found {token[1]!r}")
        self.i += 1
        return token

    def expression(self) -> object:
        node = self.postfix()
        while self.peek()[0] == "op":
            operator = self.take()[1]
            node = ("op", operator, node, self.postfix())
        return node

    def postfix(self) -> object:
        node = self.primary()
        while True:
            kind, text, _ = self.peek()
            if text == "." and self.peek(1)[0] == "ident":
                self.take()
                node = ("member", node, self.take()[1])
            elif text == "(":
                node = ("call", node, self.arguments())
            else:
                return node

    def primary(self) -> object:
        kind, text, line = self.take()
        if kind == "string":
            return ("string", text[1:-1].replace('\\"', '"').replace("\\\\", "\\"))
        if kind in ("number", "ident"):
            return (kind, text)
        if text == ".":
            return ("member", None, self.take()[1])
        if text == "[":
            items: list[object] = []
            while self.peek()[1] != "]":
                if self.peek()[1] == ":":  # [:] or a dictionary: kept as a list of values
                    self.take()
                    continue
                items.append(self.expression())
                if self.peek()[1] == ":":
                    self.take()
                    items[-1] = ("pair", items[-1], self.expression())
                if self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return ("array", items)
        if text == "(":
            inner = self.expression()
            self.take(")")
            return inner
        raise ReadError(f"Package.swift:{line}: cannot read an expression at {text!r}")

    def arguments(self) -> list[tuple[str | None, object]]:
        self.take("(")
        out: list[tuple[str | None, object]] = []
        while self.peek()[1] != ")":
            label = None
            if self.peek()[0] == "ident" and self.peek(1)[1] == ":":
                label = self.take()[1]
                self.take(":")
            out.append((label, self.expression()))
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return out


def _argument(arguments: list[tuple[str | None, object]], label: str) -> object | None:
    return next((value for name, value in arguments if name == label), None)


def _string(node: object | None, what: str) -> str:
    if not (isinstance(node, tuple) and node[0] == "string"):
        raise ReadError(f"Package.swift: {what} is not a string literal")
    return str(node[1])


def parse_package(source: str) -> list[Target]:
    """The targets of a Package.swift, in order, with their declared dependencies."""
    tokens = _tokens(_strip_comments(source))
    start = next((i for i, (kind, text, _) in enumerate(tokens)
                  if text == "Package" and i + 1 < len(tokens) and tokens[i + 1][1] == "("), None)
    if start is None:
        raise ReadError("Package.swift: no Package(…) call")
    parser = _Parser(tokens)
    parser.i = start + 1
    arguments = parser.arguments()
    targets_node = _argument(arguments, "targets")
    if not (isinstance(targets_node, tuple) and targets_node[0] == "array"):
        raise ReadError("Package.swift: Package(targets:) is not an array literal")
    targets: list[Target] = []
    for node in targets_node[1]:
        if not (isinstance(node, tuple) and node[0] == "call" and node[1][0] == "member"
                and node[1][2] in TARGET_KINDS):
            raise ReadError(f"Package.swift: a target that is not a .target(…)-style call: {node!r:.80}")
        kind, arguments = node[1][2], node[2]
        name = _string(_argument(arguments, "name"), "a target's name")
        path_node = _argument(arguments, "path")
        target = Target(name, kind, path=_string(path_node, f"{name}'s path") if path_node else None)
        dependencies = _argument(arguments, "dependencies")
        if dependencies is not None:
            if not (isinstance(dependencies, tuple) and dependencies[0] == "array"):
                raise ReadError(f"Package.swift: the dependencies of {name} are not an array literal")
            target.dependencies = [_dependency(item, name) for item in dependencies[1]]
        targets.append(target)
    return targets


def _dependency(node: object, owner: str) -> Dependency:
    if isinstance(node, tuple) and node[0] == "string":
        return Dependency("byName", str(node[1]))
    if isinstance(node, tuple) and node[0] == "call" and node[1][0] == "member":
        kind, arguments = node[1][2], node[2]
        name = _string(_argument(arguments, "name"), f"a dependency of {owner}")
        if kind == "product":
            return Dependency("product", name, _string(_argument(arguments, "package"), f"{owner}'s product {name}"))
        if kind in ("target", "byName"):
            return Dependency(kind, name)
    raise ReadError(f"Package.swift: cannot read a dependency of {owner}: {node!r:.80}")


# ------------------------------------------------------------------------------------- the table


@dataclass
class Row:
    target: str  # a name, or a pattern with '*'
    items: list[str]
    line: int

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.target) if "*" in self.target else name == self.target


def parse_table(markdown: str, path: str = "docs/ARCHITECTURE.md") -> list[Row]:
    """The rows of the table under "## Targets", top first."""
    lines = markdown.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == TABLE_HEADING)
    except StopIteration:
        raise ReadError(f"{path}: no '{TABLE_HEADING}' section") from None
    rows: list[Row] = []
    header_seen = False
    for index in range(start + 1, len(lines)):
        line = lines[index].strip()
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not header_seen:
            if [cell.lower() for cell in cells] != ["target", "holds", "imports"]:
                raise ReadError(f"{path}:{index + 1}: the table's columns must be target | holds | imports")
            header_seen = True
            continue
        if set(line) <= set("|-: "):
            continue
        if len(cells) != 3:
            raise ReadError(f"{path}:{index + 1}: a row needs 3 cells, found {len(cells)}")
        names = re.findall(r"`([^`]+)`", cells[0])
        if len(names) != 1:
            raise ReadError(f"{path}:{index + 1}: the target cell must hold one name in backticks, found {cells[0]!r}")
        rows.append(Row(names[0], _items(cells[2]), index + 1))
    if not rows:
        raise ReadError(f"{path}: the '{TABLE_HEADING}' section has no table rows")
    return rows


def _items(cell: str) -> list[str]:
    """The imports cell as items: remarks in parentheses and backticks dropped, split at commas."""
    text = cell.replace("`", "")
    for _ in range(10):  # nested parentheses, innermost first
        text, count = re.subn(r"\([^()]*\)", "", text)
        if not count:
            break
    return [" ".join(item.split()) for item in text.split(",") if item.strip()]


class Graph:
    """The allowed graph: for each row, the modules its targets may import."""

    def __init__(self, rows: list[Row], path: str = "docs/ARCHITECTURE.md") -> None:
        self.rows = rows
        self.path = path
        self.problems: list[str] = []
        self.index = {row.target: position for position, row in enumerate(rows) if "*" not in row.target}
        self._allowed: dict[int, frozenset[str]] = {}
        self._targets: dict[int, frozenset[str]] = {}
        for position in reversed(range(len(rows))):
            self._resolve(position)

    def _resolve(self, position: int) -> None:
        """Fills the modules and the lower targets row ``position`` allows; rows below are resolved."""
        row = self.rows[position]
        modules: set[str] = set()
        targets: set[str] = set()

        def target(name: str, closure: bool) -> None:
            below = self.index.get(name)
            if below is None:
                self.problems.append(f"{self.path}:{row.line}: {row.target} lists {name!r}, which is neither a "
                                     f"target in the table nor one of {', '.join(sorted(EXTERNALS))}")
            elif below <= position:
                self.problems.append(f"{self.path}:{row.line}: {row.target} lists {name}, which is not below it: "
                                     "dependencies point downwards in the table")
            else:
                modules.add(_module(name))
                targets.add(name)
                if closure:
                    modules.update(self._allowed[below])
                    targets.update(self._targets[below])

        for item in row.items:
            if item == "all below":
                for below in range(position + 1, len(self.rows)):
                    if "*" not in self.rows[below].target:
                        target(self.rows[below].target, closure=True)
            elif item.endswith(" and below"):
                target(item[: -len(" and below")].strip(), closure=True)
            elif item in EXTERNALS:
                modules.update(EXTERNALS[item])
            else:
                target(item, closure=False)
        self._allowed[position] = frozenset(modules)
        self._targets[position] = frozenset(targets)

    def row_of(self, name: str) -> int | None:
        if name in self.index:
            return self.index[name]
        return next((position for position, row in enumerate(self.rows) if row.matches(name)), None)

    def allowed(self, position: int) -> frozenset[str]:
        return self._allowed[position]

    def allowed_targets(self, position: int) -> frozenset[str]:
        return self._targets[position]


def _module(target_name: str) -> str:
    """The module name SwiftPM gives a target: its name with non-identifier characters as '_'."""
    return re.sub(r"\W", "_", target_name)


# ------------------------------------------------------------------------------------- the check


def _external_name(module: str) -> str:
    """The table's name for a module outside the package (for messages)."""
    return next((name for name, modules in EXTERNALS.items() if module in modules), module)


def _swift_files(root: Path, directory: str) -> Iterator[Path]:
    base = root / directory
    if base.is_dir():
        yield from sorted(path for path in base.rglob("*.swift") if path.is_file())


def check(root: Path, architecture: str = "docs/ARCHITECTURE.md") -> list[str]:
    """Every problem found, one line each (empty: the code matches the table)."""
    try:
        package = (root / "Package.swift").read_text(encoding="utf-8")
        table = (root / architecture).read_text(encoding="utf-8")
    except OSError as error:
        raise ReadError(str(error)) from None
    targets = parse_package(package)
    graph = Graph(parse_table(table, architecture), architecture)
    problems = list(graph.problems)
    by_name = {target.name: target for target in targets}
    by_module = {target.module: target for target in targets}

    for row in graph.rows:
        if "*" not in row.target and row.target not in by_name:
            problems.append(f"{architecture}:{row.line}: the table lists {row.target}, which Package.swift does "
                            "not declare")

    for target in targets:
        position = graph.row_of(target.name)
        if position is None:
            problems.append(f"Package.swift: target {target.name} has no row in {architecture}'s table")
            continue
        allowed = graph.allowed(position)
        row = graph.rows[position]

        # 1. What Package.swift declares.
        declared: set[str] = set()
        for dependency in target.dependencies:
            is_target = dependency.kind == "target" or (dependency.kind == "byName" and dependency.name in by_name)
            module = _module(dependency.name) if is_target else dependency.name
            declared.add(module)
            if module in allowed:
                continue
            if is_target:
                above = graph.row_of(dependency.name)
                if above is not None and above <= position:
                    problems.append(f"Package.swift: {target.name} → {dependency.name} points upward "
                                    f"({dependency.name} is not below {row.target} in {architecture})")
                    continue
            problems.append(f"Package.swift: {target.name} depends on {dependency.name}, which {architecture} "
                            f"does not allow it (its row {row.target!r} allows: {', '.join(row.items) or 'nothing'})")

        # 2. What its sources import.
        for path in _swift_files(root, target.directory):
            relative = path.relative_to(root)
            for line, module in swift_imports(path.read_text(encoding="utf-8", errors="replace")):
                if module == target.module or module in ALWAYS:
                    continue
                if module not in allowed:
                    imported_row = graph.row_of(by_module[module].name) if module in by_module else None
                    upward = imported_row is not None and imported_row <= position
                    kind = "points upward" if upward else "is not allowed"
                    problems.append(
                        f"{relative}:{line}: import {module}: the edge {target.name} → "
                        f"{by_module[module].name if module in by_module else _external_name(module)} {kind} "
                        f"by {architecture} (row {row.target!r} allows: {', '.join(row.items) or 'nothing'})")
                elif module not in declared and _external_name(module) not in TOOLCHAIN:
                    problems.append(f"{relative}:{line}: import {module}: {target.name} does not declare {module} in "
                                    "Package.swift")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this one)")
    parser.add_argument("--architecture", default="docs/ARCHITECTURE.md", help="the table's file, under --root")
    arguments = parser.parse_args(argv)
    try:
        problems = check(arguments.root, arguments.architecture)
    except ReadError as error:
        print(f"archcheck: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        print(f"archcheck: {count}: the module graph and imports do not match {arguments.architecture}'s table",
              file=sys.stderr)
        return 1
    print(f"archcheck: Package.swift and every import match {arguments.architecture}'s table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
