"""Benchmarks and examples turn an error on one rank into an error on all
(issue 29 item 9): every MPI script installs vlcc.comm.abort.abort_on_error,
and bad arguments stop every rank, so no rank is left waiting in a collective."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
SCRIPTS = sorted(p for d in ("benchmarks", "examples/*", "slurm/examples")
                 for p in glob.glob(os.path.join(ROOT, d, "*.py")))


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "MPIR_"))}
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
