"""The one option parser of the C ABI (vlcc/capi/options.py): vlcc_init's and
vlcc_adjoint_begin's option strings and VeloC's configuration file, one spelling
of true/false, errors naming the key (and file:line)."""

import pytest

from vlcc.capi import codes as C
from vlcc.capi import options
from vlcc.capi.codes import CapiError


@pytest.mark.parametrize("word,value", [(w, True) for w in options.TRUE]
                         + [(w, False) for w in options.FALSE] + [("YES", True), ("Off", False)])
@pytest.mark.parametrize("table,key", [(options.INIT, "create"), (options.ADJOINT, "keep"),
                                       (options.ADJOINT, "prefetch")])
def test_one_spelling_of_true_and_false(table, key, word, value):
    assert table.parse_string(f"{key}={word}") == {key: value}


@pytest.mark.parametrize("table,key", [(options.INIT, "create"), (options.ADJOINT, "keep")])
def test_other_booleans_are_refused(table, key):
    with pytest.raises(CapiError) as ei:
        table.parse_string(f"{key}=2")
    assert ei.value.code == C.EINVAL and f"{key}='2'" in str(ei.value)


def test_option_strings():
    assert options.INIT.parse_string(" branch = b ; chunk_size=4096, mode=async") == \
        {"branch": "b", "chunk_size": 4096, "mode": "async"}
    assert options.ADJOINT.parse_string("ram=3;disk=2;period=5") == {"ram": 3, "disk": 2, "period": 5}
    assert options.INIT.parse_string(None) == {}
    for s, words in [("colour=blue", ["unknown option 'colour'", "known: branch"]),
                     ("chunk_size=big", ["chunk_size='big' is not an integer"]),
                     ("mode=fast", ["mode='fast'", "sync or async"]),
                     ("memory_budget=lots", ["memory_budget='lots'"]),
                     ("branch", ["'branch' is not key=value"])]:
        with pytest.raises(CapiError) as ei:
            options.INIT.parse_string(s)
        assert ei.value.code == C.EINVAL and all(w in str(ei.value) for w in words), str(ei.value)


def test_veloc_file_names_file_and_line(tmp_path):
    f = tmp_path / "veloc.cfg"
    f.write_text("[veloc]\n# comment\npersistent = /p\nscratch=/s\nmax_versions = 3\nmode = async\n"
                 "chunk_size = 65536\n")
    assert options.VELOC.parse_file(str(f)) == {"persistent": "/p", "scratch": "/s",
                                                 "mode": "async", "chunk_size": 65536}
    f.write_text("persistent = /p\n\ncolour = blue\n")
    with pytest.raises(CapiError, match=rf"{f}:3: unknown configuration key 'colour'.*ignored: "):
        options.VELOC.parse_file(str(f))
    f.write_text("persistent = /p\nchunk_size = x\n")
    with pytest.raises(CapiError, match=rf"{f}:2: configuration key chunk_size='x' is not an integer"):
        options.VELOC.parse_file(str(f))


def test_a_key_is_added_in_one_line():
    t = options.Table("option", [options.Option("mode", options.choice("sync", "async"))])
    t.add(options.Option("redundancy", options.choice("none", "partner", "xor")))
    assert t.parse_string("mode=sync;redundancy=xor") == {"mode": "sync", "redundancy": "xor"}
    with pytest.raises(ValueError):
        t.add(options.Option("mode"))
