"""The package's shape: small files, short functions, no import cycle, and
text that speaks of the project rather than of how it was built."""

import ast
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pqrnn_jax"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules():
  return sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_files_are_small():
  long = {
    str(p.relative_to(REPO)): n
    for p in _modules()
    if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
  }
  assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_functions_are_short():
  long = {}
  for p in _modules():
    for node in ast.walk(ast.parse(p.read_text())):
      if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        n = node.end_lineno - node.lineno + 1
        if n > MAX_FUNCTION_LINES and node.name != "get_config":
          long[f"{p.relative_to(REPO)}:{node.lineno} {node.name}"] = n
  assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _imports(path: Path) -> set[str]:
  """pqrnn_jax modules imported anywhere in `path` (lazy imports too)."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names |= {f"{node.module}.{a.name}" for a in node.names}
  return {n for n in names if n.startswith("pqrnn_jax")}


def test_no_import_cycle():
  mods = {_module_name(p): p for p in _modules()}
  graph = {m: _imports(p) & set(mods) - {m} for m, p in mods.items()}
  done, stack = set(), []

  def visit(m):
    if m in stack:
      cycle = stack[stack.index(m) :] + [m]
      pytest.fail("import cycle: " + " -> ".join(cycle))
    if m in done:
      return
    stack.append(m)
    for n in sorted(graph[m]):
      visit(n)
    stack.pop()
    done.add(m)

  for m in sorted(graph):
    visit(m)


def test_no_history_words_in_tracked_files():
  words = ("sess" + "ion", "iss" + "ue")  # Split: this file is tracked too.
  files = subprocess.run(
    ["git", "ls-files"], cwd=REPO, capture_output=True, text=True
  ).stdout.split()
  if not files:
    pytest.skip("not a git checkout")
  found = []
  for name in files:
    path = REPO / name
    hits = [w for w in words if w in name.lower()]
    if path.suffix in (".py", ".md", ".toml", ".txt", ".json", "") and (
      path.is_file()
    ):
      text = path.read_text(errors="replace").lower()
      hits += [w for w in words if w in text]
    found += [f"{name}: {w}" for w in sorted(set(hits))]
  assert not found, found
