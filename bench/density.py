"""
Density: how many live versions one funcplane holds under the limits of a default systemd
unit (a soft limit of 1,024 open files, a hard one of 524,288), and what each costs.

It starts twistd funcplane under `prlimit --nofile=SOFT:HARD`, deploys COUNT functions one
after another (each is its function's latest, so each stays running), checks that every
one answers, and reports: deploys that failed, memory per version (PSS and private, from
/proc/PID/smaps_rollup), funcplane's own RSS and PSS, its open descriptors and the soft
limit it runs under (raised at start to the hard limit).

    .venv/bin/python bench/density.py [--count 300] [--soft 1024] [--hard 524288] [-- OPTIONS...]

Raising the hard limit above the shell's needs root (prlimit). OPTIONS go to funcplane.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from common import AUTH, ROOT, TOKEN, api, free_port, request

CODE = 'export default {{ fetch() {{ return new Response("{name}") }} }}'


def rollup(pid):
    """
    C{{field: kB}} of /proc/PID/smaps_rollup.
    """
    found = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                found[parts[0].rstrip(":")] = int(parts[1])
    return found


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return line.split()[3], line.split()[4]
    return None, None


def children(run_dir):
    """
    The pids of the workerd children: every process whose working directory is under
    funcplane's run directory.
    """
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/cwd").startswith(run_dir):
                    found.append(int(pid))
            except OSError:
                continue
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--soft", type=int, default=1024)
    parser.add_argument("--hard", type=int, default=524288)
    parser.add_argument("options", nargs="*", help="more funcplane options, after --")
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="fpdensity")
    data_dir = os.path.join(data, "d")
    port = free_port()
    process = subprocess.Popen(
        ["prlimit", f"--nofile={args.soft}:{args.hard}", "--",
         os.path.join(ROOT, ".venv", "bin", "twistd"), "-n", "--pidfile=", "funcplane",
         "--port", f"tcp:{port}:interface=127.0.0.1", "--data-dir", data_dir, *args.options],
        env=dict(os.environ, FUNCPLANE_ADMIN_TOKEN=TOKEN), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                request(port, "GET", "/api/functions", headers=AUTH)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("funcplane did not start")
                time.sleep(0.05)
        failed = {}
        started = time.monotonic()
        for i in range(args.count):
            name = f"d{i}"
            body = {"runtime": "js", "code": CODE.format(name=name)}
            status, _, _ = request(port, "POST", f"/api/deploy/{name}",
                                       body=json.dumps(body), headers=AUTH)
            if status != 200:
                failed[status] = failed.get(status, 0) + 1
        deploy_seconds = time.monotonic() - started
        answering = 0
        for i in range(args.count):
            try:
                status, body, _ = request(port, "GET", "/", host=f"d{i}.func.local")
            except OSError:
                continue
            answering += (status, body) == (200, f"d{i}".encode())
        pids = children(os.path.join(data_dir, "run"))
        pss = [rollup(pid) for pid in pids]
        # prlimit execs twistd: its pid is funcplane's.
        funcplane_pid = process.pid
        own = rollup(funcplane_pid)
        fds = len(os.listdir(f"/proc/{funcplane_pid}/fd"))
        soft, hard = soft_nofile(funcplane_pid)
        listed = api(port, "GET", "/api/functions")
        print(f"versions deployed: {args.count} in {deploy_seconds:.1f} s; failed: {failed or 'none'};"
              f" listed: {len(listed.get('functions', []))}")
        print(f"answering: {answering} of {args.count}; workerd children alive: {len(pids)}")
        if pss:
            total_pss = sum(p.get("Pss", 0) for p in pss)
            private = sum(p.get("Private_Clean", 0) + p.get("Private_Dirty", 0) for p in pss)
            rss = sum(p.get("Rss", 0) for p in pss)
            print(f"per version: PSS {total_pss / len(pss) / 1024:.1f} MB, private {private / len(pss) / 1024:.1f} MB,"
                  f" RSS {rss / len(pss) / 1024:.1f} MB; all children: PSS {total_pss / 1024:.0f} MB")
        print(f"funcplane (pid {funcplane_pid}): RSS {rss_kb(funcplane_pid) / 1024:.0f} MB,"
              f" PSS {own.get('Pss', 0) / 1024:.0f} MB; open descriptors {fds};"
              f" soft/hard limit of open files {soft}/{hard} (started under {args.soft}/{args.hard})")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
