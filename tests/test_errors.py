"""Every bad input gets its own error class and a message that says what and
where; after each error the versions committed before it still restore bit-exact.

Serial tests use COMM_SELF; tests marked ``mpi`` run at any rank count (some
need two ranks: ``min_size=2``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings

import numpy as np
import pytest
from mpi4py import MPI

import vlcc
from vlcc.repo import config as vlcc_config
from vlcc.repo.sealed import seal

SELF = MPI.COMM_SELF


def A():
    return np.linspace(-1.0, 1.0, 5)


def D():
    return np.arange(8, dtype=np.float32) * 0.5


class Base:
    """A repository with two versions of ``a`` (per-rank float64 (5,)) and
    ``d`` (distributed float32 (8,)) on one rank."""

    def __init__(self, path):
        self.path = str(path)
        self.a, self.d = A(), D()
        with vlcc.Checkpointer(self.path, comm=SELF) as ck:
            ck.register("a", self.a)
            ck.register("d", self.d, global_shape=(8,), offset=(0,))
            self.v1 = ck.checkpoint(step=1)
            self.a *= 2
            self.d *= 2
            self.v2 = ck.checkpoint(step=2)

    def expect(self, v):
        k = 1 if v.id == self.v1.id else 2
        return A() * k, D() * k

    def check_intact(self, *versions):
        """Every given version restores bit-exact into freshly registered arrays."""
        for v in versions or (self.v1, self.v2):
            a, d = np.zeros(5), np.zeros(8, np.float32)
            with vlcc.Checkpointer(self.path, comm=SELF) as ck:
                ck.register("a", a)
                ck.register("d", d, global_shape=(8,), offset=(0,))
                assert ck.restore(v.id).id == v.id
            ea, ed = self.expect(v)
            assert a.tobytes() == ea.tobytes() and d.tobytes() == ed.tobytes(), v.id


@pytest.fixture
def base(tmp_path):
    return Base(tmp_path / "repo")


# ----------------------------------------------------------------------------- not found
def test_unknown_version_branch_tag(base):
    p = base.path
    with vlcc.Checkpointer(p, comm=SELF) as ck:
        ck.register("a", np.zeros(5))
        ck.register("d", np.zeros(8, np.float32), global_shape=(8,), offset=(0,))
        cases = [("0123456789abcdef", f"unknown version '0123456789abcdef' in repository {p}"),
                 ("tag:nope", f"unknown tag 'nope' in repository {p}"),
                 ("branch:nope", r"unknown branch 'nope' .*known: main"),
                 ("no-such-thing", "unknown version 'no-such-thing'"),
                 ("ffff0000", "unknown version 'ffff0000'")]
        for spec, match in cases:
            with pytest.raises(vlcc.NotFoundError, match=match):
                ck.restore(spec)
            with pytest.raises(vlcc.NotFoundError, match=match):
                vlcc.Repository(p).resolve(spec)
        with pytest.raises(vlcc.NotFoundError, match="unknown branch 'nope'"):
            ck.switch("nope")
        with pytest.raises(vlcc.NotFoundError, match="unknown version '0123456789abcdef'"):
            ck.branch("b", at="0123456789abcdef")
        with pytest.raises(vlcc.NotFoundError, match="unknown tag"):
            ck.tag("t", "tag:nope")
    repo = vlcc.Repository(p)
    with pytest.raises(vlcc.NotFoundError, match="unknown branch 'nope'"):
        repo.log(branch="nope")
    with pytest.raises(vlcc.MissingProviderError, match=rf"version {base.v2.id} has no provider 'zz' \(it has: a, d\)"):
        repo.read(base.v2, "zz")
    assert issubclass(vlcc.NotFoundError, LookupError)
    assert repo.tags() == {} and set(repo.branches()) == {"main"}
    base.check_intact()


def test_empty_branch_and_missing_repository(tmp_path):
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF) as ck:
        ck.register("a", np.zeros(2))
        with pytest.raises(vlcc.NotFoundError, match="no version on branch 'main'"):
            ck.restore()
        with pytest.raises(vlcc.VlccError, match="branch 'main' has no version yet"):
            ck.tag("t")
    with pytest.raises(vlcc.NotFoundError, match="has no versions"):
        vlcc.Repository(tmp_path / "r").resolve("latest")
    with pytest.raises(vlcc.RepositoryError, match="directory does not exist"):
        vlcc.Repository(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(vlcc.RepositoryError, match=r"is not a vlcc repository \(no vlcc.json\)"):
        vlcc.Repository(tmp_path / "plain")
    with pytest.raises(vlcc.RepositoryError, match="directory does not exist"):
        vlcc.Checkpointer(tmp_path / "missing", comm=SELF, create=False)
    assert not (tmp_path / "missing").exists()


# ----------------------------------------------------------------------------- shape / dtype
@pytest.mark.parametrize("what,make,kw,match", [
    ("dtype", lambda: np.zeros(5, np.float32), {},
     "provider 'a': dtype mismatch, version .* has float64, registered float32"),
    ("per-rank shape", lambda: np.zeros(6), {},
     r"provider 'a': version .* has shape \(5,\) on rank 0, target \(6,\)"),
    ("ndim", lambda: np.zeros((5, 1)), {},
     r"provider 'a': version .* has shape \(5,\) on rank 0, target \(5, 1\)"),
    ("kind", lambda: np.zeros(5), dict(global_shape=(5,), offset=(0,)),
     "provider 'a': version .* stores a array array, registered a distributed array"),
])
def test_array_mismatch_on_restore(base, what, make, kw, match):
    target = make()
    before = target.copy()
    with vlcc.Checkpointer(base.path, comm=SELF) as ck:
        ck.register("a", target, **kw)
        ck.register("d", np.zeros(8, np.float32), global_shape=(8,), offset=(0,))
        with pytest.raises(vlcc.ShapeMismatchError, match=match):
            ck.restore(base.v1.id)
    assert target.tobytes() == before.tobytes(), f"{what}: target modified by a failed restore"
    base.check_intact()


@pytest.mark.parametrize("make,kw,match", [
    (lambda: np.zeros(9, np.float32), dict(global_shape=(9,), offset=(0,)),
     r"provider 'd': global shape mismatch, version .* has \(8,\), registered \(9,\)"),
    (lambda: np.zeros(8, np.float64), dict(global_shape=(8,), offset=(0,)),
     "provider 'd': dtype mismatch, version .* has float32, registered float64"),
    (lambda: np.zeros(8, np.float32), {},
     "provider 'd': version .* stores a distributed array, registered a array array"),
])
def test_distributed_mismatch_on_restore(base, make, kw, match):
    a, d = np.full(5, 7.0), make()
    d_before = d.copy()
    with vlcc.Checkpointer(base.path, comm=SELF) as ck:
        ck.register("a", a)
        ck.register("d", d, **kw)
        with pytest.raises(vlcc.ShapeMismatchError, match=match):
            ck.restore()
    # Checked on every rank before any byte is read: nothing was touched.
    assert np.all(a == 7.0) and d.tobytes() == d_before.tobytes()
    base.check_intact()


def test_value_registered_where_array_stored(base):
    with vlcc.Checkpointer(base.path, comm=SELF) as ck:
        ck.register("a", vlcc.ValueProvider(get=lambda: 1, set=lambda v: None))
        ck.register("d", np.zeros(8, np.float32), global_shape=(8,), offset=(0,))
        with pytest.raises(vlcc.ProviderError, match="provider 'a': version .* stores a array, registered a value"):
            ck.restore()
    base.check_intact()


# ----------------------------------------------------------------------------- missing providers
def test_stored_provider_not_registered(base):
    a = np.zeros(5)
    with vlcc.Checkpointer(base.path, comm=SELF) as ck:
        ck.register("a", a)
        with pytest.raises(vlcc.MissingProviderError,
                           match=rf"version {base.v2.id} has providers that are not registered: d .*strict=False"):
            ck.restore()
        assert np.all(a == 0), "nothing is restored when the check fails"
        v = ck.restore(strict=False)
    assert v.id == base.v2.id and a.tobytes() == (A() * 2).tobytes()
    base.check_intact()


@pytest.mark.parametrize("extra", [np.zeros(3), vlcc.ValueProvider(get=lambda: 0, set=print), "object"])
def test_registered_provider_missing_in_version(base, extra):
    class O:
        def capture(self):
            return {"x": 1}

        def restore(self, d):
            raise AssertionError("must not be called")
    with vlcc.Checkpointer(base.path, comm=SELF) as ck:
        ck.register("a", np.zeros(5))
        ck.register("d", np.zeros(8, np.float32), global_shape=(8,), offset=(0,))
        ck.register("new/thing", O() if isinstance(extra, str) else extra)
        with pytest.raises(vlcc.MissingProviderError,
                           match=rf"provider 'new/thing' is not in version {base.v1.id}"):
            ck.restore(base.v1)
        with pytest.raises(vlcc.MissingProviderError):
            ck.restore(base.v1, strict=False)   # a registered provider must be filled
    base.check_intact()


# ----------------------------------------------------------------------------- duplicates
@pytest.mark.parametrize("first,second,match", [
    ("a", "a", "provider 'a' is already registered"),
    ("a", "a/b", "provider 'a/b' clashes with registered provider 'a'"),
    ("a/b", "a", "provider 'a' clashes with registered provider 'a/b'"),
    ("solver/u", "solver", "provider 'solver' clashes with registered provider 'solver/u'"),
    ("model", "model/w", "provider 'model/w' clashes with registered provider 'model'"),
])
def test_duplicate_registration(tmp_path, first, second, match):
    class M:
        def capture(self):
            return {"w": np.zeros(2)}

        def restore(self, d):
            pass
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF) as ck:
        ck.register(first, M() if first == "model" else np.zeros(2))
        with pytest.raises(vlcc.DuplicateProviderError, match=match):
            ck.register(second, np.zeros(3))
        assert ck.providers == [first]
        v = ck.checkpoint()
    assert set(v.providers) == ({"model/w"} if first == "model" else {first})
    assert issubclass(vlcc.DuplicateProviderError, vlcc.ProviderError)


# ----------------------------------------------------------------------------- format version
def test_unknown_format_version(base):
    cfg_path = os.path.join(base.path, "vlcc.json")
    original = open(cfg_path, "rb").read()
    cfg = json.loads(original)
    cfg["format_version"] = 99
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    for open_it in (lambda: vlcc.Repository(base.path),
                    lambda: vlcc.Checkpointer(base.path, comm=SELF)):
        with pytest.raises(vlcc.FormatVersionError,
                           match=f"repository {base.path} has format version 99; this vlcc reads versions 1, 2, 3"):
            open_it()
    assert issubclass(vlcc.FormatVersionError, vlcc.RepositoryError)
    assert open(os.path.join(base.path, "versions", f"{base.v1.id}.json"), "rb").read(), \
        "nothing committed may be touched"
    cfg["format"] = "something-else"
    cfg["format_version"] = 1
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    with pytest.raises(vlcc.RepositoryError, match="is not a vlcc repository config"):
        vlcc.Repository(base.path)
    with open(cfg_path, "wb") as f:
        f.write(original)
    base.check_intact()


def test_unknown_manifest_version(base):
    path = os.path.join(base.path, "versions", f"{base.v1.id}.json")
    doc = json.loads(open(path, "rb").read())
    doc["vlcc_manifest"] = 7
    with open(path, "wb") as f:
        f.write(seal(doc))     # correctly sealed, but from a future vlcc
    with pytest.raises(vlcc.FormatVersionError, match=f"manifest {path} has manifest version 7"):
        vlcc.Repository(base.path).resolve(base.v1.id)
    # Listing skips it with a warning, instead of failing on the other versions.
    with pytest.warns(UserWarning, match=f"skipping version {base.v1.id}: manifest .* version 7"):
        assert [v.id for v in vlcc.Repository(base.path).log()] == [base.v2.id]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base.check_intact(base.v2)


# ----------------------------------------------------------------------------- damaged manifests
def _manifest(base, v):
    return os.path.join(base.path, "versions", f"{v.id}.json")


@pytest.mark.filterwarnings("ignore:skipping version")
@pytest.mark.parametrize("damage", ["edit", "truncate", "empty", "garbage"])
def test_corrupted_manifest(base, damage):
    path = _manifest(base, base.v1)
    raw = open(path, "rb").read()
    if damage == "edit":     # still valid JSON, different content
        bad = re.sub(rb'"step": ?1\b', b'"step":5', raw)
        assert bad != raw
    elif damage == "truncate":
        bad = raw[: len(raw) // 2]
    elif damage == "empty":
        bad = b""
    else:
        bad = b"\x00\xff" * 20
    with open(path, "wb") as f:
        f.write(bad)
    repo = vlcc.Repository(base.path)
    with pytest.raises(vlcc.CorruptionError, match=f"manifest of version {base.v1.id} \\({path}\\)"):
        repo.resolve(base.v1.id)
    with pytest.warns(UserWarning, match=f"skipping version {base.v1.id}"):
        listed = [v.id for v in vlcc.Repository(base.path).log()]
    assert listed == [base.v2.id]
    with pytest.raises(vlcc.CorruptionError, match=base.v1.id):
        vlcc.Repository(base.path).verify()
    with vlcc.Checkpointer(base.path, comm=SELF) as ck:
        ck.register("a", np.zeros(5))
        ck.register("d", np.zeros(8, np.float32), global_shape=(8,), offset=(0,))
        with pytest.raises(vlcc.CorruptionError, match=base.v1.id):
            ck.restore(base.v1.id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base.check_intact(base.v2)
        assert vlcc.Repository(base.path).verify(base.v2)["versions"] == 1


@pytest.mark.filterwarnings("ignore:skipping version")
def test_corrupted_head_is_not_silently_replaced(base):
    """The newest version of a branch is damaged: restore() fails, it does not
    fall back to an older version without saying so."""
    with open(_manifest(base, base.v2), "r+b") as f:
        f.truncate(10)
    with vlcc.Checkpointer(base.path, comm=SELF) as ck:
        ck.register("a", np.zeros(5))
        ck.register("d", np.zeros(8, np.float32), global_shape=(8,), offset=(0,))
        with pytest.raises(vlcc.CorruptionError, match=base.v2.id):
            ck.restore()
    base.check_intact(base.v1)


# ----------------------------------------------------------------------------- storage
def test_file_where_the_data_directory_should_be(base):
    data = os.path.join(base.path, "data")
    moved = data + ".moved"
    os.rename(data, moved)
    with open(data, "w") as f:
        f.write("not a directory\n")
    try:
        # A new branch (no parent to read): creating the version's directory fails.
        with vlcc.Checkpointer(base.path, comm=SELF, branch="fresh") as ck:
            ck.register("a", np.zeros(5))
            with pytest.raises(vlcc.StorageError, match=f"cannot create directory {data}/"):
                ck.checkpoint()
        # On main the parent's data is unreachable as well: still a StorageError naming it.
        with vlcc.Checkpointer(base.path, comm=SELF) as ck:
            ck.register("a", np.zeros(5))
            with pytest.raises(vlcc.StorageError, match=f"{data}/"):
                ck.checkpoint()
    finally:
        os.unlink(data)
        os.rename(moved, data)
    assert [v.id for v in vlcc.Repository(base.path).log()] == [base.v2.id, base.v1.id]
    base.check_intact()


def test_read_only_mount(tmpfs):
    mnt = tmpfs.mount("4m")
    b = Base(os.path.join(mnt, "repo"))
    tmpfs.remount(mnt, "ro")
    with vlcc.Checkpointer(b.path, comm=SELF) as ck:     # opening needs no write
        ck.register("a", b.a)
        ck.register("d", b.d, global_shape=(8,), offset=(0,))
        with pytest.raises(vlcc.StorageError, match=f"read-only file system.*{b.path}"):
            ck.checkpoint()
        with pytest.raises(vlcc.StorageError, match="read-only file system"):
            ck.tag("t", b.v1)
    b.check_intact()           # restoring from a read-only repository works
    assert vlcc.Repository(b.path).verify()["versions"] == 2
    with pytest.raises(vlcc.StorageError, match="read-only file system"):
        vlcc.Checkpointer(os.path.join(mnt, "new-repo"), comm=SELF)
    tmpfs.remount(mnt, "rw")
    with vlcc.Checkpointer(b.path, comm=SELF) as ck:
        ck.register("a", b.a)
        ck.register("d", b.d, global_shape=(8,), offset=(0,))
        v3 = ck.checkpoint()
    assert v3.parent == b.v2.id
    assert [v.id for v in vlcc.Repository(b.path).log()] == [v3.id, b.v2.id, b.v1.id]


def test_read_only_directory_permissions(tmp_path):
    """chmod 0o555 of the data directory (only effective when not root: root
    bypasses permission bits, and test_read_only_mount covers that case)."""
    b = Base(tmp_path / "repo")
    data = os.path.join(b.path, "data")
    os.chmod(data, 0o555)
    try:
        probe = os.path.join(data, "probe")
        try:
            os.mkdir(probe)
        except PermissionError:
            pass
        else:
            os.rmdir(probe)
            pytest.skip("running as root: permission bits do not block writes")
        with vlcc.Checkpointer(b.path, comm=SELF) as ck:
            ck.register("a", b.a)
            ck.register("d", b.d, global_shape=(8,), offset=(0,))
            with pytest.raises(vlcc.StorageError, match=f"permission denied.*{data}"):
                ck.checkpoint()
    finally:
        os.chmod(data, 0o755)
    b.check_intact()


def test_no_space_left(tmpfs):
    mnt = tmpfs.mount("1m")
    b = Base(os.path.join(mnt, "repo"))
    big = np.random.default_rng(0).random(300_000)      # 2.4 MB: cannot fit
    with vlcc.Checkpointer(b.path, comm=SELF) as ck:
        ck.register("a", b.a)
        ck.register("d", b.d, global_shape=(8,), offset=(0,))
        ck.register("big", big)
        with pytest.raises(vlcc.StorageError, match="no space left on device"):
            ck.checkpoint()
        # Nothing of the failed version is visible, and its partial data is gone.
        assert [v.id for v in vlcc.Repository(b.path).log()] == [b.v2.id, b.v1.id]
        assert sorted(os.listdir(os.path.join(b.path, "data"))) == sorted([b.v1.id, b.v2.id])
        ck.unregister("big")
        v3 = ck.checkpoint()               # the space was given back
    assert v3.parent == b.v2.id
    b.check_intact()
    assert vlcc.Repository(b.path).verify()["versions"] == 3


# ----------------------------------------------------------------------------- collective errors
@pytest.mark.mpi
def test_every_rank_sees_not_found_and_format_errors(comm, mpi_tmp):
    path = os.path.join(mpi_tmp, "repo")
    a = np.full(3, float(comm.rank))
    with vlcc.Checkpointer(path, comm=comm) as ck:
        ck.register("a", a)
        v1 = ck.checkpoint()
        for spec in ("tag:nope", "branch:nope", "0123456789abcdef"):
            with pytest.raises(vlcc.NotFoundError, match="nope|0123456789abcdef"):
                ck.restore(spec)
    comm.Barrier()
    if comm.rank == 0:
        cfg = json.load(open(os.path.join(path, "vlcc.json")))
        cfg["format_version"] = 99
        json.dump(cfg, open(os.path.join(path, "vlcc.json"), "w"))
    comm.Barrier()
    with pytest.raises(vlcc.FormatVersionError, match="format version 99"):
        vlcc.Checkpointer(path, comm=comm)
    comm.Barrier()
    if comm.rank == 0:
        cfg["format_version"] = vlcc_config.FORMAT_VERSION
        json.dump(cfg, open(os.path.join(path, "vlcc.json"), "w"))
    comm.Barrier()
    a[:] = -1
    with vlcc.Checkpointer(path, comm=comm) as ck:
        ck.register("a", a)
        assert ck.restore().id == v1.id
    assert np.all(a == comm.rank)


@pytest.mark.mpi(min_size=2)
def test_inconsistent_providers_between_ranks(comm, mpi_tmp):
    """Rank 1 registers an extra provider: every rank raises (no hang), nothing
    is committed, and the next consistent checkpoint works."""
    path = os.path.join(mpi_tmp, "repo")
    a = np.arange(4.0) + comm.rank
    with vlcc.Checkpointer(path, comm=comm) as ck:
        ck.register("a", a)
        v1 = ck.checkpoint()
        if comm.rank == 1:
            ck.register("extra", np.zeros(2))
        with pytest.raises(vlcc.MissingProviderError,
                           match=r"providers differ between ranks: rank 1 lacks nothing and has extra \['extra'\]"):
            ck.checkpoint()
        if comm.rank == 1:
            ck.unregister("extra")
            ck.register("a2", np.zeros(2, np.float32))
        else:
            ck.register("a2", np.zeros(2, np.float64))
        with pytest.raises(vlcc.ShapeMismatchError,
                           match="provider 'a2': dtype <f8 .* on rank 0 but <f4 .* on rank 1"):
            ck.checkpoint()
        ck.unregister("a2")
        assert [v.id for v in ck.log()] == [v1.id]
        v2 = ck.checkpoint()
        assert v2.parent == v1.id
        a[:] = -1
        ck.restore(v1)
    assert np.all(a == np.arange(4.0) + comm.rank)
    if comm.rank == 0:
        assert sorted(os.listdir(os.path.join(path, "data"))) == sorted([v1.id, v2.id])


@pytest.mark.mpi(min_size=2)
def test_overlapping_decomposition(comm, mpi_tmp):
    path = os.path.join(mpi_tmp, "repo")
    with vlcc.Checkpointer(path, comm=comm) as ck:
        # Every rank claims rows 0..3 of a (4 * size)-row array.
        ck.register("u", np.zeros((4, 2)), global_shape=(4 * comm.size, 2), offset=(0, 0))
        with pytest.raises(vlcc.ShapeMismatchError,
                           match=r"distributed provider 'u': blocks of rank 0 \(offset \(0, 0\), "
                                 r"shape \(4, 2\)\) and rank 1 .* overlap"):
            ck.checkpoint()
    assert vlcc.Repository(path).log() == []


@pytest.mark.mpi
def test_gappy_decomposition(comm, mpi_tmp):
    path = os.path.join(mpi_tmp, "repo")
    n = 3
    with vlcc.Checkpointer(path, comm=comm) as ck:
        # One row more than the ranks own together.
        ck.register("u", np.zeros(n), global_shape=(n * comm.size + 1,), offset=(n * comm.rank,))
        with pytest.raises(vlcc.ShapeMismatchError,
                           match=rf"cover {n * comm.size} of the {n * comm.size + 1} elements .*gaps"):
            ck.checkpoint()
        ck.unregister("u")
        ck.register("u", np.zeros(n), global_shape=(n * comm.size,), offset=(n * comm.rank,))
        v = ck.checkpoint()
        v2 = ck.checkpoint()      # the same decomposition again: its check is reused
        # and a gappy one after a valid one is still caught (the reuse is exact)
        ck.unregister("u")
        ck.register("u", np.zeros(n), global_shape=(n * comm.size + 1,), offset=(n * comm.rank,))
        with pytest.raises(vlcc.ShapeMismatchError, match="gaps"):
            ck.checkpoint()
    assert [x.id for x in vlcc.Repository(path).log()] == [v2.id, v.id]


@pytest.mark.mpi
def test_failure_on_one_rank_fails_everywhere(comm, mpi_tmp):
    """A capture error on the last rank only: every rank raises, naming it."""
    last = comm.size - 1

    class Flaky:
        def capture(self):
            if comm.rank == last:
                raise RuntimeError("sensor offline")
            return {"x": 1}

        def restore(self, d):
            pass
    path = os.path.join(mpi_tmp, "repo")
    with vlcc.Checkpointer(path, comm=comm) as ck:
        ck.register("flaky", Flaky())
        with pytest.raises(vlcc.ProviderError, match="capturing provider 'flaky' failed: RuntimeError: sensor offline"):
            ck.checkpoint()
    assert vlcc.Repository(path).log() == []


@pytest.mark.mpi(min_size=2)
def test_per_rank_data_cannot_move_to_another_rank_count(comm, mpi_tmp):
    """Per-rank arrays that differ per rank are not redistributable: restoring
    them on one rank (COMM_SELF of rank 0) says so; replicated ones work."""
    path = os.path.join(mpi_tmp, "repo")
    with vlcc.Checkpointer(path, comm=comm) as ck:
        ck.register("per", np.full(3, comm.rank, np.int64))
        ck.register("rep", np.arange(3.0))
        v = ck.checkpoint()
    if comm.rank == 0:
        with vlcc.Checkpointer(path, comm=SELF) as ck:
            ck.register("per", np.zeros(3, np.int64))
            ck.register("rep", np.zeros(3))
            with pytest.raises(vlcc.ShapeMismatchError,
                               match=f"provider 'per' of version {v.id} is per-rank data written on "
                                     f"{comm.size} ranks .* cannot be restored on 1 ranks"):
                ck.restore()
            ck.unregister("per")
            rep = np.zeros(3)
            ck.unregister("rep")
            ck.register("rep", rep)
            ck.restore(strict=False)
            assert rep.tobytes() == np.arange(3.0).tobytes()
    comm.Barrier()
