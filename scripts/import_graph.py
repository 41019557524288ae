"""Print every searchgym import that runs against the data flow, and package-level import cycles.

    python scripts/import_graph.py [SRC_DIR]        # exit 1 if any back-edge or cycle is found

Imports inside functions count too (an import that only runs later is still a dependency). `TYPE_CHECKING`-only
imports are ignored. The flow, bottom to top, is LAYERS below; a package may import its own layer or lower ones.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

LAYERS = [
    {"__init__", "types", "text", "config", "io", "registry", "http", "models", "errors", "parallel", "hashcache"},
    {"world"},
    {"index"},
    {"tasks"},
    {"env"},
    {"agents"},
    {"rollout"},
    {"advantage"},
    {"trainer"},
    {"integrations"},
    {"eval"},
    {"view"},
    {"pipeline"},
    {"demo"},
    {"cli"},
]
LAYER = {pkg: i for i, group in enumerate(LAYERS) for pkg in group}


def package_of(module: str) -> str:
    """`searchgym.world.build` -> "world"; `searchgym.types` -> "types"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                if hasattr(child, "lineno"):
                    lines.add(child.lineno)
    return lines


def imports(src: Path) -> list[tuple[str, int, str]]:
    """(importer file, line, imported module) for every searchgym import under `src`."""
    out = []
    root = src / "searchgym"
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if node.lineno in skip if hasattr(node, "lineno") else False:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import: resolve against this module's package
                    base = (
                        module.split(".")[: -node.level or None]
                        if path.name != "__init__.py"
                        else module.split(".")
                    )
                    names = [".".join([*base, node.module] if node.module else base)]
                else:
                    names = [node.module or ""]
            else:
                continue
            for name in names:
                if name == "searchgym" or name.startswith("searchgym."):
                    out.append((str(path.relative_to(src)), node.lineno, name))
    return out


def main() -> int:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "src"
    edges = imports(src)
    back = []
    graph: dict[str, set[str]] = defaultdict(set)
    for file, line, name in edges:
        a, b = package_of(".".join(Path(file).with_suffix("").parts)), package_of(name)
        if a == b:
            continue
        graph[a].add(b)
        if LAYER.get(a, 99) < LAYER.get(b, 99):
            back.append(f"{file}:{line} -> {name}   ({a} imports {b}, which is above it)")
    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in graph.get(b, ())})
    print(f"{len(back)} import(s) against the flow")
    for line in back:
        print("  " + line)
    print(f"{len(cycles)} package cycle(s)")
    for a, b in cycles:
        print(f"  {a} <-> {b}")
    unknown = sorted({p for p in graph} - set(LAYER))
    if unknown:
        print(f"packages missing from LAYERS: {unknown}")
    return 1 if back or cycles or unknown else 0


if __name__ == "__main__":
    raise SystemExit(main())
