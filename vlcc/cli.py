"""The ``vlcc`` command: inspect a repository without MPI.

    vlcc log REPO [VERSION] [--branch B] [--json] [--graph]
    vlcc show REPO [VERSION] [--json]        (alias: vlcc resolve REPO [VERSION] --id)
    vlcc verify REPO [VERSION] [--deep] [--json]
    vlcc gc REPO [--dry-run] [--grace S] [--json]
    vlcc prune REPO --keep-last N [--branch B] [--dry-run] [--json]
    vlcc du REPO [--json]
    vlcc doctor REPO [--dry-run | --repair] [--json]
    vlcc diff A B | vlcc diff REPO V1 V2 [--rtol R] [--atol T] [--providers P ...] [--json]
    vlcc export PATH[@SPEC] OUT | vlcc export REPO VERSION OUT [--providers P ...]
    vlcc replay PATH@SPEC | REPO VERSION [--branch B] -- COMMAND ...
    vlcc report REPO -o report.png

Every command that takes a version accepts both addressing styles,
``REPO VERSION`` and ``PATH@SPEC``; VERSION/SPEC is parsed by the one parser
of vlcc/repo/spec.py. Each subcommand is a function ``cmd_NAME(args) -> int``
registered in ``build_parser``; errors print one line naming what and where
and exit with one of the statuses of ``EXIT`` (the same for every command,
documented in docs/tools.md and ``vlcc --help``). The logic of
diff/export/replay/report/graph lives in vlcc/tools/. A reader that closes the
pipe (``vlcc log REPO | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys

from ._version import __version__
from .errors import (ArgumentError, CorruptionError, FormatVersionError, NotFoundError,
                     RepositoryError, VlccError)
from .repo.manifest import Version, stored_entry
from .repo.spec import FORMS
from .repository import Repository
from .units import human_bytes

# Exit statuses, the same for every command (docs/tools.md "Exit status").
EXIT_OK = 0
EXIT_NO = 1           # the command's negative answer: diff "differ", doctor "problems remain"
EXIT_USAGE = 2        # bad arguments or a malformed version spec (argparse uses 2 too)
EXIT_NOT_FOUND = 3    # no such repository, version, branch, tag or file
EXIT_CORRUPT = 4      # stored bytes or metadata fail their checksums, or are truncated
EXIT_ERROR = 5        # any other failure: storage, busy lock, newer format, missing extra, ...
EXIT = {"ok": EXIT_OK, "no": EXIT_NO, "usage": EXIT_USAGE, "not found": EXIT_NOT_FOUND,
        "corrupt": EXIT_CORRUPT, "error": EXIT_ERROR}


def exit_status(exc: BaseException) -> int:
    """The exit status for an error (``EXIT``): by class, never by message."""
    if isinstance(exc, ArgumentError):
        return EXIT_USAGE
    if isinstance(exc, CorruptionError):
        return EXIT_CORRUPT
    if isinstance(exc, FormatVersionError):
        return EXIT_ERROR
    if isinstance(exc, (NotFoundError, RepositoryError, FileNotFoundError)):
        return EXIT_NOT_FOUND
    return EXIT_ERROR


def _target(args, what: str = "version") -> tuple[Repository, str | None]:
    """The repository and version spec of ``REPO VERSION`` or ``PATH@SPEC``
    (both styles, never both at once)."""
    from .tools.spec import split_target
    path, spec = split_target(args.repo)
    version = getattr(args, "version", None)
    if spec is not None and version is not None:
        raise ArgumentError(f"{what} given twice: {args.repo!r} and {version!r} "
                            f"(use REPO VERSION or PATH@SPEC)")
    return Repository(path), spec if spec is not None else version


def _whole(args) -> str:
    """The path of a command that works on the whole repository: ``PATH@SPEC``
    is refused with a usage error rather than silently ignoring SPEC."""
    from .tools.spec import split_target
    path, spec = split_target(args.repo)
    if spec is not None:
        raise ArgumentError(f"vlcc {args.command} works on the whole repository, not on one "
                            f"version: drop '@{spec}' from {args.repo!r}")
    return path


def _when(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _nbytes(v: Version) -> int:
    from .repo.manifest import logical_bytes
    return logical_bytes(v.manifest)




def _refs_by_version(repo: Repository) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, vid in repo.branches().items():
        out.setdefault(vid, []).append(f"branch:{name}")
    for name, vid in repo.tags().items():
        out.setdefault(vid, []).append(f"tag:{name}")
    return out


def _slurm_ids(s: dict) -> str:
    """``job 12 (array 10_2)   restart 1`` from a version's SLURM lineage."""
    out = f"job {s.get('job_id', '-')}"
    if s.get("array_job_id"):
        out += f" (array {s['array_job_id']}_{s.get('array_task_id', '?')})"
    return out + f"   restart {s.get('restart_count', '0')}"


