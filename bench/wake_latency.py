"""
Wake-up latency: a request to a suspended (killed) version and to a frozen (SIGSTOPped)
one, to the first byte of the response, next to the same request to a running version, in
the same run.

For each tier, starts funcplane so that idle versions reach that tier quickly (killed:
--idle-timeout 0.2 and no freezing; frozen: --freeze-after 0.2 and a long idle timeout),
deploys v1 (to go idle) and v2 (the latest, which stays running), and N times: waits
until v1 reads suspended or frozen, times one request to it, and times one to v2.

    .venv/bin/python bench/wake_latency.py [--wakes 50] [--tier killed|frozen|both]
"""

import argparse
import sys
import time

from common import api, funcplane, request, summary

CODE = 'export default {{ fetch() {{ return new Response("{marker}") }} }}'
TIERS = {
    "killed": ("suspended", ["--idle-timeout", "0.2", "--freeze-after", "0"]),
    "frozen": ("frozen", ["--idle-timeout", "3600", "--freeze-after", "0.2"]),
}


def state(port, version):
    versions = api(port, "GET", "/api/functions/wake")["function"]["versions"]
    return next(v["state"] for v in versions if v["name"] == version)


def measure(tier, wakes):
    idle_state, options = TIERS[tier]
    with funcplane(*options) as port:
        for version in ["v1", "v2"]:
            api(port, "POST", "/api/deploy/wake",
                {"runtime": "js", "code": CODE.format(marker=version), "version": version})
        woken, running = [], []
        for _ in range(wakes):
            deadline = time.monotonic() + 10
            while state(port, "v1") != idle_state:
                if time.monotonic() > deadline:
                    raise SystemExit(f"v1 did not become {idle_state}")
                time.sleep(0.02)
            status, body, head = request(port, "GET", "/", host="v1.wake.func.local")
            if (status, body) != (200, b"v1"):
                raise SystemExit(f"the woken version answered {status} {body!r}")
            woken.append(head * 1000)
            status, body, head = request(port, "GET", "/", host="wake.func.local")
            if (status, body) != (200, b"v2"):
                raise SystemExit(f"the running version answered {status} {body!r}")
            running.append(head * 1000)
    print(f"{idle_state:9} -> first byte (ms): {summary(woken)}")
    print(f"running   -> first byte (ms): {summary(running)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--wakes", type=int, default=50)
    parser.add_argument("--tier", choices=["killed", "frozen", "both"], default="both")
    args = parser.parse_args()
    for tier in TIERS if args.tier == "both" else [args.tier]:
        measure(tier, args.wakes)


if __name__ == "__main__":
    sys.exit(main())
