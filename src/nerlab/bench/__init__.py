"""The benchmark suite (`make bench`, ``python -m nerlab.bench``): see ``__main__.py``."""
