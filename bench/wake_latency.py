"""
Wake-up latency: a request to a suspended version, to the first byte of its response, next
to the same request to a running version, in the same run.

Starts funcplane with a short idle timeout, deploys v1 (to be suspended) and v2 (the
latest, which stays running), and N times: waits until v1 is suspended (its process gone),
times one request to it, and times one request to v2.

    .venv/bin/python bench/wake_latency.py [--wakes 50]
"""

import argparse
import sys
import time

from common import api, funcplane, request, summary

CODE = 'export default {{ fetch() {{ return new Response("{marker}") }} }}'


def state(port, version):
    versions = api(port, "GET", "/api/functions/wake")["function"]["versions"]
    return next(v["state"] for v in versions if v["name"] == version)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--wakes", type=int, default=50)
    args = parser.parse_args()
    with funcplane("--idle-timeout", "0.2") as port:
        for version in ["v1", "v2"]:
            api(port, "POST", "/api/deploy/wake",
                {"runtime": "js", "code": CODE.format(marker=version), "version": version})
        woken, running = [], []
        for _ in range(args.wakes):
            deadline = time.monotonic() + 10
            while state(port, "v1") != "suspended":
                if time.monotonic() > deadline:
                    raise SystemExit("v1 was not suspended")
                time.sleep(0.02)
            status, body, head = request(port, "GET", "/", host="v1.wake.func.local")
            if (status, body) != (200, b"v1"):
                raise SystemExit(f"the woken version answered {status} {body!r}")
            woken.append(head * 1000)
            status, body, head = request(port, "GET", "/", host="wake.func.local")
            if (status, body) != (200, b"v2"):
                raise SystemExit(f"the running version answered {status} {body!r}")
            running.append(head * 1000)
        print(f"suspended -> first byte (ms): {summary(woken)}")
        print(f"running   -> first byte (ms): {summary(running)}")


if __name__ == "__main__":
    sys.exit(main())
