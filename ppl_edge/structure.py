"""The house's structure, checked from the source (``python -m ppl_edge.structure``, run by CI).

Two rules (docs/contracts.md, "Layers"):

1. **One direction of imports.** ``ppl_edge.cli`` is on top; ``ppl_edge.train``,
   ``ppl_edge.convert`` and ``ppl_edge.runtime`` stand side by side and never import each other;
   the ground floor (every other ``ppl_edge`` module: the model, the synthetic world, the manifest,
   preprocessing, skeleton, checkpoint, file I/O, errors) imports none of the four.
2. **Small units.** No module over :data:`MAX_MODULE_LINES` lines and no function over
   :data:`MAX_FUNCTION_LINES`.

The three parts live in their own top-level folders and install as ``ppl_edge.*`` sub-packages
(``pyproject.toml``), so the check reads the files and maps each folder to its package itself
instead of relying on an import graph tool that only sees ``ppl_edge/``. Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# Folder (relative to the repository root) -> the package it installs as.
PACKAGE_DIRS = {
    "ppl_edge": "ppl_edge",
    "train": "ppl_edge.train",
    "convert": "ppl_edge.convert",
    "runtime": "ppl_edge.runtime",
}
PARTS = ("ppl_edge.train", "ppl_edge.convert", "ppl_edge.runtime")
TOP = "ppl_edge.cli"


@dataclass(frozen=True)
class Finding:
    """One breach of a rule: where, and what."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def iter_modules(root: Path) -> Iterator[tuple[str, Path]]:
    """(dotted module name, file) of every Python file of the installed packages under ``root``."""
    for folder, package in PACKAGE_DIRS.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if folder == "ppl_edge" and parts and parts[0] in ("train", "convert", "runtime"):
                continue  # not a folder of the ground floor (never present; guards odd trees)
            yield ".".join([package, *parts]), path


def layer_of(module: str) -> str:
    """ "cli", one of PARTS, or "ground" for a ``ppl_edge`` module."""
    if module == TOP or module.startswith(TOP + "."):
        return "cli"
    for part in PARTS:
        if module == part or module.startswith(part + "."):
            return part
    return "ground"


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every ``ppl_edge`` import in a parsed module, wherever it
    stands (lazy imports inside functions count too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:  # ``from ppl_edge import train`` imports the sub-package
                yield node.lineno, f"{name}.{alias.name}"


def _allowed(source: str, target: str) -> bool:
    if source == "cli" or target == "ground":
        return True
    if target == "cli":
        return False
    return source == target  # a part imports itself and the ground floor only


def check_layers(root: Path) -> list[Finding]:
    """Every import that goes against the one direction of rule 1."""
    findings = []
    known = {name for name, _ in iter_modules(root)}
    for module, path in iter_modules(root):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        source = layer_of(module)
        for line, target in imported_modules(tree, module, path.name == "__init__.py"):
            if not target.startswith("ppl_edge") or (
                target not in known and "." in target and target.rsplit(".", 1)[0] in known
            ):
                continue  # third-party, or a name imported from a module (checked via the module)
            dest = layer_of(target)
            if not _allowed(source, dest):
                findings.append(
                    Finding(
                        path,
                        line,
                        f"{module} ({source}) imports {target} ({dest}): not allowed by the layers",
                    )
                )
    return findings


def check_sizes(
    root: Path, max_module: int = MAX_MODULE_LINES, max_function: int = MAX_FUNCTION_LINES
) -> list[Finding]:
    """Modules over ``max_module`` lines and functions over ``max_function`` (rule 2)."""
    findings = []
    for _, path in iter_modules(root):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > max_module:
            findings.append(Finding(path, 1, f"module has {lines} lines (limit {max_module})"))
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > max_function:
                    findings.append(
                        Finding(
                            path,
                            node.lineno,
                            f"function {node.name} has {length} lines (limit {max_function})",
                        )
                    )
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ppl_edge.structure",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="repository root (default: the one this file lies in)",
    )
    args = parser.parse_args(argv)
    findings = check_layers(args.root) + check_sizes(args.root)
    for finding in findings:
        print(finding)
    modules = sum(1 for _ in iter_modules(args.root))
    print(f"{modules} modules checked: {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
