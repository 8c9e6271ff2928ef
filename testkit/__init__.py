"""Real processes for the tests and the benchmark: the one place that starts servers.

- testkit.servers: free ports, a clean environment, `manage.py` commands, any server
  process (started, waited for, stopped with SIGTERM then SIGKILL, its log kept), and
  uvicorn workers of Parley with the `make run` flags, one or N at a time.
- testkit.testdb: the environment of workers on pytest-django's test database (needs
  Django's settings: for tests only).
- testkit.nginx: deploy/nginx.conf run in front of workers.
- testkit.faults: a private redis-server and a pausable TCP proxy, to break things.
- testkit.inprocess: Parley under uvicorn.Server in the test process (tests only).

A top-level package, not chat/tests/: the benchmark (`python -m benchmark.run`, no Django
settings, no pytest) and deploy/tests use it too, and servers.py imports only the
standard library.
"""
