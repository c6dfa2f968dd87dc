"""vlcc on SLURM, against real daemons: slurm/local/cluster.sh starts munged,
slurmctld and slurmd on this machine for this module and stops them at the end
(also when a test fails). Skipped only when the cluster cannot run here at all
(not root, slurm-wlm/munge not installed: `make setup-slurm`).

The jobs are the templates of slurm/examples/ running slurm/examples/solver.py;
the references are the same solver run directly (no SLURM, one rank), which
must agree bit for bit: the stencil is decomposition independent.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import vlcc
from conftest import TESTS_DIR
from vlcc._mpi import without_launcher

ROOT = os.path.dirname(TESTS_DIR)
CLUSTER = os.path.join(ROOT, "slurm", "local", "cluster.sh")
EXAMPLES = os.path.join(ROOT, "slurm", "examples")
SCRIPTS = os.path.join(ROOT, "tests", "scripts")
BIN = os.path.dirname(sys.executable)
JOB_TIMEOUT = 300      # one job, requeue included (a requeued job is held ~cred_expire s)


def _load_solver():
    spec = importlib.util.spec_from_file_location("vlcc_slurm_solver", os.path.join(EXAMPLES, "solver.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


solver = _load_solver()


def _free_port_pair() -> int:
    """A port p with p and p+1 free (slurmctld, slurmd), away from the default 6817."""
    for p in range(16817, 17817, 2):
        ok = True
        for q in (p, p + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
        if ok:
            return p
    raise RuntimeError("no free port pair for the test cluster")


@pytest.fixture(scope="module")
def cluster():
    """A running single-node cluster; yields the environment for sbatch & co."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (slurmd, munged switch users)")
    state = tempfile.mkdtemp(prefix="vlcc-slurm-")
    os.chmod(state, 0o755)   # munged (as user munge) must reach its socket in there
    env = dict(os.environ, VLCC_SLURM_DIR=state, VLCC_SLURM_PORT=str(_free_port_pair()),
               VLCC_SLURM_CRED_EXPIRE="5", SLURM_CONF=os.path.join(state, "slurm.conf"),
               VLCC_ROOT=ROOT, VLCC_PYTHON=sys.executable,
               VLCC_MPIEXEC=os.path.join(BIN, "mpiexec"))
    try:
        up = subprocess.run([CLUSTER, "up"], env=env, capture_output=True, text=True, timeout=180)
        if up.returncode == 3:
            pytest.skip(up.stderr.strip())
        assert up.returncode == 0, f"cluster.sh up failed:\n{up.stdout}\n{up.stderr}\n{_logs(state)}"
        # idempotent: a second `up` finds everything running and returns at once
        again = subprocess.run([CLUSTER, "up"], env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
        yield env
    finally:
        down = subprocess.run([CLUSTER, "down"], env=env, capture_output=True, text=True, timeout=120)
        st = subprocess.run([CLUSTER, "status"], env=env, capture_output=True, text=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)
        assert down.returncode == 0, down.stderr
        assert st.returncode != 0 and "running" not in st.stdout, st.stdout


def _logs(state: str) -> str:
    out = []
    for f in ("log/slurmctld.log", "log/slurmd.log", "munge/munged.log"):
        p = os.path.join(state, f)
        if os.path.exists(p):
            with open(p, errors="replace") as fh:
                out.append(f"--- {f}\n" + "".join(fh.readlines()[-30:]))
    return "\n".join(out)


def _run(env, *cmd, timeout=60) -> str:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stdout}{r.stderr}"
    return r.stdout


def sbatch(env, script: str, *opts: str, **vars) -> str:
    """Submit slurm/examples/SCRIPT from the checkout; VARS go into the job's env."""
    job_env = dict(env, **{k: str(v) for k, v in vars.items()})
    return _run(job_env, "sbatch", "--parsable", *opts, os.path.join(EXAMPLES, script)).strip().split(";")[0]


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_for_text(path: str, text: str, timeout: float = JOB_TIMEOUT) -> None:
    t0 = time.time()
    while text not in _read(path):
        if time.time() - t0 > timeout:
            pytest.fail(f"{text!r} did not appear in {path} within {timeout}s:\n{_read(path)}")
        time.sleep(0.3)


