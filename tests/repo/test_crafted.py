"""A repository handed over by a stranger (docs/format.md, "Threat model"):
gc never deletes or reads through a symbolic link out of the repository;
FIFOs, /dev/zero links, directories named like manifests, deeply nested JSON,
non-ASCII refs and blocks claiming 1 TiB give clear errors naming the file,
never a block, a raw RecursionError/IsADirectoryError/MemoryError."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from mpi4py import MPI

import vlcc
from vlcc.repo.checksums import chunk_hash
from vlcc.repo.sealed import seal
from conftest import TESTS_DIR

SELF = MPI.COMM_SELF
ROOT = os.path.dirname(TESTS_DIR)
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "format-v3")


def _repo(tmp_path, n=2):
    path = str(tmp_path / "repo")
    u = np.arange(100.0)
    vs = []
    with vlcc.Checkpointer(path, comm=SELF) as ck:
        ck.register("u", u)
        ck.register("step", vlcc.ValueProvider(lambda: 7))
        for i in range(n):
            u += 1                                  # every version writes its own data file
            vs.append(ck.checkpoint(step=i))
    return path, vs


def _outside(tmp_path):
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    for p in ("a.txt", "r0.bp", "r0.idx.json", "sub/b.txt", ".tmp-x"):
        (victim / p).write_text("precious")
    return victim


def _victim_intact(victim) -> bool:
    return all((victim / p).read_text() == "precious"
               for p in ("a.txt", "r0.bp", "r0.idx.json", "sub/b.txt", ".tmp-x"))


def test_gc_never_deletes_through_a_symlink(tmp_path):
    path, vs = _repo(tmp_path)
    victim = _outside(tmp_path)
    data = os.path.join(path, "data")
    os.symlink(victim, os.path.join(data, "0123456789abcdef"))          # an orphan "version"
    os.symlink(victim, os.path.join(data, ".tmp-evil"))
    orphan = os.path.join(data, "fedcba9876543210")
    os.mkdir(orphan)
    os.symlink(victim / "a.txt", os.path.join(orphan, "r0.bp"))           # a link inside
    os.symlink(victim, os.path.join(orphan, "r1.bp"))
    os.symlink(victim / "a.txt", os.path.join(data, vs[0].id, ".tmp-promote-x"))
    res = vlcc.Repository(path).gc()
    assert _victim_intact(victim), "gc deleted files outside the repository"
    for p in ("0123456789abcdef", ".tmp-evil", "fedcba9876543210"):
        assert not os.path.lexists(os.path.join(data, p)), p       # the links themselves went
    assert res["live_versions"] == 2
    vlcc.Repository(path).verify()


def test_gc_leaves_a_linked_live_version_alone(tmp_path):
    path, vs = _repo(tmp_path)
    victim = _outside(tmp_path)
    vdir = os.path.join(path, "data", vs[1].id)
    moved = tmp_path / "moved"
    shutil.move(vdir, moved)
    os.symlink(moved, vdir)
    (moved / ".tmp-leftover").write_text("precious")
    with pytest.warns(UserWarning, match="symbolic link"):
        vlcc.Repository(path).gc()
    assert (moved / ".tmp-leftover").exists() and _victim_intact(victim)
    with pytest.raises(vlcc.CorruptionError, match="leads out of"):
        vlcc.Repository(path).read(vs[1], "u")          # never read through the link either


def _run(code: str, timeout=120) -> subprocess.CompletedProcess:
    """In a subprocess: a blocking open() fails the test by timeout instead of hanging pytest."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("kind", ["fifo", "devzero", "directory", "nested", "huge-claim"])
def test_bad_manifest_is_skipped_with_a_warning(tmp_path, kind):
    path, vs = _repo(tmp_path)
    m = os.path.join(path, "versions", f"{vs[1].id}.json")
    os.remove(m)
    if kind == "fifo":
        os.mkfifo(m)
    elif kind == "devzero":
        os.symlink("/dev/zero", m)
    elif kind == "directory":
        os.mkdir(m)
    elif kind == "nested":
        with open(m, "w") as f:
            f.write("[" * 200000 + "]" * 200000)
    else:
        with open(m, "wb") as f:
            f.truncate((1 << 30) + 1)            # sparse: claims more than any manifest
    r = _run(f"""
        import warnings, vlcc
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            repo = vlcc.Repository({path!r})
            ids = [v.id for v in repo.log()]
        assert ids == [{vs[0].id!r}], ids
        assert any({vs[1].id!r} in str(x.message) for x in w), [str(x.message) for x in w]
        try:
            repo.resolve({vs[1].id!r})
        except vlcc.VlccError as exc:
            print("ERR", type(exc).__name__, exc)
        try:
            repo.gc()
        except vlcc.VlccError as exc:
            print("GC", type(exc).__name__, exc)
    """)
    assert r.returncode == 0, r.stderr
    assert "ERR CorruptionError" in r.stdout and f"{vs[1].id}.json" in r.stdout, r.stdout
    assert "Traceback" not in r.stdout


