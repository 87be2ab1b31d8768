"""The benchmark suite (`make bench`, ``python -m benchmarks``): see ``__main__.py``."""
