"""The ``vlcc`` command: inspect a repository without MPI.

    vlcc log REPO [--branch B] [--json]
    vlcc show REPO VERSION [--json]
    vlcc verify REPO [VERSION] [--deep] [--json]
    vlcc gc REPO [--dry-run] [--grace S] [--json]
    vlcc prune REPO --keep-last N [--branch B] [--dry-run] [--json]
    vlcc du REPO [--json]

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
from .repository import Repository


def _when(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _nbytes(v: Version) -> int:
    if "logical_bytes" in v.manifest:    # format 2
        return int(v.manifest["logical_bytes"])
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
        size = sum(b["nbytes"] for b in e["blocks"]) if "blocks" in e else None
        if e["kind"] == "distributed":
            shape = "x".join(map(str, e["global_shape"])) or "scalar"
            desc = f"distributed {e['dtype']} {shape} in {v.nranks} blocks"
        elif e["kind"] == "array":
            desc = f"per-rank {e['dtype']} {tuple(e['shape'])}" + (" (replicated)" if e.get("replicated") else "")
        elif e["kind"] == "derived":
            desc = f"derived from {', '.join(e.get('inputs') or [])}: {json.dumps(e.get('recipe'))}"
        else:
            desc = "value" + (" (replicated)" if e.get("replicated") else " (per rank)")
        print(f"  {name:<32} {desc:<48} {'' if size is None else _human(size)}")
    return 0


def cmd_verify(args) -> int:
    repo = Repository(args.repo)
    res = repo.verify(args.version, deep=args.deep)
    if args.json:
        json.dump({"ok": True} | res, sys.stdout)
        print()
    else:
        what = f"version {repo.resolve(args.version).id}" if args.version else f"{res['versions']} versions"
        print(f"ok: {what}, {res['chunks']} chunks, {_human(res['bytes'])} checked")
        if args.deep:
            d = res["deep"]
            print(f"deep: {d['shared_hashes']} shared chunk hash(es) with {d['references']} references; "
                  f"{d['copies_read']} stored copies read, {_human(d['bytes_compared'])} compared "
                  f"byte-for-byte, no collision")
    return 0


def cmd_gc(args) -> int:
    from .repo.gc import gc
    Repository(args.repo)   # a clear error when REPO is not a repository
    res = gc(args.repo, dry_run=args.dry_run, grace=args.grace, timeout=args.timeout)
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(res['removed'])} file(s), {_human(res['reclaimed_bytes'])}; "
          f"{res['live_versions']} live version(s)")
    if res["kept_for_references"]:
        print(f"kept data of {len(res['kept_for_references'])} pruned version(s) still referenced")
    if res["kept_in_flight"]:
        print(f"kept {len(res['kept_in_flight'])} uncommitted data dir(s) younger than the grace period")
    return 0


def cmd_prune(args) -> int:
    from .repo.gc import prune
    Repository(args.repo)
    res = prune(args.repo, keep_last=args.keep_last, branches=args.branch or None,
                dry_run=args.dry_run, timeout=args.timeout)
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(res['removed_versions'])} version(s), kept {len(res['kept_versions'])}; "
          f"run 'vlcc gc' to reclaim their data")
    for vid in res["removed_versions"]:
        print(f"  {vid}")
    return 0


def cmd_du(args) -> int:
    from .repo.gc import du
    Repository(args.repo)
    res = du(args.repo)
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'version':16} {'branch':12} {'step':>6} {'logical':>10} {'stored':>10} {'reused':>10}")
    for v in res["versions"]:
        print(f"{v['id']:16} {v['branch'][:12]:12} {str(v['step'] if v['step'] is not None else '-'):>6} "
              f"{_human(v['logical_bytes']):>10} {_human(v['stored_bytes']):>10} {_human(v['reused_bytes']):>10}")
    print()
    for b, e in sorted(res["branches"].items()):
        print(f"branch {b}: {e['versions']} version(s), logical {_human(e['logical_bytes'])}, "
              f"stored {_human(e['stored_bytes'])}")
    t = res["total"]
    ratio = f"{t['dedup_ratio']:.2f}x" if t["dedup_ratio"] else "-"
    print(f"total: logical {_human(t['logical_bytes'])}, stored {_human(t['stored_bytes'])}, "
          f"logical/stored {ratio}")
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
    s.add_argument("--deep", action="store_true",
                   help="also read every stored copy of each shared chunk and compare bytes "
                        "(does not trust the hash for dedup identity)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("gc", help="delete data no live version references")
    s.add_argument("repo")
    s.add_argument("--dry-run", "-n", action="store_true", help="only report what would go")
    s.add_argument("--grace", type=float, default=3600.0,
                   help="keep uncommitted data dirs younger than this many seconds (default 3600)")
    s.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for in-flight checkpoints (default 60)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_gc)

    s = sub.add_parser("prune", help="remove old versions (keep the newest N per branch and tagged ones)")
    s.add_argument("repo")
    s.add_argument("--keep-last", type=int, required=True, help="versions to keep per branch")
    s.add_argument("--branch", "-b", action="append", help="only thin this branch (repeatable)")
    s.add_argument("--dry-run", "-n", action="store_true")
    s.add_argument("--timeout", type=float, default=60.0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_prune)

    s = sub.add_parser("du", help="logical vs stored bytes per version and branch")
    s.add_argument("repo")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_du)
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
