"""One suite for every node-local redundancy code (engine/resilience/codes.py):
each code round-trips every loss pattern it tolerates; each scheme's stripe
layout rebuilds any tolerated set of lost nodes per group, bit-exact, from
nodes' data of unequal sizes; a loss beyond the tolerance is detected."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vlcc.engine.resilience import codes
from vlcc.errors import ArgumentError

CODES = [(codes.CopyCode, 1, 1), (codes.XorCode, 1, 1), (codes.XorCode, 4, 1),
         (codes.XorCode, 7, 1), (codes.ReedSolomonCode, 4, 2), (codes.ReedSolomonCode, 3, 3),
         (codes.ReedSolomonCode, 1, 2)]


@pytest.mark.parametrize("cls,k,m", CODES, ids=lambda x: getattr(x, "__name__", str(x)))
def test_code_rebuilds_every_tolerated_loss(cls, k, m):
    rng = np.random.default_rng(k * 10 + m)
    data = [rng.integers(0, 256, 1000, dtype=np.uint8) for _ in range(k)]
    code = cls(k, m)
    parity = code.encode(data)
    assert len(parity) == m
    shares = {i: b for i, b in enumerate(data + parity)}
    for lost in range(m + 1):
        for gone in itertools.combinations(range(k + m), lost):
            got = code.decode({i: b for i, b in shares.items() if i not in gone})
            assert all(np.array_equal(a, b) for a, b in zip(got, data)), gone
    with pytest.raises(ValueError):
        code.decode({i: b for i, b in list(shares.items())[:k - 1]})


def _simulate(scheme, sizes, lost):
    """Encode per the stripe layout, drop ``lost`` nodes, rebuild them."""
    rng = np.random.default_rng(len(sizes))
    blobs = [rng.integers(0, 256, n, dtype=np.uint8) for n in sizes]
    sts = codes.stripes(scheme, len(sizes))
    nseg = codes.segment_counts(sts, len(sizes))
    seglen = [-(-n // max(1, s)) for n, s in zip(sizes, nseg)]

    def seg(node, s, length):
        out = np.zeros(length, np.uint8)
        part = blobs[node][s * seglen[node]:(s + 1) * seglen[node]]
        out[:len(part)] = part
        return out
    held = {}                        # (stripe, q) -> parity on node st.parity[q]
    for j, st in enumerate(sts):
        L = max(seglen[n] for n, _ in st.data)
        for q, p in enumerate(codes.code_for(scheme, st.k, st.m).encode(
                [seg(n, s, L) for n, s in st.data])):
            held[(j, q)] = p
    for w in lost:
        rebuilt = np.zeros(seglen[w] * nseg[w], np.uint8)
        for j, st in enumerate(sts):
            mine = [i for i, (n, _) in enumerate(st.data) if n == w]
            if not mine:
                continue
            L = max(seglen[n] for n, _ in st.data)
            shares = {i: seg(n, s, L) for i, (n, s) in enumerate(st.data) if n not in lost}
            shares |= {st.k + q: held[(j, q)] for q, p in enumerate(st.parity) if p not in lost}
            data = codes.code_for(scheme, st.k, st.m).decode(shares)
            s = st.data[mine[0]][1]
            rebuilt[s * seglen[w]:(s + 1) * seglen[w]] = data[mine[0]][:seglen[w]]
        assert np.array_equal(rebuilt[:sizes[w]], blobs[w]), (scheme, w)


@pytest.mark.parametrize("spec,group,nnodes", [
    ("partner", None, 2), ("partner", None, 5), ("xor", 2, 2), ("xor", 3, 7), ("xor", 8, 3),
    ("rs:4+2", None, 6), ("rs:4+2", None, 13), ("rs:2+2", None, 3), ("rs:1+1", None, 4)])
def test_stripe_layout_rebuilds_tolerated_losses(spec, group, nnodes):
    scheme = codes.parse(spec, group)
    sizes = [1000 + 37 * i for i in range(nnodes)]
    for g in codes.groups(scheme, nnodes) if scheme.kind != "partner" else [[0]]:
        for lost in itertools.combinations(g, min(scheme.tolerates, len(g) - 1)):
            _simulate(scheme, sizes, list(lost))
    if scheme.kind == "partner":
        _simulate(scheme, sizes, [nnodes - 1])


def test_loss_beyond_tolerance_is_detected():
    scheme = codes.parse("xor", 3)
    sts = codes.stripes(scheme, 3)
    code = codes.code_for(scheme, 2, 1)
    with pytest.raises(ValueError):
        code.decode({0: np.zeros(4, np.uint8)})     # 2 of 3 nodes lost: one share left
    assert all(st.k == 2 and st.m == 1 for st in sts)


@pytest.mark.parametrize("bad", ["rs:0+2", "rs:4", "raid5", "rs:200+100"])
def test_bad_specs_named(bad):
    with pytest.raises(ArgumentError, match="redundancy"):
        codes.parse(bad)


def test_too_few_nodes_named():
    with pytest.raises(ArgumentError, match="at least 3 nodes"):
        codes.stripes(codes.parse("rs:4+2"), 2)


def test_c_options_and_veloc_keys_map_to_the_same_settings(tmp_path):
    from vlcc.capi import options, veloc
    opts = options.INIT.parse_string("mode=async;local_dir=/x;redundancy=rs:4+2;persist=never")
    assert opts["redundancy"] == "rs:4+2" and opts["persist"] == "never"
    ini = tmp_path / "veloc.cfg"
    ini.write_text("persistent = /p\nscratch = /s\nmode = async\nec_interval = 0\n"
                   "persistent_interval = -1\ngroup_size = 4\n")
    kw = veloc.redundancy_options(veloc.parse_config(str(ini)))
    assert kw == {"redundancy": "xor", "group_size": 4, "persist": "never"}
    ini.write_text("persistent = /p\nec_interval = -1\npersistent_interval = 30\n")
    assert veloc.redundancy_options(veloc.parse_config(str(ini))) == {"redundancy": "none",
                                                                      "persist": 30.0}
    from vlcc.engine.config import EngineConfig
    cfg = EngineConfig.resolve("async", None, str(tmp_path), "rs:4+2", None, "never")
    assert cfg.redundancy.spec == "rs:4+2" and cfg.persist is None and cfg.node_local
    with pytest.raises(ArgumentError, match="mode='async'"):
        EngineConfig.resolve("sync", None, str(tmp_path), "xor", None, None)


def test_node_stores_default_to_a_base_that_outlives_the_job(monkeypatch):
    import os
    from vlcc.engine.config import EngineConfig
    monkeypatch.delenv("VLCC_LOCAL_DIR", raising=False)
    cfg = EngineConfig.resolve("async", None, None, "xor", None, None)
    assert cfg.node_local and not cfg.local_explicit
    assert os.path.basename(cfg.local_dir) == f"vlcc-{os.getuid()}-nodes"
    with pytest.raises(ArgumentError, match="node-local tier"):
        EngineConfig.resolve("async", None, "none", "partner", None, None)
