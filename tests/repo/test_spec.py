"""One version-spec parser (vlcc/repo/spec.py), every form in every entry point:
Repository (resolve, read, verify), the CLI (both addressing styles, REPO VERSION
and PATH@SPEC, in show/resolve/verify/log/export/diff), Checkpointer.restore and
plan (serially and under mpiexec at 1, 2, 3 ranks) and C's vlcc_query."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import vlcc
from vlcc.cli import EXIT_NOT_FOUND, EXIT_USAGE, main
from vlcc.repo.spec import parse

N = 6


def _field(step: int, branch: str) -> np.ndarray:
    return np.arange(N, dtype=np.float64) * step + (100.0 if branch == "exp" else 0.0)


def _part(comm) -> slice:
    size, rank = (comm.size, comm.rank) if comm is not None else (1, 0)
    lo, hi = rank * N // size, (rank + 1) * N // size
    return slice(lo, hi)


def _register(ck, comm=None) -> np.ndarray:
    """``u``: a distributed array of N elements, this rank's share of it."""
    part = _part(comm)
    u = np.zeros(part.stop - part.start)
    ck.register("u", u, global_shape=(N,), offset=(part.start,))
    return u


def build(path, comm=None) -> dict:
    """main: steps 1, 2, 3 (tag good on 2); exp, branched at step 2: steps 3, 4.
    Returns the ids by name (v1, v2, v3, e3, e4). Collective with ``comm``."""
    ids = {}
    part = _part(comm)
    with vlcc.Checkpointer(str(path), comm=comm) as ck:
        u = _register(ck, comm)
        for step in (1, 2, 3):
            u[:] = _field(step, "main")[part]
            ids[f"v{step}"] = ck.checkpoint(step=step).id
        ck.tag("good", ids["v2"])
        ck.branch("exp", at=ids["v2"])
        ck.switch("exp")
        for step in (3, 4):
            u[:] = _field(step, "exp")[part]
            ids[f"e{step}"] = ck.checkpoint(step=step).id
    return ids


