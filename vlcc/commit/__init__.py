"""The collective protocol: ranks agree, rank 0 commits, every rank learns the outcome."""
