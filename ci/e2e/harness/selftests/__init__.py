"""selftest.py's test classes that live apart from it (selftest.py runs them with its own):
the shared fixtures, the mirrors of names that live elsewhere, and the runner's guards."""
