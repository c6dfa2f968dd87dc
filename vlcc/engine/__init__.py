"""The multi-level engine: memory → node-local → persistent tiers, background
flushes with bounded memory, schedule-aware eviction and prefetch.

Background threads never call MPI: they copy, write and read files only.
Every agreement between ranks (committing flushed versions) happens in the
application's thread inside the next collective vlcc call (checkpoint, wait,
restore, close). vlcc therefore needs no more than MPI_THREAD_FUNNELED."""