def forms(ids: dict) -> dict:
    """spec -> name of the version it names in the whole repository."""
    prefix = next(ids["v1"][:k] for k in range(4, 17)
                  if sum(v.startswith(ids["v1"][:k]) for v in ids.values()) == 1)
    return {ids["v1"]: "v1", prefix: "v1", "latest": "e4", "tag:good": "v2", "good": "v2",
            "branch:exp": "e4", "exp": "e4", "branch:main": "v3", "main": "v3",
            "step:1": "v1", "step:3": "e3", "step:3@main": "v3", "step:4@exp": "e4"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "repo"
    ids = build(path)
    return str(path), ids, forms(ids)


BAD = {"step:x": vlcc.ArgumentError, "step:3@": vlcc.ArgumentError, "tag:": vlcc.ArgumentError,
       "": vlcc.ArgumentError, "no such thing": vlcc.ArgumentError,
       "nosuch": vlcc.NotFoundError, "tag:nosuch": vlcc.NotFoundError,
       "step:9": vlcc.NotFoundError, "step:4@main": vlcc.NotFoundError,
       "ffffffffffffffff": vlcc.NotFoundError}


def test_parse_forms():
    assert parse(None).kind == parse("latest").kind == "latest"
    s = parse("step:80@replay/abc")
    assert (s.kind, s.step, s.branch) == ("step", 80, "replay/abc")
    assert parse(np.int64(7)).step == 7 and parse("tag:a/b").name == "a/b"
    for bad in ("step:x", "step:1@", "branch:", "a b", ""):
        with pytest.raises(vlcc.ArgumentError, match="spec"):
            parse(bad)


def test_repository_every_form(repo):
    path, ids, want = repo
    r = vlcc.Repository(path)
    for spec, name in want.items():
        step = int(name[1:])
        assert r.resolve(spec).id == ids[name], spec
        np.testing.assert_array_equal(r.read(spec, "u"), _field(step, "exp" if name[0] == "e" else "main"))
        assert r.verify(spec)["versions"] == 1, spec
    assert r.resolve(None, branch="main").id == ids["v3"]
    assert r.resolve(3, branch="exp").id == ids["e3"]
    for spec, err in BAD.items():
        with pytest.raises(err) as e:
            r.resolve(spec)
        assert spec.split(":")[-1].split("@")[0] in str(e.value), (spec, e.value)   # names it


def _cli(cap, *args) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    return rc, cap.readouterr().out


def test_cli_every_form_both_styles(repo, capfd, tmp_path):
    path, ids, want = repo
    for spec, name in want.items():
        for style in ([path, spec], [f"{path}@{spec}"]):
            rc, out = _cli(capfd, "resolve", *style)
            assert (rc, out.strip()) == (0, ids[name]), (style, out)
            rc, out = _cli(capfd, "show", *style, "--json")
            assert rc == 0 and json.loads(out)["id"] == ids[name], style
            rc, out = _cli(capfd, "verify", *style, "--json")
            assert rc == 0 and json.loads(out)["versions"] == 1, style
            rc, out = _cli(capfd, "log", *style, "--json")
            assert rc == 0 and json.loads(out)[0]["id"] == ids[name], style
        rc, _ = _cli(capfd, "diff", path, spec, ids[name])            # REPO V1 V2
        assert rc == 0, spec
        rc, _ = _cli(capfd, "diff", f"{path}@{spec}", f"{path}@{ids[name]}")
        assert rc == 0, spec
    out = tmp_path / "a.npz"
    assert _cli(capfd, "export", path, "step:3@main", out, "-q")[0] == 0
    np.testing.assert_array_equal(np.load(out)["u"], _field(3, "main"))
    assert _cli(capfd, "export", f"{path}@step:4", out, "-q", "--force")[0] == 0
    np.testing.assert_array_equal(np.load(out)["u"], _field(4, "exp"))
    for spec, name in want.items():   # replay: both styles hand the command the same version
        for style in ([f"{path}@{spec}"], [path, spec]):
            rc, out = _cli(capfd, "replay", *style, "--", sys.executable, "-c",
                           "import os; print('RESTORE=' + os.environ['VLCC_RESTORE'])")
            assert rc == 0 and f"RESTORE={ids[name]}" in out, (style, out)
    # bad specs: usage (2) vs not found (3), the same in every command
    for spec, err in BAD.items():
        if spec == "":
            continue
        rc_want = EXIT_USAGE if err is vlcc.ArgumentError else EXIT_NOT_FOUND
        for cmd in ("show", "resolve", "verify", "log"):
            assert _cli(capfd, cmd, path, spec)[0] == rc_want, (cmd, spec)
    # both styles at once, or a version for a whole-repository command: usage errors
    assert _cli(capfd, "show", f"{path}@latest", "latest")[0] == EXIT_USAGE
    assert _cli(capfd, "du", f"{path}@latest")[0] == EXIT_USAGE
    assert _cli(capfd, "show", f"{path}-missing", "latest")[0] == EXIT_NOT_FOUND


def test_checkpointer_restore_and_plan_every_form(repo, tmp_path):
    path, ids, want = repo
    want = dict(want, latest="v3")      # a Checkpointer's latest: the newest of its branch
    with vlcc.Checkpointer(path) as ck:
        u = _register(ck)
        for spec, name in want.items():
            v = ck.restore(spec)
            assert v.id == ids[name], spec
            np.testing.assert_array_equal(u, _field(int(name[1:]), "exp" if name[0] == "e" else "main"))
        assert ck.plan(list(want)) == [ids[n] for n in want.values()]
        assert ck.plan([1, 3]) == [ids["v1"], ids["v3"]]      # steps on the current branch
        for spec, err in BAD.items():
            with pytest.raises(err):
                ck.restore(spec)


@pytest.mark.mpi(min_size=1)
def test_restore_every_form_mpi(mpi_tmp):
    """Under mpiexec at any rank count: every form restores the same version
    and this rank's share of its data on every rank."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    path = f"{mpi_tmp}/spec"
    ids = build(path, comm)
    want = dict(forms(ids), latest="v3")
    part = _part(comm)
    with vlcc.Checkpointer(path, comm=comm) as ck:
        u = _register(ck, comm)
        for spec, name in want.items():
            assert ck.restore(spec).id == ids[name], spec
            np.testing.assert_array_equal(
                u, _field(int(name[1:]), "exp" if name[0] == "e" else "main")[part])
        got = comm.allgather(ck.plan(list(want)))
        for spec, err in BAD.items():      # an error on every rank, never a hang
            with pytest.raises(err):
                ck.restore(spec)
    assert all(g == [ids[n] for n in want.values()] for g in got)


QUERY_C = r"""
#include <stdio.h>
#include <vlcc.h>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank; MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (vlcc_init(argv[1], MPI_COMM_WORLD, NULL) != 0) { printf("init|%s\n", vlcc_last_error()); return 1; }
    for (int i = 2; i < argc; i++) {
        char id[VLCC_ID_MAX] = ""; int64_t step = -7;
        int rc = vlcc_query(argv[i], id, sizeof id, &step);
        char id2[VLCC_ID_MAX] = ""; int64_t step2 = -7;
        int rc2 = vlcc_resolve(argv[i], id2, sizeof id2, &step2);
        if (rank == 0) printf("%s|%d|%s|%lld|%d|%s\n", argv[i], rc, id, (long long)step, rc2, id2);
    }
    vlcc_finalize();
    MPI_Finalize();
    return 0;
}
"""


def test_c_vlcc_query_every_form(repo, tmp_path):
    from capi_helpers import build_c, mpirun
    path, ids, want = repo
    src = tmp_path / "query.c"
    src.write_text(QUERY_C)
    exe = build_c(src, tmp_path / "query")
    want = dict(want, latest="v3")     # vlcc_query's latest: the head of its branch (main)
    bad = [s for s in BAD if s]
    p = mpirun(2, exe, path, *want, *bad)
    rows = {line.split("|")[0]: line.split("|") for line in p.stdout.splitlines()}
    for spec, name in want.items():
        _, rc, vid, step, rc2, vid2 = rows[spec]
        assert (int(rc), vid, int(step)) == (0, ids[name], int(name[1:])), rows[spec]
        assert (int(rc2), vid2) == (0, ids[name]), rows[spec]      # the alias
    for spec in bad:
        code = vlcc.ArgumentError.code if BAD[spec] is vlcc.ArgumentError else vlcc.NotFoundError.code
        assert int(rows[spec][1]) == code == int(rows[spec][4]), rows[spec]


RESOLVE_F90 = r"""
program resolve
  use, intrinsic :: iso_fortran_env, only: int64
  use mpi
  use vlcc
  implicit none
  integer :: ierr, r, i
  integer(int64) :: step
  character(len=64) :: vid, spec, repo
  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, r, ierr)
  call get_command_argument(1, repo)
  call vlcc_init(trim(repo), MPI_COMM_WORLD, ierr)
  do i = 2, command_argument_count()
    call get_command_argument(i, spec)
    call vlcc_resolve(trim(spec), ierr, vid, step)
    if (r == 0) print '(a,"|",i0,"|",a,"|",i0)', trim(spec), ierr, trim(vid), step
  end do
  call vlcc_finalize(ierr)
  call MPI_Finalize(ierr)
end program resolve
"""


def test_fortran_vlcc_resolve(repo, tmp_path):
    from capi_helpers import build_fortran, fmpirun
    path, ids, want = repo
    src = tmp_path / "resolve.f90"
    src.write_text(RESOLVE_F90)
    exe = build_fortran(src, tmp_path / "resolve")
    specs = ["step:3@main", "tag:good", "step:4@exp"]
    p = fmpirun(2, exe, path, *specs)
    rows = [line.strip().split("|") for line in p.stdout.splitlines() if "|" in line]
    assert rows == [[s, "0", ids[want[s]], want[s][1:]] for s in specs], p.stdout
