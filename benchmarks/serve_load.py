"""How ``rnnlab serve`` holds up under load: N clients writing at once, on loopback, for a bounded time.

    python benchmarks/serve_load.py [--clients 1 2 4 16] [--seconds 20] [--workers 2] [--threads 1]

Starts the real server (``python -m rnnlab serve --port 0``, the bundled model) in its own process, then for
each client count runs that many threads, each posting ``/api/write`` with the phrases of
``docs/phrases.txt`` in turn (a new seed each time) and reading the streamed points, for ``--seconds``. A
client told 429 or 503 waits the Retry-After it was given and tries again. Reports, per client count:
writes completed, their time to the first points and to the end (p50, p99, seconds), the throughput
(writes and points per second), the answers that were 429/503 (the line full: expected once the clients
outnumber the workers and the line) and the errors (anything else: none is acceptable), and the server's
resident memory before and after. Ends with one JSON line.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time

import httpx2

PHRASES = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "phrases.txt")


def resident_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def client(url: str, phrases: list, until: float, seed: int, results: dict, lock: threading.Lock) -> None:
    """Write phrase after phrase until ``until``; record each write's timings, refusals and errors."""
    n = 0
    with httpx2.Client(timeout=120) as http:
        while time.monotonic() < until:
            text = phrases[(seed + n) % len(phrases)]
            n += 1
            start = time.monotonic()
            first, points, outcome = None, 0, "error"
            try:
                with http.stream("POST", url + "/api/write", json={"text": text, "seed": seed * 1000 + n}) as r:
                    if r.status_code in (429, 503):
                        outcome = "refused"
                        wait = float(r.headers.get("retry-after", 1))
                    elif r.status_code == 200:
                        for line in r.iter_lines():
                            record = json.loads(line)
                            if "points" in record:
                                first = first or time.monotonic() - start
                                points += len(record["points"])
                            elif record.get("done"):
                                outcome = "done"
                            elif "error" in record:
                                break
            except (httpx2.HTTPError, ValueError):
                pass
            with lock:
                if outcome == "done":
                    results["first"].append(first)
                    results["total"].append(time.monotonic() - start)
                    results["points"] += points
                results[outcome] = results.get(outcome, 0) + 1
            if outcome == "refused":
                time.sleep(wait)


def percentile(values: list, q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 16])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    with open(PHRASES, encoding="utf-8") as f:
        phrases = [line.strip() for line in f if line.strip()]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "rnnlab", "serve", "--port", "0", "--workers",
                               str(args.workers), "--threads", str(args.threads)], stdout=subprocess.PIPE, env=env,
                              text=True)
    try:
        url = server.stdout.readline().split(" at ")[1].split()[0]
        line = httpx2.get(url + "/api/models", timeout=30).json()["load"]
        before = resident_mib(server.pid)
        rows = []
        print(f"server: {line['workers']} workers, {line['waiting']} places in line, {args.threads} thread(s) each; "
              f"{args.seconds:g} s per row; {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
        print(f"{'clients':>7} {'writes':>6} {'first p50':>9} {'first p99':>9} {'total p50':>9} {'total p99':>9} "
              f"{'writes/s':>8} {'points/s':>8} {'429/503':>7} {'errors':>6} {'RSS MiB':>8}")
        for count in args.clients:
            results, lock = {"first": [], "total": [], "points": 0}, threading.Lock()
            until = time.monotonic() + args.seconds
            threads = [threading.Thread(target=client, args=(url, phrases, until, i + 1, results, lock))
                       for i in range(count)]
            start = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - start
            row = {"clients": count, "writes": results.get("done", 0),
                   "first_p50": percentile(results["first"], 0.5), "first_p99": percentile(results["first"], 0.99),
                   "total_p50": percentile(results["total"], 0.5), "total_p99": percentile(results["total"], 0.99),
                   "writes_per_s": results.get("done", 0) / elapsed, "points_per_s": results["points"] / elapsed,
                   "refused": results.get("refused", 0), "errors": results.get("error", 0),
                   "rss_mib": resident_mib(server.pid)}
            rows.append(row)
            print(f"{count:>7} {row['writes']:>6} {row['first_p50']:>9.3f} {row['first_p99']:>9.3f} "
                  f"{row['total_p50']:>9.2f} {row['total_p99']:>9.2f} {row['writes_per_s']:>8.2f} "
                  f"{row['points_per_s']:>8.0f} {row['refused']:>7} {row['errors']:>6} {row['rss_mib']:>8.0f}")
        after = resident_mib(server.pid)
        print(f"server memory: {before:.0f} MiB before, {after:.0f} MiB after")
        print(json.dumps({"benchmark": "serve_load", "workers": line["workers"], "threads": args.threads,
                          "seconds": args.seconds, "rss_before_mib": before, "rss_after_mib": after, "rows": rows}))
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
