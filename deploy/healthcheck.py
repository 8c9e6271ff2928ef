"""Container / service health check: exit 0 when this worker's /healthz answers 200.

    python deploy/healthcheck.py [PORT]      (default: $PORT or 8000)

/healthz is 200 when the database and the channel layer answer, 503 otherwise
(core/views.py). The request carries a Host from ALLOWED_HOSTS and
`X-Forwarded-Proto: https`, as nginx would send it: otherwise Django would answer 400
(unknown host) or, with PARLEY_HTTPS=true, redirect to HTTPS. Standard library only.
"""

import http.client
import os
import sys


def main() -> int:
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "8000"))
    hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    host = next((h.lstrip(".") for h in hosts if h != "*"), "localhost")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz", headers={"Host": host, "X-Forwarded-Proto": "https"})
        response = conn.getresponse()
        body = response.read(500).decode(errors="replace")
    except OSError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    if response.status != 200:
        print(f"unhealthy: HTTP {response.status} {body}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