def cmd_log(args) -> int:
    repo, spec = _target(args)
    if spec is not None:   # a version and its ancestors (as `git log REV`)
        if args.branch is not None:
            raise ArgumentError("vlcc log: give a version or --branch, not both")
        versions = _lineage(repo, repo.resolve(spec))
    else:
        versions = repo.log(branch=args.branch)
    if getattr(args, "graph", False):
        from .tools.graph import graph_lines
        for line in graph_lines(versions, _refs_by_version(repo)):
            print(line)
        return 0
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
        print(f"  date    {_when(v.time)}   ranks {v.nranks}   size {human_bytes(_nbytes(v))}")
        if v.slurm:
            print(f"  slurm   {_slurm_ids(v.slurm)}")
        if v.message:
            print(f"  message {v.message}")
        print()
    return 0


def _lineage(repo: Repository, v: Version) -> list[Version]:
    out, seen = [], set()
    while v is not None and v.id not in seen:
        seen.add(v.id)
        out.append(v)
        try:
            v = repo.resolve(v.parent) if v.parent else None
        except NotFoundError:   # the rest of the lineage was pruned
            v = None
    return out


def cmd_resolve(args) -> int:
    """The id a spec names (Python ``Repository.resolve``, C ``vlcc_query``)."""
    repo, spec = _target(args)
    v = repo.resolve(spec)
    if args.json:
        json.dump({"id": v.id, "step": v.step, "branch": v.branch}, sys.stdout)
        print()
    else:
        print(v.id)
    return 0


def cmd_show(args) -> int:
    repo, spec = _target(args)
    v = repo.resolve(spec)
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
        size = stored_entry(e, v.nranks).nbytes
        if e["kind"] == "distributed":
            shape = "x".join(map(str, e["global_shape"])) or "scalar"
            desc = f"distributed {e['dtype']} {shape} in {v.nranks} blocks"
        elif e["kind"] == "array":
            desc = f"per-rank {e['dtype']} {tuple(e['shape'])}" + (" (replicated)" if e.get("replicated") else "")
        elif e["kind"] == "derived":
            desc = f"derived from {', '.join(e.get('inputs') or [])}: {json.dumps(e.get('recipe'))}"
        else:
            desc = "value" + (" (replicated)" if e.get("replicated") else " (per rank)")
        print(f"  {name:<32} {desc:<48} {'' if size is None else human_bytes(size)}")
    return 0


def _verify_with_progress(repo, spec, args) -> dict:
    from .tools import progress
    if spec is None and not args.deep and progress.wanted(args.quiet):
        res = {"versions": 0, "chunks": 0, "bytes": 0}
        ids = repo.version_ids()
        try:
            for vid in ids:
                repo.resolve(vid)
            with progress.bar("verify", len(ids), enabled=True, nbytes=False) as advance:
                for v in repo.versions():
                    for k, n in repo.verify(v).items():
                        if k == "node_local":
                            res.setdefault(k, {}).update(n)
                        else:
                            res[k] += n
                    advance(1)
        except CorruptionError:
            return repo.verify(None)       # damage: check everything, report it all
        return repo.verify(None) if _has_refs_damage(repo) else res
    return repo.verify(spec, deep=args.deep)


