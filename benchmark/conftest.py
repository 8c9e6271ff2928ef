"""pytest hooks for the benchmark's own tests (benchmark/tests/)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "bench: runs the benchmark end to end (a few seconds; part of make test)")