def wait_done(env, job: str, timeout: float = JOB_TIMEOUT) -> list[dict]:
    """Wait until job (all tasks of an array) has left the queue (a requeued job
    stays in it); return each task's `scontrol show job` record."""
    t0 = time.time()
    while _run(env, "squeue", "-h", "-j", job).strip():
        if time.time() - t0 > timeout:
            _run(env, "scancel", job)
            pytest.fail(f"job {job} still queued after {timeout}s:\n{_run(env, 'squeue')}")
        time.sleep(0.5)
    recs = []
    for line in _run(env, "scontrol", "-o", "show", "job", job).splitlines():
        recs.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
    return recs


def reference(tmp_path, name: str, steps: int, every: int, base_repo: str | None = None,
              task: int | None = None) -> np.ndarray:
    """The same computation run directly, on one rank, without SLURM."""
    from mpi4py import MPI
    repo = str(tmp_path / f"ref-{name}")
    if base_repo is not None:
        shutil.copytree(base_repo, repo)
    solver.run(MPI.COMM_SELF, repo, steps, every, array_base="tag:base" if base_repo else None,
               task=task, log=lambda *a, **k: None)
    r = vlcc.Repository(repo)
    branch = f"task-{task}" if base_repo else "main"
    return r.read(f"branch:{branch}", "heat/u")


def check_preempted_run(repo: str, steps: int, signame: str, ref: np.ndarray, nranks_after: int | None = None):
    """The branch ends at `steps`, bit-exact with the uninterrupted reference; its
    lineage holds the preemption checkpoint (restart 0) and versions of the rerun."""
    r = vlcc.Repository(repo)
    r.verify()
    lineage = r.log(branch="main")
    head = lineage[0]
    assert head.step == steps
    np.testing.assert_array_equal(r.read(head, "heat/u"), ref)
    pre = [v for v in lineage if v.attrs.get("preempted_by") == signame]
    assert len(pre) == 1, [(v.step, v.attrs) for v in lineage]
    assert pre[0].slurm.get("restart_count", "0") == "0"
    after = [v for v in lineage if v.step > pre[0].step]
    assert after and all(v.parent for v in after)
    if nranks_after is not None:
        assert {v.nranks for v in after} == {nranks_after}
    return pre[0], after


# -- without daemons --------------------------------------------------------------------

@pytest.mark.mpi
def test_should_stop_agrees_when_one_rank_is_signalled(mpi_tmp):
    from mpi4py import MPI
    from vlcc.slurm import Preemption
    comm = MPI.COMM_WORLD
    before = signal.getsignal(signal.SIGUSR1)
    with vlcc.Checkpointer(os.path.join(mpi_tmp, "r"), comm=comm) as ck, \
            Preemption(ck, signals=("USR1", "SIGTERM")) as pre:
        assert not pre.should_stop()
        if comm.rank == comm.size - 1:
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.05)
        assert pre.requested == (comm.rank == comm.size - 1)
        assert pre.should_stop()
        assert pre.signal_name == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) == before   # handlers restored on exit


def test_bad_signal_name(tmp_path):
    from mpi4py import MPI
    from vlcc.slurm import Preemption
    with vlcc.Checkpointer(str(tmp_path / "r"), comm=MPI.COMM_SELF) as ck:
        with pytest.raises(vlcc.VlccError, match="NOPE"):
            Preemption(ck, signals=("NOPE",))


def test_requeue_exit_code_without_scontrol(tmp_path, mpirun, monkeypatch):
    """No scontrol on PATH (as in a container): checkpoint, then every rank exits 75."""
    from vlcc.slurm import RequeueExit
    monkeypatch.setenv("PATH", BIN)   # the venv only: mpiexec, python, no scontrol
    assert shutil.which("scontrol") is None
    monkeypatch.setenv("SLURM_JOB_ID", "424242")
    repo = str(tmp_path / "r")
    res = mpirun(2, os.path.join(SCRIPTS, "slurm_requeue_exit.py"), repo, check=False)
    assert res.returncode == RequeueExit.EXIT_CODE == 75, res.stdout + res.stderr
    assert "not reached" not in res.stdout
    assert "scontrol not found" in res.stderr
    v = vlcc.Repository(repo).log()[0]
    assert v.step == 3 and v.attrs["preempted_by"] == "SIGUSR1" and v.slurm["job_id"] == "424242"
    for rank in range(2):
        np.testing.assert_array_equal(vlcc.Repository(repo).read(v, "u", rank=rank), np.full(4, 3.0 + rank))


