"""Numba kernels (layout and redundancy). Each kernel has a pure-numpy
reference next to it in the tests; kernels compile lazily on first use and are
cached on disk (``cache=True``)."""
