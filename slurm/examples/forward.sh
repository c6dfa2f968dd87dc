# Sourced by the sbatch templates in this folder (bash).
#
#   vlcc_mpirun NRANKS PROGRAM ARGS...    run PROGRAM on NRANKS ranks with the venv's
#                                         mpiexec; forward USR1/TERM from the batch shell;
#                                         returns mpiexec's exit status
#   vlcc_requeue                          requeue this job unless it is already ending
#                                         (for exit status 75: the ranks could not)
#
# Why: `#SBATCH --signal=B:USR1@N` signals the batch shell only, and bash does not
# pass signals on to its children: without a trap the ranks never see it (the
# most-reported pitfall of checkpoint-on-signal). Saving happens in the ranks at
# their next step boundary (vlcc.slurm.Preemption), never in a handler.

ROOT=${VLCC_ROOT:-$SLURM_SUBMIT_DIR}              # submit from the vlcc checkout
PY=${VLCC_PYTHON:-$ROOT/.venv/bin/python}
MPIEXEC=${VLCC_MPIEXEC:-$ROOT/.venv/bin/mpiexec}

# MPICH's hydra sees the allocation and would start its proxies with srun, as a job
# step of their own that a signal to the batch shell never reaches. On one node,
# fork them from this shell: they stay in the batch step and hydra forwards
# USR1/TERM from mpiexec to every rank. (On several nodes hydra needs srun: then
# also signal the steps, --signal=USR1@N without "B:".)
VLCC_LAUNCH=()
[ "${SLURM_JOB_NUM_NODES:-1}" = 1 ] && VLCC_LAUNCH=(-launcher fork)

_vlcc_pid= _vlcc_pending=
_vlcc_forward() {
  if [ -n "$_vlcc_pid" ]; then kill -s "$1" "$_vlcc_pid" 2>/dev/null
  else _vlcc_pending=$1; fi    # arrived before mpiexec started: send it once it runs
}
trap '_vlcc_forward USR1' USR1
trap '_vlcc_forward TERM' TERM

vlcc_mpirun() {
  local n=$1; shift
  "$MPIEXEC" "${VLCC_LAUNCH[@]}" -n "$n" "$PY" "$@" &
  _vlcc_pid=$!
  [ -n "$_vlcc_pending" ] && kill -s "$_vlcc_pending" "$_vlcc_pid"
  # `wait` returns early whenever a trapped signal arrives: wait until mpiexec is gone.
  while kill -0 "$_vlcc_pid" 2>/dev/null; do wait "$_vlcc_pid"; done
  wait "$_vlcc_pid"
}

vlcc_requeue() {
  # Only a RUNNING job: after `scancel` (which also sends SIGTERM) the job is
  # COMPLETING, and requeueing it would undo the cancel.
  case "$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null)" in
    *JobState=RUNNING*) scontrol requeue "$SLURM_JOB_ID" ;;
    *) echo "job $SLURM_JOB_ID is ending: not requeued" >&2; return 1 ;;
  esac
}
