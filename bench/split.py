"""
Traffic split honesty: the share each version of a split really gets, over real requests.

Starts funcplane, deploys two versions of one function, splits its host 90/10 through the
Cloudflare API (as `wrangler versions deploy A@90% B@10%` does), sends N requests on one
kept-alive connection and counts which version answered each.

    .venv/bin/python bench/split.py [--requests 10000] [--share 10]
"""

import argparse
import http.client
import json
import sys
import uuid
from collections import Counter

from common import AUTH, api, funcplane, request

CODE = 'export default {{ fetch() {{ return new Response("{marker}") }} }}'
SCRIPT = "/client/v4/accounts/bench/workers/scripts/split"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--share", type=int, default=10, help="the second version's percentage")
    args = parser.parse_args()
    with funcplane() as port:
        for name in ["a", "b"]:
            api(port, "POST", "/api/deploy/split", {"runtime": "js", "code": CODE.format(marker=name), "version": name})
        ids = {v["name"]: v["id"] for v in api(port, "GET", "/api/functions/split")["function"]["versions"]}
        body = {
            "strategy": "percentage",
            "versions": [
                {"version_id": str(uuid.UUID(ids["a"])), "percentage": 100 - args.share},
                {"version_id": str(uuid.UUID(ids["b"])), "percentage": args.share},
            ],
        }
        status, answer, _ = request(port, "POST", SCRIPT + "/deployments", json.dumps(body), headers=AUTH)
        if status != 200:
            raise SystemExit(f"the split failed: {status} {answer!r}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        counts = Counter()
        for _ in range(args.requests):
            connection.request("GET", "/", headers={"Host": "split.func.local"})
            response = connection.getresponse()
            counts[response.read().decode()] += 1
        connection.close()
        observed = 100 * counts["b"] / args.requests
        print(
            f"{args.requests} requests at {100 - args.share}/{args.share}: a={counts['a']} b={counts['b']}"
            f" others={args.requests - counts['a'] - counts['b']}; b's share {observed:.2f} %"
            f" ({observed - args.share:+.2f} points)"
        )


if __name__ == "__main__":
    sys.exit(main())
