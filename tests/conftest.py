"""Shared fixtures of the vlcc test suite.

* ``mpi_tmp``: a temporary directory shared by every rank of COMM_WORLD (rank 0
  creates it and broadcasts the path), removed after the test.
* ``mpirun``: launch ``mpiexec -n N python -m mpi4py SCRIPT ARGS`` from a serial
  test (N→M restart, other rank counts), with a timeout so a hang fails.
* ``tmpfs``: small tmpfs mounts (root only) for no-space / read-only tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from vlcc._mpi import without_launcher

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
SCRIPTS_DIR = os.path.join(TESTS_DIR, "scripts")
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
DEFAULT_TIMEOUT = 120


_SESSION_START = None


def pytest_sessionstart(session):
    global _SESSION_START
    import time
    _SESSION_START = time.time()


def pytest_sessionfinish(session, exitstatus):
    """Remove the MPICH shared-memory segments of the jobs this session's tests
    killed on purpose (SIGKILL, MPI_Abort): MPICH unlinks a segment only
    when its job ends normally, and each one left in /dev/shm (RAM) is
    ~2 MB; a full run left ~250. Only segments made during this session and
    mapped by no live process (a running job maps its own) are removed."""
    import glob
    import time
    if _SESSION_START is None:
        return
    mine = [p for p in glob.glob("/dev/shm/mpich_shm_*")
            if _SESSION_START <= _mtime(p) < time.time() - 2]
    if not mine:
        return
    mapped = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            with open(maps) as f:
                mapped.update(line.split()[-1] for line in f if "/dev/shm/mpich_shm_" in line)
        except OSError:
            pass      # the process ended, or is not ours to read
    for p in mine:
        if p not in mapped:
            try:
                os.unlink(p)
            except OSError:
                pass


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def pytest_collection_modifyitems(config, items):
    """pytest-mpi 0.6 ignores ``--only-mpi`` when ``--with-mpi`` is also given
    (the documented way to run the MPI tests): every serial test would then run
    once per rank, including the ones that launch their own mpiexec. Skip them."""
    try:
        only_mpi = config.getoption("--only-mpi")
    except ValueError:  # pytest-mpi not installed
        return
    if only_mpi:
        skip = pytest.mark.skip(reason="not an MPI test (--only-mpi)")
        for item in items:
            if item.get_closest_marker("mpi") is None:
                item.add_marker(skip)


@pytest.fixture
def comm():
    from mpi4py import MPI
    return MPI.COMM_WORLD


@pytest.fixture
def mpi_tmp():
    """A fresh directory visible to every rank (same path everywhere)."""
    from mpi4py import MPI
    world = MPI.COMM_WORLD
    path = tempfile.mkdtemp(prefix="vlcc-test-") if world.rank == 0 else None
    path = world.bcast(path, root=0)
    yield path
    world.Barrier()  # nobody may still be reading when rank 0 removes it
    if world.rank == 0:
        _force_rmtree(path)


def _force_rmtree(path: str) -> None:
    def onerror(func, p, _exc):
        # Tests make directories read-only on purpose: give write access back.
        try:
            os.chmod(os.path.dirname(p), 0o755)
            os.chmod(p, 0o755)
            func(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=onerror)


def run_mpi(nprocs: int, script: str, *args: str, timeout: float = DEFAULT_TIMEOUT,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run ``tests/scripts/SCRIPT`` on ``nprocs`` ranks under ``python -m mpi4py``
    (an uncaught exception on any rank aborts the whole job instead of hanging it).
    With ``check`` a non-zero exit fails the calling test with the job's output."""
    path = script if os.path.isabs(script) else os.path.join(SCRIPTS_DIR, script)
    cmd = [MPIEXEC, "-n", str(nprocs), sys.executable, "-m", "mpi4py", path, *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=without_launcher(), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # mpiexec and every rank it started
        out, err = proc.communicate()
        pytest.fail(f"timeout after {timeout}s: {' '.join(cmd)}\nstdout:\n{out}\nstderr:\n{err}")
    res = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and proc.returncode != 0:
        pytest.fail(f"exit code {proc.returncode}: {' '.join(cmd)}\nstdout:\n{out}\nstderr:\n{err}")
    return res


@pytest.fixture
def mpirun():
    return run_mpi


class Tmpfs:
    """Small tmpfs mounts for no-space / read-only tests (root only); every
    mount is undone when the test ends."""

    def __init__(self, base):
        self.base = base
        self.mounted: list[str] = []

    def mount(self, size: str = "1m") -> str:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root and mount(8)")
        d = os.path.join(str(self.base), f"tmpfs{len(self.mounted)}")
        os.mkdir(d)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", d],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        self.mounted.append(d)
        return d

    def remount(self, path: str, mode: str) -> None:
        """Remount ``path`` ``ro`` or ``rw``."""
        subprocess.run(["mount", "-o", f"remount,{mode}", path], check=True,
                       capture_output=True, timeout=30)

    def cleanup(self) -> None:
        for d in reversed(self.mounted):
            subprocess.run(["umount", "-l", d], capture_output=True, timeout=30)
        self.mounted.clear()


@pytest.fixture
def tmpfs(tmp_path):
    t = Tmpfs(tmp_path)
    yield t
    t.cleanup()


# Modules whose tests open, damage or count per-rank files by name
# (data/<id>/r<rank>.bp, r<rank>.idx.json): they check the per-rank layout,
# which format 4 keeps for ranks writing alone (docs/format.md, 3.4), so they
# run with VLCC_NODE_FILES=0. Node files are the default everywhere else and
# tests/commit/test_node_files.py checks them (files, dedup, N→M, verify, gc, crash).
PER_RANK_FILE_TESTS = {
    "test_bp5_layout", "test_coalesce", "test_codecs", "test_dedup", "test_doctor",
    "test_format_v2", "test_gc", "test_integrity", "test_malformed", "test_restore_atomic",
    "test_space", "test_tiled_chunks", "test_errors", "test_verify_deep",
    "test_verify_refs", "test_derived", "test_collectives", "test_tools_mpi", "test_truncate_read",
}


@pytest.fixture(autouse=True, scope="module")
def _per_rank_files(request):
    # module scope: also before a module's own module-scoped fixtures write
    mod = getattr(request, "module", None)
    with pytest.MonkeyPatch.context() as mp:
        if mod is not None and mod.__name__.rsplit(".", 1)[-1] in PER_RANK_FILE_TESTS:
            mp.setenv("VLCC_NODE_FILES", "0")
        yield