def _has_refs_damage(repo) -> bool:
    from .restore.verify import check_refs
    return bool(check_refs(repo))


def cmd_verify(args) -> int:
    repo, spec = _target(args)
    try:
        res = _verify_with_progress(repo, spec, args)
    except CorruptionError as exc:
        if spec is not None or not hasattr(exc, "damaged"):
            raise
        # the whole repository: name every damaged and every intact version
        for vid in exc.damaged:
            print(f"damaged: version {vid}")
        for ref in exc.damaged_refs:
            print(f"damaged: {ref}")
        for vid in exc.intact:
            print(f"intact:  version {vid}")
        raise
    if args.json:
        json.dump({"ok": True} | res, sys.stdout)
        print()
    else:
        what = f"version {repo.resolve(spec).id}" if spec is not None else f"{res['versions']} versions"
        print(f"ok: {what}, {res['chunks']} chunks, {human_bytes(res['bytes'])} checked")
        for note in res.get("node_local", {}).values():   # rebuilt after a node loss, or node-local only
            print(f"note: {note}")
        if args.deep:
            d = res["deep"]
            print(f"deep: {d['shared_hashes']} shared chunk hash(es) with {d['references']} references; "
                  f"{d['copies_read']} stored copies read, {human_bytes(d['bytes_compared'])} compared "
                  f"byte-for-byte, no collision")
    return 0


def cmd_gc(args) -> int:
    from .repo.gc import gc
    path = _whole(args)
    Repository(path)   # a clear error when REPO is not a repository
    from .tools import progress
    with progress.bar("gc", 1, enabled=progress.wanted(args.quiet), nbytes=False) as advance:
        res = gc(path, dry_run=args.dry_run, grace=args.grace, timeout=args.timeout)
        advance(1)
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(res['removed'])} file(s), {human_bytes(res['reclaimed_bytes'])}; "
          f"{res['live_versions']} live version(s)")
    if res["kept_for_references"]:
        print(f"kept data of {len(res['kept_for_references'])} pruned version(s) still referenced")
    if res.get("broken_locks"):
        print(f"broke {len(res['broken_locks'])} stale lock(s): "
              + "; ".join(f"{b['lock']} ({b['reason']})" for b in res["broken_locks"][:3])
              + (" ..." if len(res["broken_locks"]) > 3 else ""))
    if res["kept_in_flight"]:
        print(f"kept {len(res['kept_in_flight'])} uncommitted data dir(s) younger than the grace "
              f"period (a writer on another host may still live)")
    return 0


