"""The ``vlcc`` command: inspect a repository without MPI.

    vlcc log REPO [--branch B] [--json]
    vlcc show REPO VERSION [--json]
    vlcc verify REPO [VERSION] [--json]

Each subcommand is a function ``cmd_NAME(args) -> int`` registered in
``build_parser``; errors print one line naming what and where and exit 1.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys

from .errors import VlccError
from .repo.manifest import Version
from .repo.repository import Repository


def _when(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _nbytes(v: Version) -> int:
    return sum(b["nbytes"] for p in v.providers.values() for b in p["blocks"])


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _refs_by_version(repo: Repository) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, vid in repo.branches().items():
        out.setdefault(vid, []).append(f"branch:{name}")
    for name, vid in repo.tags().items():
        out.setdefault(vid, []).append(f"tag:{name}")
    return out


def cmd_log(args) -> int:
    repo = Repository(args.repo)
    versions = repo.log(branch=args.branch)
    if args.json:
        json.dump([v.summary() | {"nbytes": _nbytes(v)} for v in versions], sys.stdout, indent=1)
        print()
        return 0
    refs = _refs_by_version(repo)
    if not versions:
        print(f"no versions in {repo.path}" + (f" on branch {args.branch}" if args.branch else ""))
    for v in versions:
        deco = f" ({', '.join(sorted(refs[v.id]))})" if v.id in refs else ""
        print(f"version {v.id}{deco}")
        print(f"  parent  {v.parent or '-'}   branch {v.branch}   step {v.step if v.step is not None else '-'}")
        print(f"  date    {_when(v.time)}   ranks {v.nranks}   size {_human(_nbytes(v))}")
        if v.message:
            print(f"  message {v.message}")
        print()
    return 0


def cmd_show(args) -> int:
    repo = Repository(args.repo)
    v = repo.resolve(args.version)
    if args.json:
        json.dump(v.manifest, sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    print(f"version  {v.id}")
    print(f"parent   {v.parent or '-'}")
    print(f"branch   {v.branch}")
    print(f"step     {v.step if v.step is not None else '-'}")
    print(f"date     {_when(v.time)}")
    print(f"ranks    {v.nranks}   hosts {', '.join(v.hosts)}")
    if v.message:
        print(f"message  {v.message}")
    if v.attrs:
        print(f"attrs    {json.dumps(v.attrs, sort_keys=True)}")
    if v.slurm:
        print(f"slurm    {json.dumps(v.slurm, sort_keys=True)}")
    print("providers:")
    for name, e in sorted(v.providers.items()):
        size = sum(b["nbytes"] for b in e["blocks"])
        if e["kind"] == "distributed":
            shape = "x".join(map(str, e["global_shape"])) or "scalar"
            desc = f"distributed {e['dtype']} {shape} in {len(e['blocks'])} blocks"
        elif e["kind"] == "array":
            desc = f"per-rank {e['dtype']} {tuple(e['shape'])}" + (" (replicated)" if e.get("replicated") else "")
        else:
            desc = "value" + (" (replicated)" if e.get("replicated") else " (per rank)")
        print(f"  {name:<32} {desc:<48} {_human(size)}")
    return 0


def cmd_verify(args) -> int:
    repo = Repository(args.repo)
    res = repo.verify(args.version)
    if args.json:
        json.dump({"ok": True} | res, sys.stdout)
        print()
    else:
        what = f"version {repo.resolve(args.version).id}" if args.version else f"{res['versions']} versions"
        print(f"ok: {what}, {res['chunks']} chunks, {_human(res['bytes'])} checked")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlcc", description="Inspect a vlcc checkpoint repository.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("log", help="list versions, newest first")
    s.add_argument("repo")
    s.add_argument("--branch", "-b", default=None, help="lineage of one branch (default: all versions)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_log)

    s = sub.add_parser("show", help="describe one version")
    s.add_argument("repo")
    s.add_argument("version", help="id, id prefix, latest, tag:NAME or branch:NAME")
    s.add_argument("--json", action="store_true", help="print the whole manifest")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("verify", help="check every checksum")
    s.add_argument("repo")
    s.add_argument("version", nargs="?", default=None, help="one version (default: all)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VlccError as exc:
        if getattr(args, "json", False):
            json.dump({"ok": False, "error": type(exc).__name__, "message": str(exc)}, sys.stdout)
            print()
        print(f"vlcc {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