def test_fifo_and_device_in_data_files(tmp_path):
    path, vs = _repo(tmp_path)
    bp, bp0 = (os.path.join(path, "data", v.id, next(f for f in os.listdir(
        os.path.join(path, "data", v.id)) if f.endswith(".bp"))) for v in (vs[1], vs[0]))
    os.remove(os.path.join(bp, "md.0"))
    os.mkfifo(os.path.join(bp, "md.0"))
    os.remove(os.path.join(bp0, "data.0"))
    os.symlink("/dev/zero", os.path.join(bp0, "data.0"))
    r = _run(f"""
        import vlcc
        repo = vlcc.Repository({path!r})
        for vid in ({vs[0].id!r}, {vs[1].id!r}):
            try:
                repo.read(vid, "u")
                print("READ OK", vid)
            except vlcc.CorruptionError as exc:
                print("ERR", exc)
        try:
            repo.verify()
        except vlcc.CorruptionError as exc:
            print("VERIFY", exc.damaged)
    """)
    assert r.returncode == 0, r.stderr
    assert "READ OK" not in r.stdout and r.stdout.count("ERR") == 2, r.stdout
    assert "md.0" in r.stdout and "data.0" in r.stdout


def test_non_ascii_ref_is_a_clear_error(tmp_path):
    path, vs = _repo(tmp_path)
    with open(os.path.join(path, "refs", "tags", "bad"), "wb") as f:
        f.write(b"\xff" + vs[0].id.encode()[1:] + b"\n")
    repo = vlcc.Repository(path)
    with pytest.warns(UserWarning, match="tag 'bad'.*not a version id"):
        assert repo.tags() == {}
    assert [v.id for v in repo.log()] == [vs[1].id, vs[0].id]
    with pytest.raises(vlcc.CorruptionError, match="tag 'bad'"):
        repo.resolve("tag:bad")
    r = _run(f"import vlcc.cli, sys; sys.exit(vlcc.cli.main(['log', {path!r}]))")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def _reseal_index(path, vid, rank, edit):
    """Edit a format-3 rank index and re-seal the chain of checksums above it."""
    rel = f"data/{vid}/r{rank}.idx.json"
    idx = json.load(open(os.path.join(path, rel)))
    edit(idx)
    raw = seal(idx)
    open(os.path.join(path, rel), "wb").write(raw)
    tab = os.path.join(path, "data", vid, "ranks.bin")
    table = bytearray(open(tab, "rb").read())
    table[16 * rank:16 * rank + 16] = bytes.fromhex(chunk_hash(raw))
    open(tab, "wb").write(table)
    mpath = os.path.join(path, "versions", f"{vid}.json")
    m = json.load(open(mpath))
    m["ranks"]["checksum"] = chunk_hash(bytes(table))
    open(mpath, "wb").write(seal(m))


def test_block_claiming_a_tebibyte(tmp_path):
    path = str(tmp_path / "repo")
    shutil.copytree(FIXTURE, path)
    vid = json.load(open(os.path.join(path, "expected.json")))["tags"]["v1"]

    def claim(idx):
        for leaf in idx["leaves"].values():
            leaf["nbytes"] = 1 << 40
            for c in leaf.get("chunks", []):
                c[3] = c[4] = 1 << 40
    _reseal_index(path, vid, 0, claim)
    repo = vlcc.Repository(path)
    for name in ("step", "heat/rank_ids", "heat/u"):
        with pytest.raises(vlcc.CorruptionError, match=vid):
            repo.read(vid, name, **({"rank": 0, "allow_pickle": True} if name != "heat/u" else {}))


def test_read_argument_types(tmp_path):
    path, vs = _repo(tmp_path)
    repo = vlcc.Repository(path)
    for kw in ({"rank": "0"}, {"rank": 0.0}, {"rank": True}, {"box": "0:3"}, {"box": ((0,), ("3",))},
               {"box": (0, 3)}, {"box": ((0,),)}):
        with pytest.raises(vlcc.ArgumentError, match="rank|box"):
            repo.read(vs[0], "u", **kw)
    assert repo.read(vs[0], "u", rank=np.int64(0)).shape == (100,)