def cmd_prune(args) -> int:
    from .repo.gc import prune
    path = _whole(args)
    Repository(path)
    res = prune(path, keep_last=args.keep_last, branches=args.branch or None,
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


_DOCTOR_KIND = {"stale-lock": "stale lock", "orphan-data": "orphan data", "temp-file": "temp file",
                "local-tier": "local tier", "dangling-ref": "dangling ref", "busy": "busy",
                "node-local": "node-local"}


def cmd_doctor(args) -> int:
    repo = Repository(_whole(args))
    rep = repo.doctor(repair=args.repair, grace=args.grace, timeout=args.timeout)
    if args.json:
        json.dump(rep, sys.stdout, indent=1)
        print()
        return EXIT_OK if rep.ok else EXIT_NO
    for f in rep.findings:
        if f.kind in ("busy", "node-local"):
            state = "note"
        elif f.removed:
            state = "removed"
        elif f.error:
            state = f"NOT removed ({f.error})"
        elif not f.fixable:
            state = "report only"
        else:
            state = "would remove" if not args.repair else "remains"
        size = f", {human_bytes(f.nbytes)}" if f.nbytes else ""
        print(f"{_DOCTOR_KIND.get(f.kind, f.kind):<13} {f.path}\n    {f.detail}{size}: {state}")
    left = rep.problems
    if not rep.findings or not (left or any(f.removed for f in rep.findings)):
        print(f"no problem found in {repo.path} (no leftovers of crashed jobs)")
    elif not left:
        print(f"repaired: {sum(f.removed for f in rep.findings)} item(s) removed; no problem left")
    elif args.repair:
        print(f"{len(left)} problem(s) remain")
    else:
        fix = sum(f.fixable for f in left)
        print(f"{len(left)} problem(s) found (dry run, nothing changed); "
              f"'vlcc doctor {args.repo} --repair' removes {fix} of them")
    print(f"(doctor does not read data: 'vlcc verify {repo.path}' checks every checksum)")
    return EXIT_OK if rep.ok else EXIT_NO


def cmd_du(args) -> int:
    from .repo.gc import du
    path = _whole(args)
    Repository(path)
    res = du(path)
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'version':16} {'branch':12} {'step':>6} {'logical':>10} {'stored':>10} {'reused':>10}")
    for v in res["versions"]:
        print(f"{v['id']:16} {v['branch'][:12]:12} {str(v['step'] if v['step'] is not None else '-'):>6} "
              f"{human_bytes(v['logical_bytes']):>10} {human_bytes(v['stored_bytes']):>10} {human_bytes(v['reused_bytes']):>10}")
    print()
    for b, e in sorted(res["branches"].items()):
        print(f"branch {b}: {e['versions']} version(s), logical {human_bytes(e['logical_bytes'])}, "
              f"stored {human_bytes(e['stored_bytes'])}")
    t = res["total"]
    ratio = f"{t['dedup_ratio']:.2f}x" if t["dedup_ratio"] else "-"
    print(f"total: logical {human_bytes(t['logical_bytes'])}, stored {human_bytes(t['stored_bytes'])}, "
          f"logical/stored {ratio}")
    return 0


def cmd_diff(args) -> int:
    from .tools.diff import diff, exit_status, format_records, jsonable
    from .tools.progress import wanted
    if args.c is not None:   # the form `vlcc diff REPO V1 V2` (one repository)
        args.a, args.b = _join(args.a, args.b), _join(args.a, args.c)
    records = diff(args.a, args.b, rtol=args.rtol, atol=args.atol, providers=args.providers,
                   progress_bar=wanted(args.quiet), allow_pickle=args.allow_pickle)
    if args.json:
        json.dump({"a": args.a, "b": args.b, "rtol": args.rtol, "atol": args.atol,
                   "equal": exit_status(records) == 0, "providers": jsonable(records)}, sys.stdout,
                  indent=1)
        print()
    else:
        for line in format_records(records, args.a, args.b):
            print(line)
    return exit_status(records)


def cmd_export(args) -> int:
    from .tools.export import export
    from .tools.progress import human, wanted
    target, out = args.target, args.out
    if args.out2 is not None:   # the form `vlcc export REPO VERSION OUT`
        target, out = _join(args.target, args.out), args.out2
    res = export(target, out, providers=args.providers, force=args.force,
                 progress_bar=wanted(args.quiet), allow_pickle=args.allow_pickle)
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
    elif not args.quiet:
        print(f"exported version {res['version']} to {res['path']}: {len(res['variables'])} "
              f"variable(s), {len(res['attributes'])} attribute(s), {human(res['bytes'])}")
    return 0


def _join(repo: str, version: str) -> str:
    """``REPO VERSION`` as ``PATH@SPEC``; a REPO that already names a version is a usage error."""
    from .tools.spec import split_target
    if split_target(repo)[1] is not None:
        raise ArgumentError(f"version given twice: {repo!r} and {version!r} "
                            f"(use REPO VERSION or PATH@SPEC)")
    return f"{repo}@{version}"


def cmd_replay(args) -> int:
    from .tools.replay import run
    cmd, target = args.cmd, args.target
    if cmd[:1] != ["--"] and "--" in cmd:   # the form `vlcc replay REPO VERSION -- COMMAND`
        target, cmd = _join(target, cmd[0]), cmd[cmd.index("--"):]
        if len(args.cmd) - len(cmd) != 1:
            raise ArgumentError("vlcc replay: expected PATH@SPEC or REPO VERSION before '--'")
    cmd = cmd[1:] if cmd[:1] == ["--"] else cmd
    if not cmd:
        raise ArgumentError("vlcc replay: no COMMAND after '--'")
    return run(target, cmd, branch=args.branch)


