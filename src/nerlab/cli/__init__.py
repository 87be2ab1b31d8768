"""The command line: every ``nerlab-*`` console script, on one option and error layer
(:mod:`nerlab.cli.options`). The top layer: nothing else in the package imports it."""