_FLIP_READER = r"""
import json, os, random, sys
import numpy as np
import vlcc
path, rel, seed, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
vid = json.load(open(os.path.join(path, "expected.json")))["tags"]["v1"]
clean = {}
for name in ("md.0", "md.idx", "mmd.0"):
    p = os.path.join(path, rel, name)
    if os.path.exists(p):
        clean[name] = open(p, "rb").read()
want = vlcc.Repository(path).read(vid, "heat/u")
rng = random.Random(seed)
for t in range(n):
    name = rng.choice(sorted(clean))
    raw = bytearray(clean[name])
    pos = rng.randrange(len(raw))
    raw[pos] ^= 1 << rng.randrange(8)
    open(os.path.join(path, rel, name), "wb").write(raw)
    try:
        got = vlcc.Repository(path).read(vid, "heat/u")
        print("ok" if got.tobytes() == want.tobytes() else f"WRONG {name}@{pos}", flush=True)
    except vlcc.VlccError as exc:
        print("error", type(exc).__name__, flush=True)
    open(os.path.join(path, rel, name), "wb").write(clean[name])
"""


@pytest.mark.parametrize("fmt", ["format-v1", "format-v3-unsealed"])
def test_flipped_bp5_metadata_without_checksums_never_crashes(tmp_path, fmt):
    """Format 1 keeps no checksum of the BP5 metadata, nor does a format-3 index
    re-sealed without ``bp5``: ADIOS2 parses it in a child process first, so a
    flip is a CorruptionError (or harmless), never a segfault of the reader.
    Runs in a subprocess: a crash fails this test instead of killing pytest."""
    path = str(tmp_path / "repo")
    shutil.copytree(os.path.join(ROOT, "tests", "fixtures", fmt.replace("-unsealed", "")), path)
    vid = json.load(open(os.path.join(path, "expected.json")))["tags"]["v1"]
    if fmt.endswith("unsealed"):
        def unseal_bp5(idx):
            idx.pop("bp5", None)
            idx.pop("bp5_offsets", None)      # read through ADIOS2, not mapped
        _reseal_index(path, vid, 0, unseal_bp5)
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", _FLIP_READER, path, f"data/{vid}/r0.bp", "7", "8"],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"reader died ({r.returncode}): {r.stdout[-500:]} {r.stderr[-2000:]}"
    lines = r.stdout.split("\n")[:-1]
    assert len(lines) == 8 and not any(x.startswith("WRONG") for x in lines), lines


def test_verify_tells_removed_while_verifying_apart_from_damage(tmp_path, monkeypatch):
    """prune+gc running beside `vlcc verify`: a version whose manifest is gone
    by the time its check failed was removed, not damaged."""
    import vlcc.restore.verify as verify_mod
    path, vs = _repo(tmp_path, 3)
    real = verify_mod._check_versions

    def racing(repo, versions):
        if versions[0].id == vs[0].id:      # removed between listing and checking it
            os.remove(os.path.join(path, "versions", f"{vs[0].id}.json"))
            shutil.rmtree(os.path.join(path, "data", vs[0].id))
        return real(repo, versions)
    monkeypatch.setattr(verify_mod, "_check_versions", racing)
    res = vlcc.Repository(path).verify()
    assert res["removed"] == [vs[0].id]
    assert res["intact"] == sorted(v.id for v in vs[1:])


def test_gc_lock_of_a_reused_pid_is_stale(tmp_path):
    """A gc.lock whose holder died and whose pid now belongs to another live
    process (pid reuse): writers do not wait for it and doctor reports it."""
    from vlcc.repo import locks
    path, vs = _repo(tmp_path, 1)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        doc = dict(locks.record("gc"), pid=other.pid, start=1)     # started at another time
        with open(os.path.join(path, "locks", "gc.lock"), "w") as f:
            json.dump(doc, f)
        assert locks.dead_reason(doc) and "another process" in locks.dead_reason(doc)
        rep = vlcc.Repository(path).doctor()
        assert any(f.kind == "stale-lock" and "gc.lock" in f.path for f in rep.problems), rep
        r = _run(f"""
            import numpy as np, vlcc
            from mpi4py import MPI
            with vlcc.Checkpointer({path!r}, comm=MPI.COMM_SELF) as ck:
                ck.register("u", np.arange(100.0))
                ck.register("step", vlcc.ValueProvider(lambda: 7))
                print(ck.checkpoint().id)
        """, timeout=240)                      # waiting for a live holder would take 600 s
        assert r.returncode == 0, r.stderr[-2000:]
    finally:
        other.kill()
        other.wait()
