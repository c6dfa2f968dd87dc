"""Build libvlcc (cffi embedding mode), its Fortran module and its pkg-config file.

Outputs go to ``vlcc/_lib/`` inside the installed package (or ``--outdir``):

    lib/libvlcc.so          the C ABI of include/vlcc.h (and include/veloc.h)
    lib/libvlccf.so         the Fortran module's procedures (links libvlcc)
    include/vlcc.h veloc.h  the headers
    fortran/vlcc.mod        the Fortran module (built with this machine's gfortran)
    pkgconfig/vlcc.pc

The library starts Python as the interpreter that built it (``sys.executable``,
a venv's python included) and adds that interpreter's site-packages, so a linked
program needs no environment variables. It links libpython and the MPI library
that mpi4py uses (the one ``mpicc`` next to this interpreter links) with rpaths.

Run ``python bindings/build_libvlcc.py`` or ``vlcc-config --build``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent.parent   # .../vlcc
ROOT = PKG.parent                                     # source tree (editable install)
DEFAULT_OUT = PKG / "_lib"

def _py_decls() -> str:
    """The Python functions libvlcc calls: each API module declares its own."""
    from .. import adjoint, core, veloc
    return core.DECLS + veloc.DECLS + adjoint.DECLS


_C_DECLS = """
void _vlcc_set_ready(int r);
void _vlcc_set_error(const char *msg);
"""

_INIT_CODE = r'''
import sys
if not getattr(sys, "argv", None):
    sys.argv = ["libvlcc"]
import site as _site
for _p in %(sitedirs)r:
    if _p not in sys.path:
        _site.addsitedir(_p)
from _libvlcc import ffi, lib

@ffi.def_extern(name="_vlcc_py_boot")
def _boot():
    return 0

try:
    from vlcc.capi import binding as _binding
    _binding.bind(ffi, lib)
    lib._vlcc_set_ready(1)
except BaseException:
    import traceback as _tb
    lib._vlcc_set_error(("VLCC_EINIT: libvlcc could not import vlcc's Python side "
                         "(python %%s, sys.path %%r)\n%%s" %% (sys.version.split()[0], sys.path,
                         _tb.format_exc())).encode("utf-8", "replace"))
'''


def sources() -> dict[str, Path]:
    """Where the C/Fortran sources and headers are: the source tree (editable install), else
    the copy a wheel ships in vlcc/_csrc/ (so ``vlcc-config --build`` works after pip install)."""
    for base in (ROOT, PKG / "_csrc"):
        s = {"include": base / "include", "bindings": base / "bindings"}
        if all(p.is_dir() for p in s.values()):
            return s
    raise FileNotFoundError(f"libvlcc sources not found in {ROOT} nor {PKG / '_csrc'}: "
                            f"reinstall vlcc (pip install vlcc) or build from a source tree")


def find_tool(name: str) -> str:
    """A tool next to this interpreter (venv bin) first, then on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def mpi_flags() -> dict[str, list[str]]:
    """Include/library dirs and libraries from ``mpicc -show`` (the MPI mpi4py uses; a
    cluster's: ``VLCC_CC=mpicc``)."""
    out = subprocess.run([os.environ.get("VLCC_CC") or find_tool("mpicc"), "-show"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    f = {"include_dirs": [], "library_dirs": [], "libraries": [], "rpath": []}
    toks = shlex.split(out)
    for i, t in enumerate(toks):
        if t.startswith("-I"):
            f["include_dirs"].append(t[2:])
        elif t.startswith("-L"):
            f["library_dirs"].append(t[2:])
        elif t.startswith("-l"):
            f["libraries"].append(t[2:])
        elif t.startswith("-Wl,-rpath,"):
            f["rpath"].append(t[len("-Wl,-rpath,"):])
        elif t == "-Wl,-rpath" and i + 1 < len(toks) and toks[i + 1].startswith("-Wl,"):
            f["rpath"].append(toks[i + 1][4:])
    f["rpath"] = f["rpath"] or list(f["library_dirs"])
    return f


def site_dirs() -> list[str]:
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    # An editable install maps vlcc through a .pth or finder; put the tree itself too.
    dirs.append(str(ROOT))
    return [d for d in dirs if os.path.isdir(d)]


def build_c(out: Path, tmp: Path, verbose: bool = False) -> Path:
    import cffi
    src = sources()
    mpi = mpi_flags()
    ffi = cffi.FFI()
    py_decls = _py_decls()
    ffi.embedding_api(py_decls)
    ffi.cdef(_C_DECLS)
    c_text = (src["bindings"] / "libvlcc.c").read_text()
    veloc = src["bindings"] / "veloc.c"
    if veloc.exists():
        c_text += "\n" + veloc.read_text()
    adjoint = src["bindings"] / "adjoint.c"       # the adjoint API block (vlcc/capi/adjoint.py)
    if adjoint.exists():
        c_text += "\n" + adjoint.read_text()
    libdir = sysconfig.get_config_var("LIBDIR")
    rpaths = [str(out / "lib")] + mpi["rpath"] + ([libdir] if libdir else [])
    ffi.set_source(
        "_libvlcc",
        "#include <stdint.h>\n" + py_decls + _C_DECLS + c_text,
        include_dirs=[str(src["include"])] + mpi["include_dirs"],
        library_dirs=mpi["library_dirs"],
        libraries=mpi["libraries"] or ["mpi"],
        define_macros=[("VLCC_PYTHON_EXE", '"%s"' % sys.executable.replace("\\", "\\\\"))],
        extra_compile_args=["-O2", "-Wno-unused-function"],
        extra_link_args=[f"-Wl,-rpath,{r}" for r in rpaths] + ["-Wl,-soname,libvlcc.so"],
    )
    ffi.embedding_init_code(_INIT_CODE % {"sitedirs": site_dirs()})
    built = ffi.compile(tmpdir=str(tmp), target="libvlcc.*", verbose=verbose)
    return Path(built)


def fortran_source() -> Path:
    return sources()["bindings"] / "fortran" / "vlcc.f90.in"


def render_fortran(dest: Path) -> Path:
    """Write the Fortran module source (bindings/fortran/generate.py expands the
    per-type/rank procedures of vlcc.f90.in) to ``dest``."""
    import importlib.util
    gen = sources()["bindings"] / "fortran" / "generate.py"
    spec = importlib.util.spec_from_file_location("vlcc_fortran_generate", gen)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    dest.write_text(mod.render(fortran_source()))
    return dest


def build_fortran(out: Path, tmp: Path, fc: str | None = None) -> Path | None:
    if not fortran_source().exists():
        return None
    src = render_fortran(tmp / "vlcc.f90")
    # VLCC_FC (a cluster's mpifort) builds the module with the compiler programs will use.
    fc = fc or os.environ.get("VLCC_FC") or os.environ.get("FC") or shutil.which("gfortran")
    if not fc:
        raise FileNotFoundError("gfortran not found (make setup installs it): cannot build the "
                                "Fortran module")
    moddir = tmp / "fortran"
    moddir.mkdir(exist_ok=True)
    lib = tmp / "libvlccf.so"
    cmd = [fc, "-O2", "-fPIC", "-shared", "-J", str(moddir), str(src), "-o", str(lib),
           f"-L{tmp}", "-lvlcc", f"-Wl,-rpath,{out / 'lib'}", "-Wl,-soname,libvlccf.so"]
    subprocess.run(cmd, check=True, timeout=300, cwd=tmp)
    return lib


def pc_text(out: Path) -> str:
    from ..._version import __version__
    return (f"prefix={out}\nlibdir=${{prefix}}/lib\nincludedir=${{prefix}}/include\n\n"
            f"Name: vlcc\nDescription: Versioned Lineage-driven Checkpointing of Composable States "
            f"(C ABI)\nVersion: {__version__}\n"
            f"Cflags: -I${{includedir}}\nLibs: -L${{libdir}} -Wl,-rpath,${{libdir}} -lvlcc\n")


def build(out: Path = DEFAULT_OUT, fortran: bool = True, verbose: bool = False) -> Path:
    """Build everything into ``out``; files are replaced atomically (safe while other
    processes run programs linked to an older build)."""
    out = Path(out).resolve()
    src = sources()
    for d in ("lib", "include", "fortran", "pkgconfig"):
        (out / d).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vlcc-build-") as t:
        tmp = Path(t)
        so = build_c(out, tmp, verbose)
        shutil.copy2(so, tmp / "libvlcc.so") if so.name != "libvlcc.so" else None
        flib = build_fortran(out, tmp) if fortran else None

        def put(path: Path, dest: Path):
            part = dest.with_name(dest.name + f".tmp{os.getpid()}")
            shutil.copy2(path, part)
            os.replace(part, dest)
        put(tmp / "libvlcc.so", out / "lib" / "libvlcc.so")
        if flib is not None:
            put(flib, out / "lib" / "libvlccf.so")
            for m in (tmp / "fortran").glob("*.mod"):
                put(m, out / "fortran" / m.name)
        for h in src["include"].glob("*.h"):
            put(h, out / "include" / h.name)
        if (tmp / "vlcc.f90").exists():
            put(tmp / "vlcc.f90", out / "fortran" / "vlcc.f90")   # the rendered module source
        pc = tmp / "vlcc.pc"
        pc.write_text(pc_text(out))
        put(pc, out / "pkgconfig" / "vlcc.pc")
    return out


API_MODULES = ("core.py", "veloc.py", "adjoint.py", "binding.py")


def inputs() -> list[Path]:
    src = sources()
    files = [Path(__file__)] + [PKG / "capi" / f for f in API_MODULES]
    files += sorted(src["include"].glob("*.h"))
    files += sorted(src["bindings"].glob("*.c")) + sorted((src["bindings"] / "fortran").glob("*.f90*"))
    files += sorted((src["bindings"] / "fortran").glob("*.py"))
    return files


def is_stale(out: Path = DEFAULT_OUT, fortran: bool = True) -> bool:
    need = [out / "lib" / "libvlcc.so", out / "pkgconfig" / "vlcc.pc"]
    if fortran and fortran_source().exists():
        need += [out / "lib" / "libvlccf.so", out / "fortran" / "vlcc.mod"]
    if not all(p.exists() for p in need):
        return True
    # The Python sides are read at run time; only the C text (and the build) counts.
    newest_in = max(p.stat().st_mtime for p in inputs()
                    if p.exists() and p.name not in API_MODULES)
    return newest_in > min(p.stat().st_mtime for p in need)


def ensure_built(out: Path = DEFAULT_OUT, fortran: bool = True) -> Path:
    """Build when an output is missing or older than a source; return the output dir."""
    if is_stale(out, fortran):
        build(out, fortran)
    return Path(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="build libvlcc (cffi embedding), the Fortran "
                                             "module and vlcc.pc")
    ap.add_argument("--outdir", default=str(DEFAULT_OUT))
    ap.add_argument("--no-fortran", action="store_true")
    ap.add_argument("--if-stale", action="store_true", help="build only when sources changed")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    out = Path(a.outdir)
    if a.if_stale and not is_stale(out, not a.no_fortran):
        print(f"libvlcc is up to date in {out}")
        return 0
    build(out, fortran=not a.no_fortran, verbose=a.verbose)
    print(f"built libvlcc into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
