"""The Markdown table of a bench run, from its JSON report."""

from __future__ import annotations

from typing import Any


def number(value: float, unit: str) -> str:
    if unit in ("updates/s", "webhooks/s", "orders/s", "MB"):
        text = f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    elif unit == "ms":
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.2f}"
    return f"{text} {unit}"


def ratio(measure: dict[str, Any]) -> str:
    value = measure["ratio"]
    if value is None:
        return "—"
    if measure["kind"] == "share":
        return f"{value * 100:.0f} % of ceiling"
    return f"{value:.1f}× floor"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Run {report['date']}{' (--quick)' if report['quick'] else ''} in {report['seconds']:.0f} s on "
        f"{m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, Python {m['python']}, PostgreSQL {m['postgresql']}, "
        f"commit {m['commit']}; 1-minute load average {report['load_average']['before']:.2f} before the run.",
        "",
        "| Scenario | Measure | Shop | Ceiling / floor (same run) | Ratio | Target |",
        "|---|---|---:|---|---:|---|",
    ]
    for scenario in report["scenarios"]:
        if not scenario["ok"]:
            error = " ".join(scenario["error"].split())[:300].replace("|", "/")
            lines.append(f"| {scenario['name']} | **FAILED** | {error} | | | |")
            continue
        for measure in scenario["measures"]:
            reference = "—"
            if measure["reference"] is not None:
                reference = f"{number(measure['reference'], measure['unit'])}: {measure['reference_name']}"
            lines.append(
                f"| {scenario['name']} | {measure['name']} | {number(measure['value'], measure['unit'])} | "
                f"{reference} | {ratio(measure)} | {measure['target'] or '—'} |"
            )
    notes = [f"- {s['name']}: {note}" for s in report["scenarios"] for note in s["notes"]]
    checks = [f"- {s['name']}: {check}" for s in report["scenarios"] if s["ok"] for check in s["checks"]]
    if checks:
        lines += ["", "Checked at the end of each scenario:", *checks]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)
