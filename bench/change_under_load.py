"""
Errors while a function changes under load: wrk keeps 16 connections busy on one function
while its versions are deployed and rolled back, again and again; every request must
succeed.

    .venv/bin/python bench/change_under_load.py [--seconds 10] [--changes 20]
"""

import argparse
import subprocess
import sys
import time

from common import api, funcplane
from throughput import ensure_wrk, parse_wrk

CODE = 'export default {{ fetch() {{ return new Response("{marker}") }} }}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    ensure_wrk()
    with funcplane() as port:
        api(port, "POST", "/api/deploy/live", {"runtime": "js", "code": CODE.format(marker="v0"), "version": "v0"})
        load = subprocess.Popen(
            ["wrk", "-t1", "-c16", f"-d{args.seconds}s", "-H", "Host: live.func.local", f"http://127.0.0.1:{port}/"],
            stdout=subprocess.PIPE, text=True,
        )
        time.sleep(1)
        pause = max(0.05, (args.seconds - 2) / args.changes)
        done, deployed = [], ["v0"]
        for i in range(1, args.changes + 1):
            if i % 2:
                deployed.append(f"v{i}")
                api(port, "POST", "/api/deploy/live",
                    {"runtime": "js", "code": CODE.format(marker=deployed[-1]), "version": deployed[-1]})
                done.append(f"deploy {deployed[-1]}")
            else:
                api(port, "POST", "/api/rollback/live", {"version": deployed[-2]})
                done.append(f"rollback to {deployed[-2]}")
            time.sleep(pause)
        out, _ = load.communicate()
    requests, _, errors = parse_wrk(out)
    print(f"{len(done)} changes ({done[0]} ... {done[-1]}) during {args.seconds} s of wrk -c16")
    print(f"requests {requests}, errors (non-2xx and socket) {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
