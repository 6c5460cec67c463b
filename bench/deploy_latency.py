"""
Deploy latency: from the deploy request to the new version's first served response.

Starts funcplane, deploys N new versions of one function one after another, and for each
measures the time from sending the deploy request to receiving the new version's answer at
its own host.

    .venv/bin/python bench/deploy_latency.py [--runs 20]
"""

import argparse
import json
import sys
import time

from common import AUTH, funcplane, request, summary

CODE = 'export default {{ fetch() {{ return new Response("{marker}") }} }}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with funcplane() as port:
        times = []
        for i in range(args.runs + 1):
            marker = f"bench-{i}"
            body = json.dumps({"runtime": "js", "code": CODE.format(marker=marker), "version": f"b{i}"})
            started = time.perf_counter()
            status, answer, _ = request(port, "POST", "/api/deploy/bench", body, headers=AUTH)
            if status != 200:
                raise SystemExit(f"deploy failed: {status} {answer!r}")
            status, answer, _ = request(port, "GET", "/", host=f"b{i}.bench.func.local")
            elapsed = time.perf_counter() - started
            if answer.decode() != marker:
                raise SystemExit(f"version b{i} answered {answer!r}")
            if i:  # the first deploy also creates the function: leave it out
                times.append(elapsed * 1000)
        print(f"deploy -> first response (ms): {summary(times)}")


if __name__ == "__main__":
    sys.exit(main())
