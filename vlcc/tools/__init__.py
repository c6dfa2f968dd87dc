"""Tools for people, built on the public API (``vlcc.Repository``):

* ``spec``     — ``PATH[@SPEC]`` targets shared by every command
* ``diff``     — compare two versions provider by provider, streamed slab by slab
* ``compare``  — ``Checkpointer(compare_to=...)``: each checkpoint against a reference run
* ``export``   — a version as a plain ADIOS2 BP5 file (no vlcc needed to read it)
* ``replay``   — run a command restoring a version on a new branch ``replay/<id>``
* ``graph``    — ``vlcc log --graph``: the version DAG in ASCII
* ``report``   — a PNG: lineage, bytes per version, dedup and compression ratios
* ``progress`` — progress bars on stderr (rich), human sizes

Heavy imports (rich, matplotlib, adios2) happen inside the functions that
need them, so ``import vlcc`` stays fast.
"""
