"""Crash consistency under SIGKILL (Promise 1: atomic versions).

Each trial starts a checkpointing job (``mpiexec -n RANKS``, a few MiB per
rank, one version per step whose content is a function of the step), kills
the whole mpiexec process group with SIGKILL at a random moment, then checks
the repository from outside (vlcc.Repository, no MPI):

* every listed version restores bit-exact: ``read`` gives the content its step
  defines, and ``verify`` passes on it;
* every version the job reported as committed (``checkpoint()`` had returned)
  is listed: nothing committed is lost;
* the lineage of ``main`` is steps K, K-1, ..., 1 without gaps, and it holds
  every listed version: no partial version is ever listed.

The random moment: after a random number (0..4) of commits, a random extra
delay of up to ``--jitter`` seconds (about one checkpoint), so kills land in
every phase (capture, data write, fsync, manifest, ref move).

    python benchmarks/crash_trials.py --trials 100
    -> one line per trial, then `committed-intact: K/T` and a summary line

The trial engine (the job, the kill, the check) is tests/crash_harness.py,
shared with the test suite (tests/commit/test_crash.py); this file is the benchmark's
command line around it.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
# The trial engine lives with the tests (tests/crash_harness.py) so the test
# suite imports nothing from benchmarks/; the benchmark reuses it from there.
sys.path.insert(0, os.path.join(ROOT, "tests"))
from crash_harness import run_trials, summary  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--mib", type=float, default=2.0, help="MiB per rank per version")
    ap.add_argument("--jitter", type=float, default=0.1,
                    help="maximum extra delay (s) after the chosen commit")
    ap.add_argument("--keep", help="move the repositories of failed trials here")
    ap.add_argument("--no-restart", action="store_true",
                    help="skip the restart on the killed repository after each check")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(2 ** 32)
    nbytes = int(a.mib * (1 << 20))
    print(f"crash trials: {a.trials} trials, {a.ranks} ranks, {nbytes / (1 << 20):.1f} MiB per rank "
          f"per version, seed {seed}", flush=True)
    t0 = time.monotonic()
    results = run_trials(a.trials, seed, nranks=a.ranks, nbytes=nbytes, jitter=a.jitter,
                         restart=not a.no_restart, keep=a.keep,
                         echo=lambda s: print(s, flush=True))
    good = sum(1 for r in results if not r["problems"])
    print(f"committed-intact: {good}/{len(results)}")
    line, ok = summary(results)
    print(f"{line}; {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
