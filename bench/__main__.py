"""`python -m bench`: run the scenarios, check each one's answers, write bench/results/latest.json and print a
Markdown table of absolute numbers and their ratios to the ceilings measured in the same run.

    python -m bench [--quick] [--only updates,webhooks,orders,footprint] [--database-url DSN]
    python -m bench --only soak [--soak-seconds 600] [--output bench/results/soak.json]

PostgreSQL is found as the tests find it: --database-url, else TEST_DATABASE_URL, else an embedded server
under var/bench/postgres. Exit status 1 if any scenario failed or answered wrong; then the results go to
bench/results/failed.json and latest.json is left as it was.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from bench.batch_speedup import QUICK as QUICK_BATCH
from bench.common import ROOT, WORK, BenchFailure, Postgres, ScenarioResult
from bench.report import markdown
from bench.scenario_footprint import FootprintSettings, run_footprint
from bench.scenario_orders import OrderSettings, run_orders
from bench.scenario_updates import UpdatesSettings, run_updates
from bench.scenario_webhooks import WebhookSettings, run_webhooks
from bench.soak import SoakSettings, run_soak

RESULTS = ROOT / "bench" / "results"
SCENARIOS = ("updates", "webhooks", "orders", "footprint")
# Run only when named (--only soak): it takes ten minutes by default.
ON_REQUEST = ("soak",)
# Each scenario is cut off after this long: a hang is a failure, not a slow result.
# orders: the drain of 500 (about 2 minutes), then the batch speed-up (about 11, mostly 200 landings one by one).
# webhooks: the settler now credits a run's backlog after the flood (up to a minute per run on 2 cores).
TIME_LIMITS = {"updates": 360, "webhooks": 600, "orders": 1500, "footprint": 480}
SOAK_SLACK = 300  # seconds a soak may take beyond its load: start, drain, checks

Runner = Callable[[Postgres, Path, Any, dict[str, object], ScenarioResult], Awaitable[None]]


def settings_for(quick: bool, soak_seconds: float) -> dict[str, Any]:
    soak = SoakSettings(seconds=soak_seconds, warmup=min(30.0, soak_seconds / 4))
    if not quick:
        return {
            "updates": UpdatesSettings(),
            "webhooks": WebhookSettings(),
            "orders": OrderSettings(),
            "footprint": FootprintSettings(),
            "soak": soak,
        }
    return {
        "updates": UpdatesSettings(users=200, saturated_seconds=6, fixed_seconds=8, light_seconds=5, warmup=2),
        "webhooks": WebhookSettings(seconds=4, warmup=1, shop_invoices=8_000, ceiling_invoices=16_000),
        "orders": OrderSettings(users=100, ceiling_payments=30, batch=QUICK_BATCH),
        "footprint": FootprintSettings(starts=2),
        "soak": soak,
    }


def machine(postgres_version: str, postgres: Postgres) -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")),
        "0",
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "shopbot", "sql"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": model,
        "memory_gb": round(int(memory) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": f"{postgres_version} ({postgres.description})",
        "commit": (commit.stdout.strip() or "unknown") + (" with uncommitted changes" if dirty.stdout.strip() else ""),
    }


async def main(args: argparse.Namespace) -> int:
    chosen = [name.strip() for name in args.only.split(",")] if args.only else list(SCENARIOS)
    known = (*SCENARIOS, *ON_REQUEST)
    unknown = set(chosen) - set(known)
    if unknown:
        print(f"bench: unknown scenario {', '.join(sorted(unknown))}; one of {', '.join(known)}", file=sys.stderr)
        return 2
    settings = settings_for(args.quick, args.soak_seconds)
    limits = {**TIME_LIMITS, "soak": args.soak_seconds + SOAK_SLACK}
    runners: dict[str, Runner] = {
        "updates": run_updates,
        "webhooks": run_webhooks,
        "orders": run_orders,
        "footprint": run_footprint,
        "soak": run_soak,
    }
    folder = WORK / "runs" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(args.database_url or os.environ.get("TEST_DATABASE_URL"))
    await anyio.to_thread.run_sync(postgres.start)
    started = time.perf_counter()
    load_before = Path("/proc/loadavg").read_text().split()[0]
    results: list[ScenarioResult] = []
    context: dict[str, object] = {}
    try:
        version = await postgres.version()
        for name in chosen:
            result = ScenarioResult(name)
            results.append(result)
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            began = time.perf_counter()
            try:
                with anyio.fail_after(limits[name]):
                    await runners[name](postgres, folder, settings[name], context, result)
                result.ok = True
            except TimeoutError:
                result.error = f"did not finish within {limits[name]:g} s"
            except Exception as failure:
                result.error = describe(failure)
                if not all(isinstance(leaf, BenchFailure) for leaf in leaves(failure)):
                    logging.getLogger("bench").error("%s crashed", name, exc_info=failure)
            result.seconds = time.perf_counter() - began
            status = "ok" if result.ok else "FAILED: " + result.error
            print(f"bench: {name} {status} ({result.seconds:.0f} s)", file=sys.stderr, flush=True)
    finally:
        await anyio.to_thread.run_sync(postgres.stop)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(version, postgres),
        "load_average": {"before": float(load_before), "after": float(Path("/proc/loadavg").read_text().split()[0])},
        "logs": str(folder.relative_to(ROOT)),
        "scenarios": [r.as_dict() for r in results],
    }
    ok = all(r.ok for r in results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    # A soak alone does not replace the scenarios' latest results.
    kept = "soak.json" if chosen == ["soak"] else "latest.json"
    path = Path(args.output) if args.output else RESULTS / (kept if ok else "failed.json")
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(markdown(report))
    print(
        f"\nbench: results in {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}; logs in "
        f"{report['logs']}",
        file=sys.stderr,
    )
    if not ok:
        print("bench: FAILED — " + "; ".join(f"{r.name}: {r.error}" for r in results if not r.ok), file=sys.stderr)
    return 0 if ok else 1


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def describe(error: BaseException) -> str:
    """What went wrong, with task groups' exception groups unpacked."""
    return "; ".join(
        str(leaf) if isinstance(leaf, BenchFailure) else f"{type(leaf).__name__}: {leaf}" for leaf in leaves(error)
    )


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs and fewer users (about 3 minutes)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated scenarios among {', '.join((*SCENARIOS, *ON_REQUEST))}"
    )
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="how long the soak's load runs")
    parser.add_argument("--database-url", default="", help="a maintenance DSN of the PostgreSQL server to use")
    parser.add_argument("--output", default="", help="where to write the JSON (default bench/results/latest.json)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(anyio.run(main, parse(sys.argv[1:]), backend="asyncio"))
