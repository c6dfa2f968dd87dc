"""Benchmarks and examples turn an error on one rank into an error on all
(issue 29 item 9): every MPI script installs vlcc.comm.abort.abort_on_error,
and bad arguments stop every rank, so no rank is left waiting in a collective."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from vlcc._mpi import without_launcher

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
SCRIPTS = sorted(p for d in ("benchmarks", "examples/*", "slurm/examples")
                 for p in glob.glob(os.path.join(ROOT, d, "*.py")))


def _env() -> dict:
    env = without_launcher()
    env["PYTHONPATH"] = ROOT
    return env


def _mpiexec(n: int, *args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(BIN, "mpiexec"), "-n", str(n), sys.executable, *args],
                          capture_output=True, text=True, timeout=240, env=_env(), cwd=cwd)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: os.path.relpath(p, ROOT))
def test_mpi_scripts_abort_on_error(path):
    src = open(path, encoding="utf-8").read()
    if "from mpi4py import MPI" not in src and "import mpi4py" not in src:
        return   # runs no MPI in its own process (serial, or launches mpiexec itself)
    main = src.split('\nif __name__ == "__main__":', 1)
    assert len(main) == 2 and "abort_on_error()" in main[1], \
        f"{os.path.relpath(path, ROOT)}: call vlcc.comm.abort.abort_on_error() in its main block"


def test_error_on_one_rank_ends_every_rank(tmp_path):
    script = tmp_path / "one_rank_fails.py"
    script.write_text(
        "from mpi4py import MPI\n"
        "from vlcc.comm.abort import abort_on_error\n"
        "abort_on_error()\n"
        "comm = MPI.COMM_WORLD\n"
        "if comm.rank == 1:\n"
        "    raise FileNotFoundError('rank 1 cannot open its input')\n"
        "comm.bcast(None, root=1)      # rank 0 would wait here forever\n")
    p = _mpiexec(2, str(script))
    assert p.returncode != 0
    assert "rank 1 cannot open its input" in p.stderr and "MPI_Abort" in p.stderr, p.stderr


def test_bench_io_missing_dir_fails_on_every_rank(tmp_path):
    p = _mpiexec(2, os.path.join(ROOT, "benchmarks", "bench_io.py"), "--dir",
                 str(tmp_path / "missing"), "--mib", "1")
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.count("no such directory") == 2, p.stderr     # both ranks said so and stopped


def test_root_setup_says_what_it_writes_outside_the_checkout(tmp_path, monkeypatch, capsys):
    """The libmpi.so.12 alias of `make setup` (root): announced before it is made, with the
    command that undoes it; replacing an existing link says what it pointed at. Run on a
    stand-in library folder (the real one is the system's)."""
    from vlcc.capi.build import toolchain
    lib = tmp_path / "libmpich.so.12"
    lib.write_bytes(b"")
    alias = tmp_path / "libmpi.so.12"
    monkeypatch.setattr(toolchain, "alias_needed", lambda compiler=None: (alias, lib))
    msg = toolchain.install_alias()
    if os.geteuid() != 0:
        assert "not root" in msg and not alias.exists()
        return
    out = capsys.readouterr().out
    assert f"writing to the system library folder {tmp_path}" in out and f"undo: rm {alias}" in out
    assert os.readlink(alias) == lib.name and f"undo: rm {alias}" in msg
    os.remove(alias)
    os.symlink("libother.so.12", alias)
    toolchain.install_alias()
    assert "replacing" in capsys.readouterr().out and os.readlink(alias) == lib.name
