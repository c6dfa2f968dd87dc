"""Layout: how a provider's bytes are cut into chunks and how blocks of a
distributed array map between decompositions (N→M)."""