def cmd_report(args) -> int:
    from .tools.report import report
    out = report(_whole(args), args.output)
    print(f"wrote {out}")
    return 0


EPILOG = f"""first steps (in the venv: .venv/bin/vlcc, or `source .venv/bin/activate` first):
  vlcc log runs/heat                   versions, newest first (--graph: the lineage DAG)
  vlcc show runs/heat latest           one version: providers, shapes, sizes
  vlcc show runs/heat@step:100         the same, PATH@SPEC style (every command takes both)
  vlcc verify runs/heat                check every checksum
  vlcc diff runs/a runs/b@tag:ref      compare two runs (exit 0 equal, 1 differ)

VERSION / SPEC: {FORMS}.
exit status (every command): 0 ok; 1 the command's "no" (diff: differ; doctor: problems
  remain); 2 usage error or malformed spec; 3 not found (repository, version, ref, file);
  4 corrupt (checksum or truncation); 5 any other error; replay: COMMAND's own status.
docs: README.md and docs/ of the vlcc sources (docs/tools.md for diff, export, replay, report)."""


def _pickle_flag(s: argparse.ArgumentParser) -> None:
    s.add_argument("--allow-pickle", action="store_true",
                   help="unpickle values stored as pickles (formats 1-3, or written with "
                        "allow_pickle=True): runs code chosen by the repository's writer, "
                        "so only for repositories you trust (show reads no values)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlcc", description="Inspect a vlcc checkpoint repository.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"vlcc {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("log", help="list versions, newest first")
    s.add_argument("repo", metavar="REPO", help="REPO or PATH@SPEC (a version and its ancestors)")
    s.add_argument("version", nargs="?", default=None,
                   help="only this version and its ancestors (as git log REV)")
    s.add_argument("--branch", "-b", default=None, help="lineage of one branch (default: all versions)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--graph", action="store_true", help="draw the lineage as an ASCII DAG")
    s.set_defaults(func=cmd_log)

    s = sub.add_parser("show", help="describe one version")
    s.add_argument("repo", metavar="REPO", help="REPO or PATH@SPEC")
    s.add_argument("version", nargs="?", default=None, help=f"{FORMS} (default latest)")
    s.add_argument("--json", action="store_true", help="print the whole manifest")
    _pickle_flag(s)
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("resolve", help="print the id a version spec names (Repository.resolve, "
                                       "C vlcc_query)")
    s.add_argument("repo", metavar="REPO", help="REPO or PATH@SPEC")
    s.add_argument("version", nargs="?", default=None, help=f"{FORMS} (default latest)")
    s.add_argument("--json", action="store_true", help="id, step and branch as JSON")
    s.set_defaults(func=cmd_resolve)

    s = sub.add_parser("verify", help="check every checksum")
    s.add_argument("repo", metavar="REPO", help="REPO or PATH@SPEC")
    s.add_argument("version", nargs="?", default=None, help=f"one version (default: all): {FORMS}")
    s.add_argument("--deep", action="store_true",
                   help="also read every stored copy of each shared chunk and compare bytes "
                        "(does not trust the hash for dedup identity)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("gc", help="delete data no live version references")
    s.add_argument("repo")
    s.add_argument("--dry-run", "-n", action="store_true", help="only report what would go")
    s.add_argument("--grace", type=float, default=3600.0,
                   help="when a writer lock of another host was broken by age, keep uncommitted "
                        "data dirs younger than this many seconds (default 3600); a dead "
                        "writer's data goes at once")
    s.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for in-flight checkpoints (default 60)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
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

    s = sub.add_parser("doctor", help="find (--repair: remove) stale locks, orphan data, temp files, "
                                      "dead jobs' local tiers; report dangling refs",
                       description="Find what crashed jobs left behind: stale locks (dead holders), "
                                   "data directories without manifest and without a live writer, "
                                   "temp files, node-local tiers of dead jobs ($VLCC_LOCAL_DIR or "
                                   "/dev/shm/vlcc-<uid>-*), dangling refs (reported only). Exit 1 "
                                   "while problems remain.")
    s.add_argument("repo")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--dry-run", "-n", action="store_true", help="only list (the default)")
    g.add_argument("--repair", action="store_true", help="remove what is listed (not refs)")
    s.add_argument("--grace", type=float, default=3600.0,
                   help="keep data dirs of writers presumed dead only by age this long (default 3600)")
    s.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for in-flight checkpoints before --repair gives up (default 10)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("diff", help="compare two versions (exit 0 equal, 1 differ, 2 error)",
                       description="Compare two versions provider by provider; A and B are "
                                   "PATH[@SPEC] (default latest), from one repository or two.")
    s.add_argument("a", metavar="A", help="PATH[@SPEC]")
    s.add_argument("b", metavar="B", help="PATH[@SPEC] (the reference for relative differences)")
    s.add_argument("c", metavar="V2", nargs="?", default=None,
                   help="with three arguments: REPO V1 V2, two versions of one repository")
    s.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0)")
    s.add_argument("--atol", type=float, default=0.0, help="absolute tolerance (default 0)")
    s.add_argument("--providers", "-p", nargs="+", help="names, prefixes or globs to compare")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _pickle_flag(s)
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser("export", help="write a version as a plain ADIOS2 BP5 file (or .h5, .npz)")
    s.add_argument("target", metavar="PATH[@SPEC]", help="PATH[@SPEC], or REPO followed by VERSION")
    s.add_argument("out", metavar="OUT.bp", help="OUT.bp: ADIOS2 BP5; OUT.h5: HDF5; OUT.npz: numpy "
                                                 "(other extensions are refused)")
    s.add_argument("out2", metavar="OUT", nargs="?", default=None,
                   help="with three arguments: REPO VERSION OUT")
    s.add_argument("--providers", "-p", nargs="+", help="names, prefixes or globs to export")
    s.add_argument("--force", "-f", action="store_true", help="overwrite OUT.bp")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")
    _pickle_flag(s)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("replay", help="run a command restoring a version on a new branch",
                       description="Run COMMAND with VLCC_RESTORE/VLCC_BRANCH/VLCC_REPLAY_REPO set: "
                                   "its Checkpointer on this repository restores the version on a "
                                   "new branch replay/<id> (main never moves). Exits with "
                                   "COMMAND's status.")
    s.add_argument("target", metavar="PATH@SPEC", help="PATH@SPEC, or REPO followed by VERSION")
    s.add_argument("--branch", "-b", default=None, help="branch name (default replay/<id>)")
    s.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser("report", help="PNG report: lineage, bytes per version, dedup/compression")
    s.add_argument("repo")
    s.add_argument("--output", "-o", default="report.png", help="PNG file (default report.png)")
    s.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:   # --help, or a usage error: what argparse printed must reach the reader
            sys.stdout.flush()
            raise
        try:
            rc = args.func(args)
            sys.stdout.flush()
            return rc
        except BrokenPipeError:
            raise
        except (VlccError, OSError, ImportError) as exc:
            # OSError: the file system refused something vlcc does not wrap
            # (a full disk, a vanished file); ImportError: an optional package
            # (matplotlib, h5py, ...) is missing: name its extra. One line, never a traceback.
            if isinstance(exc, ImportError) and not isinstance(exc, VlccError):
                from .errors import EXTRAS, missing
                if (exc.name or "").split(".")[0] not in EXTRAS:
                    raise
                exc = missing(exc.name, f"vlcc {args.command}", exc)
            if getattr(args, "json", False):
                json.dump({"ok": False, "error": type(exc).__name__, "message": str(exc),
                           "exit": exit_status(exc)}, sys.stdout)
                print()
            print(f"vlcc {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return exit_status(exc)
    except BrokenPipeError:
        # The reader closed the pipe (`vlcc log | head`): stop quietly, like git
        # and ls; point stdout at /dev/null so the final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141   # what a shell reports for a command ended by SIGPIPE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
