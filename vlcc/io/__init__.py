"""Storage I/O: per-rank ADIOS2 BP5 data files."""
