"""vlcc diff / export / replay / report / log --graph, and the CLI's manners
(closed pipe, --help, exit codes). Runs are written by real mpiexec jobs on
2 and 3 ranks (tests/scripts/tools_run.py); the CLI runs in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import vlcc
from conftest import TESTS_DIR, run_mpi
from vlcc.tools.diff import slabs
from vlcc.tools.export import export as vlcc_export
from vlcc._mpi import without_launcher

VLCC = [sys.executable, "-m", "vlcc.cli"]


def cli(*args, timeout=120):
    return subprocess.run([*VLCC, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """a: 2 ranks; b: 3 ranks, element (9, 5) off by 1e-3 from step 3; c: other global shape."""
    d = tmp_path_factory.mktemp("tools")
    a, b, c = (str(d / n) for n in "abc")
    run_mpi(2, "tools_run.py", a, 12, 0)
    run_mpi(3, "tools_run.py", b, 12, 3)
    run_mpi(1, "tools_run.py", c, 10, 0)
    return a, b, c


def test_diff_two_vs_three_ranks(runs):
    a, b, _ = runs
    equal = vlcc.diff(f"{a}@step:2", f"{b}@step:2")
    assert [r["status"] for r in equal] == ["equal"] * 3
    recs = {r["provider"]: r for r in vlcc.diff(a, b)}
    u = recs["heat/u"]
    assert u["status"] == "differ" and not u["equal"]
    assert u["first_index"] == [9, 5] and u["differing"] == 1 and u["elements"] == 96
    assert u["max_abs"] == pytest.approx(1e-3, rel=1e-6)
    assert recs["heat/step"]["equal"] and recs["cfg"]["equal"]
    # Streaming: one row per slab gives the same answer.
    assert vlcc.diff(a, b, slab_bytes=64, providers=["heat/u"])[0] == u
    # The CLI prints and returns the same records; exit codes like diff(1).
    r = cli("diff", a, b, "--json")
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout)["providers"] == json.loads(json.dumps(list(recs.values())))
    r = cli("diff", a, b)
    assert r.returncode == 1 and re.search(r"heat/u\s+DIFFERS: 1 of 96 elements, first at \(9, 5\)", r.stdout)
    assert cli("diff", f"{a}@step:1", f"{b}@step:1").returncode == 0
    assert cli("diff", b, "step:1", "step:3").returncode == 1      # vlcc diff REPO V1 V2


def test_diff_tolerances(runs, capsys):
    from vlcc.cli import main   # in-process: the exit codes through a subprocess are tested above
    a, b, _ = runs
    assert main(["diff", a, b, "--atol", "2e-3"]) == 0
    assert main(["diff", a, b, "--atol", "5e-4"]) == 1
    # |a-b| / |b| at (9, 5) is 1e-3 / (77 * 3)
    assert main(["diff", a, b, "--rtol", "1e-5"]) == 0
    assert main(["diff", a, b, "--rtol", "1e-6"]) == 1
    u = vlcc.diff(a, b, atol=2e-3, providers=["heat/u"])[0]
    assert u["equal"] and u["differing"] == 0 and u["max_abs"] == pytest.approx(1e-3, rel=1e-6)
    assert "equal within tolerance" in capsys.readouterr().out


def test_diff_bad_input(runs, tmp_path):
    a, b, c = runs
    # exit status by kind (vlcc/cli.py EXIT): 2 usage, 3 not found, 5 other error
    for args, words, rc in [((f"{a}@nosuch", b), "unknown version 'nosuch'", 3),
                            ((str(tmp_path / "missing"), b), "missing", 3),
                            ((a, c), "global shapes differ ((12, 8) vs (10, 8))", 5),
                            ((a, b, "-p", "nope"), "no provider matches 'nope'", 3),
                            ((a, b, "--atol", "-1"), "tolerances", 2),
                            ((f"{a}@step:x", b), "step:N needs an integer", 2)]:
        r = cli("diff", *args)
        assert r.returncode == rc, (args, r.stdout, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr, r.stderr
    with pytest.raises(vlcc.ShapeMismatchError, match="heat/u"):
        vlcc.diff(a, c)


def test_slabs_cover_each_element_once():
    shape = (3, 4, 5)
    seen = np.zeros(shape, int)
    for slab_bytes in (8, 24, 100, 1 << 20):
        seen[:] = 0
        for off, shp in slabs(shape, 8, slab_bytes):
            assert np.prod(shp) * 8 <= max(slab_bytes, 8 * shape[-1])
            seen[tuple(slice(o, o + n) for o, n in zip(off, shp))] += 1
        assert (seen == 1).all()


def test_export_roundtrip(runs, tmp_path):
    import adios2
    a, b, _ = runs
    out = tmp_path / "b.bp"
    r = cli("export", f"{b}@step:3", out)
    assert r.returncode == 0, r.stderr
    v = vlcc.Repository(b).log(branch="main")[0]
    with adios2.FileReader(str(out)) as f:
        assert f.available_variables()["heat/u"]["Shape"] == "12, 8"
        u = f.read("heat/u")
        np.testing.assert_array_equal(u, vlcc.Repository(b).read(v, "heat/u"))
        assert u[9, 5] == 77 * 3 + 1e-3
        assert f.read_attribute("heat/step") == 3
        assert json.loads(_str(f.read_attribute_string("cfg"))) == {"dt": 0.1, "nx": 8}
        assert _str(f.read_attribute_string("vlcc/version")) == v.id
    r = cli("export", a, out)   # exists
    assert r.returncode == 5 and "--force" in r.stderr
    r = cli("export", a, tmp_path / "x.txt")   # an unknown extension is refused, nothing written
    assert r.returncode == 2 and "unknown extension '.txt'" in r.stderr, r.stderr
    assert not (tmp_path / "x.txt").exists()
    r = cli("export", a, out, "--force", "-p", "cfg", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["variables"] == []
    # The cheap other formats, same layout (slabs of one row: streamed).
    import h5py
    from vlcc.tools.export import export
    u = vlcc.Repository(b).read(v, "heat/u")
    export(f"{b}@step:3", tmp_path / "b.h5", slab_bytes=64)
    with h5py.File(tmp_path / "b.h5") as f:
        np.testing.assert_array_equal(f["heat/u"][...], u)
        assert f.attrs["heat/step"] == 3 and f.attrs["vlcc/version"] == v.id
    export(f"{b}@step:3", tmp_path / "b.npz")
    z = np.load(tmp_path / "b.npz")
    np.testing.assert_array_equal(z["heat/u"], u)
    assert json.loads(str(z["__attrs__"]))["cfg"] == '{"dt": 0.1, "nx": 8}'


def _str(x):
    return x[0] if isinstance(x, list) else x   # adios2 versions differ here


def test_replay_keeps_main_and_graph(runs, tmp_path):
    a = str(tmp_path / "a")
    shutil.copytree(runs[0], a)
    repo = vlcc.Repository(a)
    head = repo.branches()["main"]
    start = [v for v in repo.log(branch="main") if v.step == 1][0]
    env = without_launcher()
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    script = os.path.join(TESTS_DIR, "scripts", "tools_run.py")
    r = subprocess.run([*VLCC, "replay", f"{a}@{start.id}", "--", mpiexec, "-n", "3",
                        sys.executable, "-m", "mpi4py", script, a, "12", "0"],
                       capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr
    repo = vlcc.Repository(a)
    assert repo.branches()["main"] == head          # main never moved
    replay = repo.log(branch=f"replay/{start.id}")
    assert [v.step for v in replay] == [3, 2, 1] and replay[-1].id == start.id
    assert {v.nranks for v in replay[:2]} == {3}
    # The replayed region reproduces the original run.
    assert cli("diff", f"{a}@branch:replay/{start.id}", f"{a}@step:3@main").returncode == 0
    g = cli("log", a, "--graph")
    assert g.returncode == 0 and "|/" in g.stdout and f"branch:replay/{start.id}" in g.stdout
    assert sum(line.lstrip("| ").startswith("*") for line in g.stdout.splitlines()) == 5
    # A failing command's status passes through; an unknown target is exit 3 (not found).
    assert cli("replay", f"{a}@{start.id}", "--", sys.executable, "-c", "raise SystemExit(7)").returncode == 7
    assert cli("replay", f"{a}@nosuch", "--", "true").returncode == 3


def test_report_png(runs, tmp_path):
    import matplotlib.pyplot as plt
    out = tmp_path / "r.png"
    r = cli("report", runs[1], "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = plt.imread(out)
    assert img.shape[0] > 500 and img.shape[1] > 500
    assert cli("report", tmp_path / "none", "-o", out).returncode == 3


PRINTING = [["log", "A"], ["log", "A", "--graph"], ["show", "A", "latest"], ["verify", "A"],
            ["du", "A"], ["diff", "A", "A"], ["log", "A", "--json"], ["--help"], ["diff", "--help"]]


def test_closed_pipe_is_quiet(runs):
    for cmd in PRINTING:
        args = [runs[0] if x == "A" else x for x in cmd]
        p = subprocess.Popen([*VLCC, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()                    # the reader is gone before the first line
        err = p.stderr.read().decode()
        p.wait(timeout=60)
        assert "Traceback" not in err and "BrokenPipe" not in err, (args, err)
        assert p.returncode in (0, 141), (args, p.returncode, err)


def test_help_epilog():
    r = cli("--help")
    assert r.returncode == 0
    for cmd in ("vlcc log runs/heat", "vlcc show runs/heat latest", "vlcc verify runs/heat", "docs"):
        assert cmd in r.stdout, r.stdout
    for sub in ("diff", "export", "replay", "report"):
        assert cli(sub, "--help").returncode == 0


def test_readme_example_resumes(tmp_path, monkeypatch):
    """The README's Python example, run on 2 then 3 ranks: the second run
    resumes from the stored step (no step twice on main) and prints once."""
    with open(os.path.join(TESTS_DIR, "..", "README.md")) as f:
        code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
    script = tmp_path / "solver.py"
    script.write_text(code)
    monkeypatch.chdir(tmp_path)
    first = run_mpi(2, str(script))
    second = run_mpi(3, str(script))
    for out in (first.stdout, second.stdout):
        assert len(out.strip().splitlines()) == 1, out      # one line, from rank 0
        assert "step 100" in out and "Version(" not in out
    steps = [v.step for v in vlcc.Repository(tmp_path / "runs" / "heat").log(branch="main")]
    assert steps == [100, 80, 60, 40, 20]


def test_graph_forks_joins_and_roots():
    from vlcc.repo.manifest import Version
    from vlcc.tools.graph import graph_lines

    def V(i, p, b, t):
        return Version(id=i, parent=p, branch=b, step=t, message="", time=t, nranks=2)
    vs = [V("a1", None, "main", 1), V("a2", "a1", "main", 2), V("x3", "a1", "x", 3),
          V("y4", "a1", "y", 4), V("a5", "a2", "main", 5), V("z6", None, "z", 6), V("y7", "y4", "y", 7)]
    lines = [line.split(" [")[0] for line in graph_lines(sorted(vs, key=lambda v: -v.time),
                                                        {"a5": ["branch:main"]})]
    assert lines == ["* y7", "| * z6", "|", "| * a5 (branch:main)", "* | y4", "| | * x3",
                     "| * | a2", "|/ /", "* a1"]


def _stderr_on_terminal(args):
    """Run the CLI with stderr on a pseudo-terminal; returns what it drew there."""
    import pty
    import threading
    master, slave = pty.openpty()
    p = subprocess.Popen([*VLCC, *args], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    got = []

    def drain():   # keep the terminal's buffer from filling
        try:
            while chunk := os.read(master, 4096):
                got.append(chunk)
        except OSError:
            pass
    t = threading.Thread(target=drain, daemon=True)
    t.start()
    p.communicate(timeout=120)
    t.join(timeout=10)
    os.close(master)
    return p.returncode, b"".join(got).decode(errors="replace")


def test_progress_bar_only_on_a_terminal(runs):
    a, b, _ = runs
    rc, err = _stderr_on_terminal(["diff", a, b])
    assert rc == 1 and "diff heat/u" in err and "KiB" in err, err
    rc, err = _stderr_on_terminal(["diff", a, b, "--quiet"])
    assert rc == 1 and err == "", err
    r = cli("diff", a, b)                 # stderr a pipe: no bar
    assert "diff heat/u" not in r.stderr


def test_export_to_a_full_disk_is_a_storage_error_and_leaves_nothing(tmp_path, tmpfs):
    """ADIOS2 aborts the process when the disk fills under it: vlcc refuses
    first (StorageError, exit 5) and removes the partial export."""
    import subprocess
    import sys
    from mpi4py import MPI
    repo = str(tmp_path / "r")
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("u", np.random.default_rng(0).random(600_000))     # 4.8 MB, does not fit
        ck.checkpoint()
    small = tmpfs.mount("2m")
    for ext in ("bp", "npz"):
        out = os.path.join(small, f"out.{ext}")
        with pytest.raises(vlcc.StorageError, match="no space left"):
            vlcc_export(repo, out)
        assert not os.path.exists(out) and not os.listdir(small)
    r = subprocess.run([sys.executable, "-m", "vlcc.cli", "export", repo, os.path.join(small, "o.bp")],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=os.path.dirname(TESTS_DIR)))
    assert r.returncode == 5 and "no space left" in r.stderr, (r.returncode, r.stderr[-1000:])
    assert not os.listdir(small)
