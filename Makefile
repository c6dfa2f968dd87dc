# vlcc: one-command set-up, demo and tests on a fresh machine (no MPI, no venv needed beforehand).
SHELL    := /bin/bash
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
PY       := $(BIN)/python
MPIEXEC  := $(BIN)/mpiexec
STAMP    := $(VENV)/.setup-stamp
CORE_STAMP := $(VENV)/.core-stamp
# A hang in an MPI test must fail the run, not block it.
MPI_TIMEOUT ?= 1200
PYTEST_ARGS ?=

.PHONY: setup setup-core setup-mpi-toolchain setup-adjoint setup-torch setup-slurm demo test test-serial test-mpi bench clean distclean fortran

# Two set-up levels. setup-core (what `make demo` needs): a venv with the PyPI mpich wheel
# (libmpi, mpicc, mpiexec), mpi4py and vlcc with its required dependencies only; writes
# nothing outside .venv (~40 s and ~400 MB on a fresh machine). setup (what `make test`
# needs): core plus every extra, torch/deepspeed, pyrevolve, gfortran/libmpich-dev/slurm
# from Debian (root) and libvlcc.
setup-core: $(CORE_STAMP)

$(CORE_STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	# MPI from PyPI: the mpich wheel ships libmpi, mpicc and mpiexec; mpi4py's wheel loads it.
	# One pip call (one resolver run) for MPI and vlcc's required dependencies.
	$(BIN)/pip install -q --disable-pip-version-check mpich mpi4py -e .
	@touch $@

setup: $(STAMP)

$(STAMP): $(CORE_STAMP) pyproject.toml Makefile
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench,compress,adjoint,tools,release,resilience]'
	@$(MAKE) --no-print-directory fortran
	@$(MAKE) --no-print-directory setup-mpi-toolchain setup-adjoint setup-torch setup-slurm
	# libvlcc (cffi embedding) + the Fortran module, into vlcc/_lib/
	$(PY) bindings/build_libvlcc.py --if-stale
	@touch $(STAMP)

# gfortran comes from Debian (the C/Fortran bindings need it); only root can install it.
fortran:
	@if command -v gfortran >/dev/null 2>&1; then \
	  echo "gfortran: $$(command -v gfortran)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "vlcc setup: apt-get install gfortran (system packages)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gfortran >/dev/null) \
	    || echo "warning: apt-get install gfortran failed; Fortran examples will not build"; \
	else \
	  echo "note: gfortran missing and not root (or no apt-get): install gfortran yourself for the Fortran bindings"; \
	fi

# Feature-area set-up steps (each owned by one area; each must be idempotent and quiet).
# MPI toolchain for C and Fortran programs (`use mpi`, `use mpi_f08`): the PyPI mpich wheel has no
# Fortran bindings, Debian's libmpich-dev has (30 s of apt-get, against 18 min measured here for
# building mpi4py from source against it). One alias libmpi.so.12 -> libmpich.so.12 lets
# mpi4py's wheel bind to the MPI such a program linked: one MPI per process (docs/capi.md).
# That alias is written into a system library folder: vlcc.capi.build.toolchain prints the path
# before it writes it, and docs/capi.md says how to undo it.
MPI_TOOLCHAIN_STAMP := $(VENV)/.mpi-toolchain-stamp
setup-mpi-toolchain: $(MPI_TOOLCHAIN_STAMP)

$(MPI_TOOLCHAIN_STAMP):
	@if command -v mpifort >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "vlcc setup: apt-get install libmpich-dev (system packages)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmpich-dev >/dev/null) \
	    || echo "warning: apt-get install libmpich-dev failed; 'use mpi' Fortran programs will not build"; \
	else \
	  echo "note: no mpifort and not root (or no apt-get): install your MPI's Fortran compiler wrapper for 'use mpi'"; \
	fi
	@if command -v mpifort >/dev/null 2>&1; then \
	  $(PY) -m vlcc.capi.build.toolchain --install-alias && touch $@; fi

# Adjoint (vlcc.adjoint): checkpoint-schedules comes with the `adjoint` extra; pyrevolve, the
# peer of benchmarks/bench_adjoint.py, compiles C++ (20 s CPU, minutes on a loaded machine):
# installed here once, from PyPI, behind a stamp.
ADJOINT_STAMP := $(VENV)/.adjoint-stamp
setup-adjoint: $(ADJOINT_STAMP)

$(ADJOINT_STAMP):
	$(BIN)/pip install -q 'checkpoint-schedules>=1.0' 'pyrevolve==2.2.8'
	@touch $@

# torch + deepspeed (the `torch` extra), pinned; the stamp makes a second run instant. On a
# machine without a GPU DeepSpeed JIT-builds its CPU shared-memory comm op at the first
# deepspeed.initialize (minutes): build it here, once, so tests do not pay for it.
TORCH_STAMP := $(VENV)/.torch-stamp
setup-torch: $(TORCH_STAMP)

$(TORCH_STAMP):
	$(BIN)/pip install -q 'torch==2.14.1' 'deepspeed==0.19.8'
	@DS_ACCELERATOR=cpu $(PY) -c "from deepspeed.comm.torch import build_shm_op; build_shm_op()" \
	  >/dev/null 2>&1 || echo "note: DeepSpeed's CPU comm op was not prebuilt (it is built at first use)"
	@touch $@

# slurm-wlm + munge from Debian for the real single-node cluster (slurm/local/cluster.sh); root only.
setup-slurm:
	@if command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then \
	  true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "vlcc setup: apt-get install slurm-wlm munge (system packages)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null) \
	    || echo "warning: apt-get install slurm-wlm munge failed; SLURM tests will skip"; \
	else \
	  echo "note: slurm-wlm/munge missing and not root (or no apt-get): SLURM tests will skip"; \
	fi

# The demo needs only the core; it keeps its repository in runs/demo/heat for the
# commands it prints at the end (.venv/bin/vlcc log runs/demo/heat, ...).
demo: $(CORE_STAMP)
	$(PY) examples/heat/run_demo.py --workdir runs/demo

test: setup test-serial test-mpi

# pytest exit code 5 means "no tests collected": not a failure.
test-serial: setup
	$(PY) -m pytest -q -rs --durations=15 --with-mpi $(PYTEST_ARGS) || [ $$? -eq 5 ]

# faulthandler_timeout: a test still running after 300 s prints every thread's
# stack on every rank (a hang says where it is before MPI_TIMEOUT kills it).
test-mpi: setup
	for n in 2 3; do \
	  echo "== MPI tests on $$n ranks"; \
	  timeout --signal=KILL $(MPI_TIMEOUT) $(MPIEXEC) -n $$n $(PY) -m pytest -q --with-mpi --only-mpi -p no:cacheprovider -o faulthandler_timeout=300 $(PYTEST_ARGS) \
	    || { rc=$$?; [ $$rc -eq 5 ] || { echo "MPI tests on $$n ranks failed (rc=$$rc)"; exit $$rc; }; }; \
	done

bench: setup
	$(MPIEXEC) -n 2 $(PY) benchmarks/bench_io.py

clean:
	rm -rf build .pytest_cache runs
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
