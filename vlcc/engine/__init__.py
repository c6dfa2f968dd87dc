"""The multi-level engine: memory → node-local → persistent tiers, background
flushes with bounded memory (spilling to the node-local tier), pre-faulted
capture buffers, schedule-aware eviction and prefetch.

The flusher thread runs what the commit layer gives it (commit/checkpoint.py
``flush``): with MPI at MPI_THREAD_MULTIPLE that includes the version's
collectives, on the flusher's own duplicate communicator; otherwise no MPI,
and the application's thread agrees and commits inside vlcc's collective
calls. The prefetcher never calls MPI."""
