"""The ``vlcc`` command's exit statuses (vlcc/cli.py EXIT, docs/tools.md "Exit
status"): the same for every command — 2 usage, 3 not found, 4 corrupt, 5 other
— and a missing optional package is one line naming its pip extra."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import vlcc
from vlcc.cli import EXIT_CORRUPT, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, main
from damage import flip

PAYLOAD = np.arange(512, dtype=np.float64) * 1.25 + 7e5


@pytest.fixture
def repo(tmp_path):
    path = str(tmp_path / "repo")
    u = PAYLOAD.copy()
    with vlcc.Checkpointer(path) as ck:
        ck.register("u", u)
        ck.checkpoint(step=1)
        ck.tag("one")
    return path


def _rc(*args) -> int:
    return main([str(a) for a in args])


def test_not_found_is_3_in_every_command(repo, tmp_path, capsys):
    gone = tmp_path / "gone"
    for args in (["log", gone], ["show", gone], ["resolve", gone], ["verify", gone],
                 ["gc", gone], ["prune", gone, "--keep-last", "1"], ["du", gone],
                 ["doctor", gone], ["diff", gone, repo], ["export", gone, tmp_path / "o.bp"],
                 ["replay", f"{gone}@latest", "--", "true"], ["report", gone, "-o", tmp_path / "r.png"],
                 ["show", repo, "tag:nope"], ["verify", f"{repo}@step:9"]):
        assert _rc(*args) == EXIT_NOT_FOUND, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, (args, err)


def test_usage_is_2(repo, tmp_path, capsys):
    for args in (["show", repo, "step:x"], ["show", f"{repo}@tag:one", "latest"],
                 ["gc", f"{repo}@latest"], ["export", repo, tmp_path / "x.txt"],
                 ["diff", repo, repo, "--atol", "-1"], ["prune", repo, "--keep-last", "0"]):
        assert _rc(*args) == EXIT_USAGE, args
    with pytest.raises(SystemExit) as e:        # argparse's own usage errors
        _rc("show")
    assert e.value.code == EXIT_USAGE
    assert not os.path.exists(tmp_path / "x.txt")


def test_corrupt_is_4(repo, tmp_path, capsys):
    vid = vlcc.Repository(repo).resolve("latest").id
    hits = []
    for d, _, files in os.walk(os.path.join(repo, "data", vid)):
        for f in files:
            p = os.path.join(d, f)
            at = open(p, "rb").read().find(PAYLOAD.tobytes()[:256])
            if at >= 0:
                hits.append((p, at))
    assert len(hits) == 1, hits
    flip(hits[0][0], hits[0][1] + 100)
    assert _rc("show", repo, "latest") == EXIT_OK           # metadata is intact
    assert _rc("verify", repo) == EXIT_CORRUPT
    assert _rc("verify", repo, "tag:one") == EXIT_CORRUPT
    assert _rc("export", f"{repo}@one", tmp_path / "o.npz") == EXIT_CORRUPT
    assert _rc("diff", repo, repo) == EXIT_CORRUPT
    assert "CorruptionError" in capsys.readouterr().err


def test_missing_optional_package_names_the_extra(repo, tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; sys.modules['h5py'] = None\n"
            "from vlcc.cli import main\n"
            "sys.exit(main(sys.argv[1:]))")
    for args, extra in ((["report", repo, "-o", str(tmp_path / "r.png")], "tools"),
                        (["export", repo, str(tmp_path / "o.h5")], "tools")):
        p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == EXIT_ERROR, p.stderr
        assert p.stderr.count("\n") == 1 and f"pip install 'vlcc[{extra}]'" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr

def test_missing_optional_package_from_python(repo, tmp_path, monkeypatch):
    from vlcc.tools.report import report
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(vlcc.MissingDependencyError, match=r"pip install 'vlcc\[tools\]'"):
        report(repo, str(tmp_path / "r.png"))
    with pytest.raises(ImportError):        # still an ImportError for code that expects one
        report(repo, str(tmp_path / "r.png"))


def test_missing_codec_package_names_the_extra(monkeypatch):
    """A version written with zstd, read where zstandard is missing: one error naming the extra."""
    from vlcc.encode import base
    monkeypatch.delitem(base._REGISTRY, "zstd", raising=False)
    monkeypatch.delitem(sys.modules, "vlcc.encode.zstd", raising=False)
    monkeypatch.setitem(sys.modules, "zstandard", None)        # not installed
    with pytest.raises(vlcc.MissingDependencyError, match=r"codec 'zstd'.*pip install 'vlcc\[compress\]'"):
        base.get_codec({"id": "zstd", "level": 3})
    with pytest.raises(vlcc.ArgumentError, match="unknown codec 'nope'"):
        base.get_codec("nope")