def test_preemption_serial_without_mpi(tmp_path):
    """A serial run (comm=None, no launcher, MPI never loaded) can be preempted too;
    outside a SLURM job the requeue is impossible: exit 75 after the checkpoint."""
    code = (
        "import os, signal, sys, numpy as np, vlcc\n"
        "from vlcc.slurm import Preemption\n"
        "u = np.zeros(3)\n"
        "with vlcc.Checkpointer(sys.argv[1]) as ck, Preemption(ck) as pre:\n"
        "    ck.register('u', u)\n"
        "    for step in range(1, 10):\n"
        "        u += 1\n"
        "        if step == 2: os.kill(os.getpid(), signal.SIGTERM)\n"
        "        if pre.should_stop(): pre.checkpoint_and_requeue(step)\n"
        "print('not reached')\n")
    env = without_launcher(also=("SLURM_",))
    repo = str(tmp_path / "r")
    r = subprocess.run([sys.executable, "-c", code, repo], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 75, r.stdout + r.stderr
    assert "not in a SLURM job" in r.stderr and "not reached" not in r.stdout
    (v,) = vlcc.Repository(repo).log()
    assert v.step == 2 and v.nranks == 1 and v.attrs["preempted_by"] == "SIGTERM"
    np.testing.assert_array_equal(vlcc.Repository(repo).read(v, "u"), np.full(3, 2.0))


def test_task_branch_many_at_once(tmp_path):
    """Four processes (two of them for the same task) create task branches at one moment."""
    from mpi4py import MPI
    repo, gate = str(tmp_path / "r"), str(tmp_path / "gate")
    os.mkdir(gate)
    base = solver.run(MPI.COMM_SELF, repo, 4, 4, tag="base", log=lambda *a, **k: None)
    n = 4
    code = (
        "import os, sys, time, numpy as np, vlcc\n"
        "from mpi4py import MPI\n"
        "from vlcc.slurm import task_branch\n"
        "u = np.zeros((%d, %d))\n"
        "ck = vlcc.Checkpointer(sys.argv[1], comm=MPI.COMM_SELF)\n"
        "ck.register('heat/u', u, global_shape=u.shape, offset=(0, 0))\n"
        "gate, n = sys.argv[3], int(sys.argv[4])\n"
        "open(os.path.join(gate, str(os.getpid())), 'w').close()\n"
        "while len(os.listdir(gate)) < n: time.sleep(0.001)   # everyone imported: go\n"
        "v = task_branch(ck, 'tag:base', task=int(sys.argv[2]))\n"
        "print(ck.branch_name, v.id, float(u.sum()))\n"
        "ck.close()\n" % (solver.NY, solver.NX))
    procs = [subprocess.Popen([sys.executable, "-c", code, repo, str(i % 3), gate, str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(n)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out.split())
    want = float(vlcc.Repository(repo).read(base, "heat/u").sum())
    assert sorted(o[0] for o in outs) == sorted(f"task-{i % 3}" for i in range(n))
    assert all(o[1] == base.id and float(o[2]) == want for o in outs)
    assert vlcc.Repository(repo).branches() == {"main": base.id} | {f"task-{i}": base.id for i in range(3)}


def test_task_branch_resumes_from_its_head(tmp_path, monkeypatch):
    """A requeued task finds its branch: it resumes from the branch head, not from base."""
    from mpi4py import MPI
    from vlcc.slurm import task_branch
    repo = str(tmp_path / "r")
    base = solver.run(MPI.COMM_SELF, repo, 2, 2, tag="base", log=lambda *a, **k: None)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "99")
    u = np.zeros(3)
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("x", u)
        with pytest.raises(vlcc.MissingProviderError):   # base has heat/u, not x
            task_branch(ck, base, name="exp-{job}-{task}")
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("heat/u", np.zeros((solver.NY + 2, solver.NX + 2)),
                    global_shape=(solver.NY, solver.NX), offset=(0, 0), halo=1)
        assert task_branch(ck, base, name="exp-{job}-{task}").id == base.id
        assert ck.branch_name == "exp-99-7"
        v2 = ck.checkpoint(step=3)
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("heat/u", np.zeros((solver.NY + 2, solver.NX + 2)),
                    global_shape=(solver.NY, solver.NX), offset=(0, 0), halo=1)
        assert task_branch(ck, "tag:base", name="exp-{job}-{task}").id == v2.id
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        with pytest.raises(vlcc.VlccError, match="SLURM_ARRAY_TASK_ID"):
            task_branch(ck, base)
        with pytest.raises(vlcc.VlccError, match="bad branch name pattern"):
            task_branch(ck, base, name="t-{nope}", task=1)


# -- against the daemons ----------------------------------------------------------------

def test_cluster_status(cluster):
    out = _run(cluster, CLUSTER, "status")
    for d in ("munged", "slurmctld", "slurmd"):
        assert f"{d} running" in out
    assert "idle" in _run(cluster, "sinfo", "-h", "-o", "%T")


def test_array_tasks_branch_from_base(cluster, tmp_path):
    from mpi4py import MPI
    repo = str(tmp_path / "repo")
    base = solver.run(MPI.COMM_SELF, repo, 6, 6, tag="base", log=lambda *a, **k: None)
    shutil.copytree(repo, str(tmp_path / "base-copy"))
    out = str(tmp_path / "array-%A_%a.out")
    job = sbatch(cluster, "array.sbatch", "--array=0-2", f"--output={out}",
                 VLCC_REPO=repo, STEPS=12, EVERY=3, SLEEP=0)
    recs = wait_done(cluster, job)
    logs = "\n".join(_read(out.replace("%A", job).replace("%a", str(t))) for t in range(3))
    assert len(recs) == 3 and all(r["JobState"] == "COMPLETED" for r in recs), logs
    r = vlcc.Repository(repo)
    r.verify()
    assert set(r.branches()) == {"main", "task-0", "task-1", "task-2"}
    for t in range(3):
        lineage = r.log(branch=f"task-{t}")
        head = lineage[0]
        assert head.step == 12 and base.id in [v.id for v in lineage]
        assert head.slurm["array_job_id"] == job and head.slurm["array_task_id"] == str(t)
        assert head.attrs["alpha"] == solver.task_alpha(0.1, t)
        ref = reference(tmp_path, f"t{t}", 12, 3, base_repo=str(tmp_path / "base-copy"), task=t)
        np.testing.assert_array_equal(r.read(head, "heat/u"), ref)
    # different parameters: the branches really differ
    assert not np.array_equal(r.read("branch:task-0", "heat/u"), r.read("branch:task-2", "heat/u"))
    log = subprocess.run([sys.executable, "-m", "vlcc.cli", "log", repo], capture_output=True,
                         text=True, timeout=60)
    assert log.returncode == 0, log.stderr
    for t in range(3):
        assert f"(array {job}_{t})   restart 0" in log.stdout


@pytest.mark.parametrize("how", ["USR1", "TERM"])
def test_preempt_checkpoint_requeue_resume(cluster, tmp_path, how):
    """USR1 to the batch shell (as --signal=B:USR1@N does), or SIGTERM alone to every
    process of the job (sites that only send TERM): checkpoint, requeue, resume."""
    repo, out = str(tmp_path / "repo"), str(tmp_path / "job.out")
    job = sbatch(cluster, "preemptible.sbatch", f"--output={out}",
                 VLCC_REPO=repo, STEPS=24, EVERY=8, SLEEP=0.3)
    wait_for_text(out, "step 4")
    if how == "USR1":
        _run(cluster, "scancel", "--signal=USR1", "--batch", job)
    else:
        _run(cluster, "scancel", "--signal=TERM", "--full", job)
    (rec,) = wait_done(cluster, job)
    text = _read(out)
    assert rec["JobState"] == "COMPLETED" and rec["Restarts"] == "1", text
    assert f"SIG{how}: checkpoint at step" in text and "restart 1 on 2 rank(s)" in text, text
    pre, after = check_preempted_run(repo, 24, f"SIG{how}", reference(tmp_path, "p", 24, 8))
    assert all(v.slurm["restart_count"] == "1" and v.slurm["job_id"] == job for v in after)
    log = subprocess.run([sys.executable, "-m", "vlcc.cli", "log", repo], capture_output=True,
                         text=True, timeout=60)
    assert f"job {job}   restart 1" in log.stdout and f"job {job}   restart 0" in log.stdout


def test_scancel_checkpoints_but_stays_cancelled(cluster, tmp_path):
    """scancel also sends SIGTERM: the job checkpoints, and is not requeued."""
    repo, out = str(tmp_path / "repo"), str(tmp_path / "job.out")
    job = sbatch(cluster, "preemptible.sbatch", f"--output={out}",
                 VLCC_REPO=repo, STEPS=200, EVERY=100, SLEEP=0.2)
    wait_for_text(out, "step 3")
    _run(cluster, "scancel", job)
    (rec,) = wait_done(cluster, job)
    text = _read(out)
    assert rec["JobState"] == "CANCELLED" and rec["Restarts"] == "0", text
    assert "not requeued" in text and "restart 1" not in text, text
    (v,) = vlcc.Repository(repo).log()
    assert v.attrs["preempted_by"] == "SIGTERM" and 3 <= v.step < 200


def test_signal_during_checkpoint(cluster, tmp_path):
    """The signal reaches the ranks while they are inside checkpoint(): that version
    completes intact, the next step boundary checkpoints and requeues."""
    repo, out = str(tmp_path / "repo"), str(tmp_path / "job.out")
    env = dict(cluster, VLCC_REPO=repo)
    script = os.path.join(SCRIPTS, "slurm_probe_app.py")
    # the preemptible template's launcher, with the probe app instead of the solver
    batch = tmp_path / "probe.sbatch"
    batch.write_text(f"#!/bin/bash\nsource {EXAMPLES}/forward.sh\n"
                     f"vlcc_mpirun 2 {script} {repo} 20 5 2\n")
    job = _run(env, "sbatch", "--parsable", "--ntasks=2", "--requeue", "--open-mode=append",
               f"--output={out}", str(batch)).strip()
    (rec,) = wait_done(cluster, job)
    text = _read(out)
    assert rec["JobState"] == "COMPLETED" and rec["Restarts"] == "1", text
    assert text.count("signal received during checkpoint 2: True") == 2, text
    pre, after = check_preempted_run(repo, 20, "SIGUSR1", reference(tmp_path, "c", 20, 5))
    r = vlcc.Repository(repo)
    during = [v for v in r.log(branch="main") if v.step == 10]   # the 2nd checkpoint
    assert len(during) == 1 and pre.parent == during[0].id and pre.step == 11


def test_two_ranks_preempted_resume_on_three(cluster, tmp_path):
    repo, out = str(tmp_path / "repo"), str(tmp_path / "job.out")
    nxt = str(tmp_path / "next-%j.out")
    job = sbatch(cluster, "resize.sbatch", f"--output={out}", VLCC_REPO=repo, STEPS=24, EVERY=8,
                 SLEEP=0.3, NEXT_NTASKS=3, VLCC_NEXT_OUTPUT=nxt)
    wait_for_text(out, "step 4")
    _run(cluster, "scancel", "--signal=USR1", "--batch", job)
    (rec,) = wait_done(cluster, job)
    text = _read(out)
    assert rec["JobState"] == "COMPLETED", text
    cont = text.split("continues as job ")[1].split()[0]
    (rec2,) = wait_done(cluster, cont)
    assert rec2["JobState"] == "COMPLETED" and rec2["NumTasks"] == "3", _read(nxt.replace("%j", cont))
    pre, after = check_preempted_run(repo, 24, "SIGUSR1", reference(tmp_path, "m", 24, 8), nranks_after=3)
    assert pre.nranks == 2 and pre.slurm["job_id"] == job
    assert all(v.slurm["job_id"] == cont for v in after)
