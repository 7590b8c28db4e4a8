"""The mutation check of the money rules: a fixed list of hand-written mutants (`mutants.py`),
each applied to a copy of `src/` and run against the tests that must kill it
(`python -m tests.mutation`, or `make mutate`)."""
