"""The folder tree is the architecture (docs/architecture.md): packages are
layered along the data flow, and no package imports one above it or a
private name of another package."""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vlcc")

# Lower number = lower layer. A module may import its own package and lower ones.
LAYERS = {
    "errors": 0, "_version": 0, "_mpi": 0, "units": 0, "settings": 0,
    "repo": 1, "comm": 1,
    "kernels": 2, "state": 2,
    "layout": 3,
    "redundancy": 4,
    "encode": 5,
    "io": 6,
    "engine": 7,
    "commit": 8,
    "restore": 9,
    "checkpointer": 10, "repository": 10, "__init__": 10,
    # front-ends: the C ABI and the command line expose the features below them
    "capi": 12, "cli": 12,
}
# Feature packages built on the public API (adjoint, torch, slurm, tools, ...)
# sit above the public layer and below the front-ends.
TOP = 11
# Known upward imports, each a documented hook (docs/architecture.md), not a cycle
# at import time (imported inside a function): (importing file, imported package).
HOOKS = {
    ("checkpointer.py", "tools"),      # compare_to= and `vlcc replay` (vlcc/tools/)
    ("__init__.py", "tools"),          # vlcc.diff is part of the one-page public API
}


def _package(rel: str) -> str:
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".py") else first


def _imports():
    """(importing module, imported vlcc module, imported names) for every import."""
    for dirpath, _dirs, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, ROOT)
            mod_parts = ["vlcc"] + rel[:-3].split(os.sep)
            if mod_parts[-1] == "__init__":
                mod_parts = mod_parts[:-1]
                pkg_parts = mod_parts
            else:
                pkg_parts = mod_parts[:-1]
            with open(path) as fh:
                tree = ast.parse(fh.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = pkg_parts[:len(pkg_parts) - node.level + 1]
                        target = base + (node.module.split(".") if node.module else [])
                    elif node.module and node.module.split(".")[0] == "vlcc":
                        target = node.module.split(".")
                    else:
                        continue
                    names = [a.name for a in node.names]
                    if not node.module:   # "from . import x": x is a module
                        for n in names:
                            yield rel, target + [n], []
                    else:
                        yield rel, target, names
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        if a.name.split(".")[0] == "vlcc":
                            yield rel, a.name.split("."), []


def _layer(pkg: str) -> int:
    return LAYERS.get(pkg, TOP)


def test_no_package_imports_a_layer_above_it():
    bad = []
    for rel, target, _names in _imports():
        src = _package(rel)
        dst = target[1] if len(target) > 1 else "__init__"
        if src == dst or (rel, dst) in HOOKS:
            continue
        if _layer(dst) > _layer(src):
            bad.append(f"{rel} imports {'.'.join(target)} ({src}={_layer(src)} < {dst}={_layer(dst)})")
    assert not bad, "\n".join(bad)


def test_no_private_name_imported_across_packages():
    bad = []
    for rel, target, names in _imports():
        src = _package(rel)
        dst = target[1] if len(target) > 1 else "__init__"
        if src == dst:
            continue
        for n in names:
            if n.startswith("_") and not n.startswith("__"):
                bad.append(f"{rel} imports {n} from {'.'.join(target)}")
    assert not bad, "\n".join(bad)


def test_checkpointer_reads_in_one_sitting():
    with open(os.path.join(ROOT, "checkpointer.py")) as f:
        tree = ast.parse(f.read())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Checkpointer")
    assert cls.end_lineno - cls.lineno + 1 <= 250


@pytest.mark.parametrize("pkg", sorted(k for k, v in LAYERS.items() if 0 < v < 10))
def test_layer_packages_exist(pkg):
    assert os.path.isdir(os.path.join(ROOT, pkg)), pkg


# -- private names reached through objects ---------------------------------------------
# The import test above cannot see ``ck._state`` or ``getattr(ck, "_engine")``: a
# private name of another package reached through one of its objects, or passed as
# a private keyword (``_driven=True``). Rule: in package P, an access ``x._name``
# (x not self/cls), ``getattr/setattr/hasattr(x, "_name")`` or a keyword ``_name=``
# is an error when ``_name`` is defined by another vlcc package and not by P
# (defined = a function, class, parameter or assigned name or attribute; imports
# do not define). Private names of third-party objects (``sys._getframe``,
# ``namedtuple._replace``) are nobody's in vlcc and pass.

def _sources(root: str = ROOT) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                with open(path) as fh:
                    out[os.path.relpath(path, root)] = fh.read()
    return out


def _private(name) -> bool:
    return isinstance(name, str) and name.startswith("_") and not name.startswith("__")


def _defined(tree) -> set[str]:
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
            if not isinstance(n, ast.ClassDef):
                a = n.args
                names.update(x.arg for x in a.posonlyargs + a.args + a.kwonlyargs)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
            names.add(n.attr)
    return {x for x in names if _private(x)}


def _reached(tree):
    """(line, private name) of every attribute access, getattr-family call and keyword."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and _private(n.attr):
            if not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls")):
                yield n.lineno, n.attr
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
              and n.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(n.args) > 1
              and isinstance(n.args[1], ast.Constant) and _private(n.args[1].value)):
            yield n.lineno, n.args[1].value
        elif isinstance(n, ast.keyword) and _private(n.arg):
            yield n.value.lineno, n.arg


def private_reach_through(sources: dict[str, str]) -> list[str]:
    trees = {rel: ast.parse(text, rel) for rel, text in sources.items()}
    own: dict[str, set[str]] = {}
    for rel, tree in trees.items():
        own.setdefault(_package(rel), set()).update(_defined(tree))
    bad = []
    for rel, tree in trees.items():
        pkg = _package(rel)
        for line, name in _reached(tree):
            if name in own[pkg]:
                continue
            owners = sorted(q for q, names in own.items() if q != pkg and name in names)
            if owners:
                bad.append(f"{rel}:{line}: reaches {name} of {'/'.join(owners)}")
    return bad


def test_no_private_name_reached_across_packages():
    bad = private_reach_through(_sources())
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("planted", [
    "def f(ck):\n    return ck._s.state\n",                        # attribute
    "def f(ck):\n    return getattr(ck, '_s', None)\n",            # getattr
    "def f(Adjoint, ck):\n    return Adjoint(ck, _setup=1)\n",     # private keyword
    "def f(repo, vid):\n    return repo._load(vid)\n",             # a repo/ method
])
def test_private_reach_through_is_caught(planted):
    sources = _sources()
    sources[os.path.join("tools", "planted.py")] = planted
    bad = private_reach_through(sources)
    assert len(bad) == 1 and bad[0].startswith(os.path.join("tools", "planted.py") + ":2:"), bad


def test_capi_api_modules_import_only_its_bottom():
    """capi/ has no circle: the three API modules (core, veloc/, adjoint) import of
    capi only its bottom (codes, _ffi, process, options) and themselves;
    binding.py binds them."""
    bottom = {"codes", "_ffi", "process", "options"}
    bad = []
    for rel, target, _names in _imports():
        parts = rel.split(os.sep)
        if parts[0] != "capi" or len(parts) < 2:
            continue
        api = parts[1][:-3] if parts[1].endswith(".py") else parts[1]
        if api not in ("core", "veloc", "adjoint"):
            continue
        if target[:2] == ["vlcc", "capi"] and (len(target) < 3 or target[2] not in bottom | {api}):
            bad.append(f"{rel} imports {'.'.join(target)}")
    assert not bad, "\n".join(bad)


# -- collectives: only comm/ calls a communicator ---------------------------------------
# Every collective goes through comm/protocol.py (error-agreeing: an exception on
# one rank is raised on every rank, nobody hangs). A call ``x.bcast(...)`` (or any
# name below) outside comm/ is a raw collective. torch/comm.py implements a
# communicator on torch.distributed: the one exception. ``scatter`` and ``reduce``
# are also matplotlib's and functools': those count when the receiver names a comm;
# ``protocol.allgather(comm, ...)`` is the protocol itself.
COLLECTIVES = {"allreduce", "Allreduce", "bcast", "Bcast", "allgather", "Allgather", "Allgatherv",
               "gather", "Gather", "Gatherv", "Barrier", "barrier", "Ibarrier", "Split",
               "Split_type", "Dup", "alltoall", "Alltoall", "Scatter", "Reduce"}
AMBIGUOUS = {"scatter", "reduce"}
COMM_IMPLEMENTATIONS = {os.path.join("torch", "comm.py")}


def raw_collectives(sources: dict[str, str]) -> list[str]:
    bad = []
    for rel, text in sources.items():
        if _package(rel) == "comm" or rel in COMM_IMPLEMENTATIONS:
            continue
        for n in ast.walk(ast.parse(text, rel)):
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr"
                    and len(n.args) > 1 and isinstance(n.args[1], ast.Constant)
                    and n.args[1].value in COLLECTIVES):      # split = getattr(comm, "Split")
                bad.append(f"{rel}:{n.lineno}: {ast.unparse(n)}")
                continue
            if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
                continue
            name, receiver = n.func.attr, ast.unparse(n.func.value)
            if receiver.split(".")[-1] == "protocol":      # protocol.allgather(comm, ...)
                continue
            if name in COLLECTIVES or (name in AMBIGUOUS
                                       and "comm" in receiver.lower()):
                bad.append(f"{rel}:{n.lineno}: {ast.unparse(n.func)}")
    return bad


def test_collectives_go_through_the_protocol():
    bad = raw_collectives(_sources())
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("planted", [
    "def f(ck):\n    return ck.comm.bcast(1, root=0)\n",
    "def f(self):\n    self.comm.Barrier()\n",
    "def f(c, MPI):\n    return c.allreduce(1, op=MPI.MAX)\n",
    "def f(comm):\n    return comm.reduce(1, root=0)\n",
    "def f(comm):\n    split = getattr(comm, 'Split', None)\n",
])
@pytest.mark.parametrize("where", [os.path.join("slurm", "planted.py"), os.path.join("torch", "union.py"),
                                   os.path.join("commit", "planted.py")])
def test_raw_collective_is_caught(planted, where):
    sources = _sources()
    sources[where] = sources.get(where, "") + "\n\n" + planted
    bad = raw_collectives(sources)
    assert len(bad) == 1 and bad[0].startswith(where + ":"), bad


# -- settings: one table -----------------------------------------------------------------
def _env_reads(tree):
    """Names of VLCC_* variables read from the environment directly (also
    through a module constant: ``NAME = "VLCC_X"; os.environ.get(NAME)``)."""
    consts = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
              and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
              for t in n.targets if isinstance(t, ast.Name)}
    for n in ast.walk(tree):
        text = None
        if isinstance(n, ast.Call) and ast.unparse(n.func) in ("os.environ.get", "os.getenv"):
            text = n.args[0] if n.args else None
        elif isinstance(n, ast.Subscript) and ast.unparse(n.value) == "os.environ":
            text = n.slice
        elif isinstance(n, ast.Compare) and any(ast.unparse(c) == "os.environ" for c in n.comparators):
            text = n.left
        if isinstance(text, ast.Name) and text.id in consts:
            text = ast.Constant(consts[text.id])
        if isinstance(text, ast.Constant) and str(text.value).startswith("VLCC_"):
            yield n.lineno, text.value


def test_vlcc_variables_are_read_through_settings_only():
    bad = []
    for rel, text in _sources().items():
        if rel == "settings.py":
            continue
        bad += [f"{rel}:{line}: {name}" for line, name in _env_reads(ast.parse(text))]
    assert not bad, "\n".join(bad)
    planted = ast.parse("import os\nx = os.environ.get('VLCC_MODE')\ny = 'VLCC_X' in os.environ\n"
                        "E = 'VLCC_Y'\nz = os.environ.get(E, '1')\n")
    assert sorted(n for _l, n in _env_reads(planted)) == ["VLCC_MODE", "VLCC_X", "VLCC_Y"]


def test_settings_table_is_the_documented_one():
    import re
    from vlcc.settings import SETTINGS
    with open(os.path.join(os.path.dirname(ROOT), "docs", "architecture.md")) as f:
        doc = f.read().split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(VLCC_\w+)` \|", doc, re.M)
    assert sorted(documented) == sorted(SETTINGS)
    used = set()
    for text in _sources().values():
        used |= set(re.findall(r"settings\.(?:get|flag|is_set)\(\s*\"(VLCC_\w+)\"", text))
    assert used <= set(SETTINGS), used - set(SETTINGS)


def test_tests_mirror_the_package_tree():
    """tests/<package>/ holds the tests of vlcc/<package>/ (issue 31); only
    helpers, scripts, fixtures and project-wide checks live elsewhere."""
    tests = os.path.dirname(os.path.abspath(__file__))
    helpers = {"scripts", "fixtures", "__pycache__"}
    packages = {d for d in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, d))
                and os.path.exists(os.path.join(ROOT, d, "__init__.py"))}
    subdirs = {d for d in os.listdir(tests) if os.path.isdir(os.path.join(tests, d))} - helpers
    assert subdirs <= packages, f"test folders without a vlcc package: {sorted(subdirs - packages)}"
    assert len(subdirs) >= 10, sorted(subdirs)
    for d in subdirs:
        assert any(f.startswith("test_") for f in os.listdir(os.path.join(tests, d))), d


def test_every_vlcc_name_in_the_source_is_a_setting():
    """Any ``VLCC_*`` name written in vlcc/ (however it reaches the environment)
    is in the settings table, hence documented, unless it is a name of the C
    header (return codes, dtypes: include/vlcc.h) or libvlcc's build macro."""
    import re
    from vlcc.settings import SETTINGS
    with open(os.path.join(os.path.dirname(ROOT), "include", "vlcc.h")) as f:
        c_names = set(re.findall(r"\bVLCC_\w+", f.read())) | {"VLCC_PYTHON_EXE"}
    used = {}
    for rel, text in _sources().items():
        for name in re.findall(r"\bVLCC_[A-Z0-9_]*[A-Z0-9]\b", text):
            used.setdefault(name, rel)
    missing = {n: rel for n, rel in used.items() if n not in SETTINGS and n not in c_names}
    assert not missing, missing
