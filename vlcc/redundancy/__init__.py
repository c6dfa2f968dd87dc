"""Redundancy: content hashes of chunks (integrity and, later, dedup)."""
