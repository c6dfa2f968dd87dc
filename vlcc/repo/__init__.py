"""The repository: on-disk format (docs/format.md), versions, refs and lineage."""
