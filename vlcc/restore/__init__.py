"""Restore: resolve a version, plan which chunks this rank needs (N→M), read,
verify and scatter them into the providers."""
