"""The one parser of the C ABI's options: ``vlcc_init``'s and
``vlcc_adjoint_begin``'s option strings (``"k=v;k2=v2"``, ``,`` also separates)
and VeloC's INI configuration file (``key = value`` lines).

Each API declares its keys in a :class:`Table` (key → converter → keyword); an
extension adds a key with ``TABLE.add(Option(...))`` and nothing else. One
spelling of true/false everywhere: ``1/true/yes/on`` and ``0/false/no/off``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from . import codes as C
from .codes import CapiError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")

Where = str           # "" for an option string, "path:line: " for a configuration file


class _Bad(Exception):
    """A value a converter refuses: the message says what is expected."""


def text(v: str) -> str:
    return v


def boolean(v: str) -> bool:
    low = v.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise _Bad(f"use one of {'/'.join(TRUE)} or {'/'.join(FALSE)}")


def integer(v: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise _Bad("is not an integer") from None


def nbytes(v: str) -> str:
    """A byte count (``"512MiB"``); kept as given, checked now."""
    from ..engine.config import parse_bytes
    try:
        parse_bytes(v, "value")
    except Exception as exc:       # noqa: BLE001 - any refusal is a bad value
        raise _Bad(str(exc)) from None
    return v


def choice(*allowed: str) -> Callable[[str], str]:
    def conv(v: str) -> str:
        if v not in allowed:
            raise _Bad(f"use {' or '.join(allowed)}")
        return v
    return conv


@dataclass(frozen=True)
class Option:
    key: str
    convert: Callable[[str], Any] = text
    dest: str | None = None        # the keyword it becomes (default: the key)


class Table:
    """The keys one API accepts (``what`` names them in errors: "option",
    "adjoint option", "configuration key"); ``ignored`` keys are accepted and
    dropped (VeloC settings without meaning for vlcc)."""

    def __init__(self, what: str, options: Iterable[Option], ignored: Iterable[str] = ()):
        self.what = what
        self.options = {o.key: o for o in options}
        self.ignored = frozenset(ignored)

    def add(self, option: Option) -> None:
        if option.key in self.options:
            raise ValueError(f"{self.what} {option.key!r} is declared twice")
        self.options[option.key] = option

    def parse(self, pairs: Iterable[tuple[Where, str, str]]) -> dict:
        out: dict = {}
        for where, k, v in pairs:
            o = self.options.get(k)
            if o is None:
                if k in self.ignored:
                    continue
                known = f" (known: {', '.join(self.options)}"
                known += f"; ignored: {', '.join(sorted(self.ignored))})" if self.ignored else ")"
                raise CapiError(C.EINVAL, f"{where}unknown {self.what} {k!r}{known}")
            try:
                out[o.dest or o.key] = o.convert(v)
            except _Bad as exc:
                sep = " " if str(exc).startswith("is ") else ": "
                raise CapiError(C.EINVAL, f"{where}{self.what} {k}={v!r}{sep}{exc}") from None
        return out

    def parse_string(self, s: str | None) -> dict:
        return self.parse(split(s, self.what))

    def parse_file(self, path: str) -> dict:
        return self.parse(ini_lines(path))


def split(s: str | None, what: str = "option") -> Iterator[tuple[Where, str, str]]:
    """``"k=v;k2=v2"`` (``,`` also separates) → ``("", key, value)``, stripped."""
    for part in (s or "").replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise CapiError(C.EINVAL, f"{what} {part!r} is not key=value")
        k, v = (x.strip() for x in part.split("=", 1))
        yield "", k, v


def ini_lines(path: str) -> Iterator[tuple[Where, str, str]]:
    """An INI file's ``key = value`` lines → ``("path:line: ", key, value)``;
    sections, comments (``#``, ``;``) and blank lines are skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise CapiError(C.EINVAL, f"cannot read configuration file {path!r}: "
                                  f"{exc.strerror or exc}") from None
    for i, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith(";") or (line.startswith("[") and line.endswith("]")):
            continue
        if "=" not in line:
            raise CapiError(C.EINVAL, f"{path}:{i}: expected 'key = value', got {raw.strip()!r}")
        k, v = (x.strip() for x in line.split("=", 1))
        yield f"{path}:{i}: ", k, v


# -- the tables ---------------------------------------------------------------------------
MODE = choice("sync", "async")

#: vlcc_init(path, comm, options) → Checkpointer keywords
INIT = Table("option", [
    Option("branch"), Option("chunk_size", integer), Option("mode", MODE),
    Option("local_dir"),                     # "none" disables the node-local tier
    Option("memory_budget", nbytes), Option("create", boolean),
    # the node-local tier's protection (engine/resilience/; checked by the Checkpointer)
    Option("redundancy"), Option("group_size", integer), Option("persist")])

#: vlcc_adjoint_begin(schedule, n_steps, options) → Adjoint keywords
ADJOINT = Table("adjoint option", [
    Option("ram", integer), Option("disk", integer), Option("period", integer),
    Option("keep", boolean), Option("prefetch", boolean)])

#: VELOC_Init's INI file: ``persistent`` is the repository, ``scratch`` the node-local tier
VELOC = Table("configuration key", [
    Option("persistent"), Option("scratch"), Option("mode", MODE),
    Option("memory_budget"), Option("chunk_size", integer),
    # → redundancy / persist (capi/veloc.py redundancy_options, docs/capi.md)
    Option("ec_interval", integer), Option("persistent_interval", integer),
    Option("redundancy"), Option("group_size", integer)],
    ignored={"watchdog_interval", "max_versions",
             "scratch_versions", "failure_domain", "axl_type", "chksum", "meta", "threaded",
             "aggregated", "backend_dir", "lazy"})
