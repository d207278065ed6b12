"""`python -m bench <name> [args]`: run the benchmark `bench/<name>.py`; no name or --help lists them.

Benchmarks are found, not listed by hand: every module of this folder that defines a top-level
`main` is one, so a new `bench/<name>.py` with `main(argv)` runs without touching this file.
Listing reads each module's source (its docstring's first line) instead of importing it, so it
answers at once.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks(folder: Path = HERE) -> dict[str, str]:
    """name -> the first line of its docstring, for every module in `folder` with a top-level `main`."""
    found = {}
    for path in sorted(folder.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
            found[path.stem] = (ast.get_docstring(tree) or "").strip().split("\n")[0]
    return found


def usage() -> str:
    found = benchmarks()
    width = max(map(len, found), default=0)
    lines = [f"  {name:<{width}}  {doc}" for name, doc in found.items()]
    return "usage: python -m bench <name> [args]   (python -m bench <name> --help: its options)\n\n" + (
        "\n".join(lines)
    )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = args[0].replace("-", "_"), args[1:]
    if name not in benchmarks():
        print(f"python -m bench: no benchmark named {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    sys.argv = [f"python -m bench {name}", *rest]  # what argparse shows as the program
    code = importlib.import_module(f"bench.{name}").main(rest)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
