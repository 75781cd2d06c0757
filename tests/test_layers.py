"""The import structure: no cycle between modules or between packages (layers point one way: contract ->
ops -> reference / losses -> attacks -> training / evaluation -> studies -> commands), and no private
name imported across modules. Read from the source with ``ast`` (top-level and function-level imports)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    mods = {}
    for base, pkg in ((ROOT / "fastsegadv", "fastsegadv"), (ROOT / "kernels", "fastsegadv.kernels")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([pkg, *parts])] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path):
    """(imported module, imported names) of every import in ``path``, relative imports resolved."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            if not node.module:  # "from . import x": x is a module
                for n in names:
                    yield f"{target}.{n}", []
            else:
                yield target, names


def _graph() -> dict[str, set[str]]:
    edges = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for target, names in _imports(name, path):
            # "from pkg import mod" names a submodule
            hits = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES] or [target]
            for t in hits:
                if t in MODULES and t != name and t != "fastsegadv":
                    edges[name].add(t)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])  # fastsegadv.attacks, fastsegadv.ops, ...


def test_no_import_cycle_between_modules():
    edges = _graph()
    # a package's __init__ re-exporting its own submodules is not a cycle of the code
    inner = {m: {t for t in ts if not (MODULES[m].name == "__init__.py" and t.startswith(m + "."))}
             for m, ts in edges.items()}
    inner = {m: {t for t in ts if not (MODULES[t].name == "__init__.py" and m.startswith(t + "."))}
             for m, ts in inner.items()}
    assert _cycles(inner) == []


def test_no_import_cycle_between_packages():
    pk = {}
    for m, ts in _graph().items():
        for t in ts:
            a, b = _package(m), _package(t)
            if a != b:
                pk.setdefault(a, set()).add(b)
    assert _cycles(pk) == []


def test_no_private_name_imported_across_modules():
    bad = []
    for name, path in MODULES.items():
        for target, names in _imports(name, path):
            if target.startswith("fastsegadv") and target != name:
                bad += [f"{name}: from {target} import {n}" for n in names if n.startswith("_")]
    assert bad == []
