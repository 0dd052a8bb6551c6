"""The dashboard's chart: daily sales, Fragment cost and revenue of the last 30 days as a PNG, drawn with
matplotlib. A day's cost is its sales minus its revenue (each capture splits the price into the two), so a
day whose cost bar reaches its sales bar sold at no margin.

Drawing takes a fraction of a second of CPU, so it runs in a worker thread, never on the event loop.
matplotlib's pyplot keeps global state; the object API with the Agg canvas used here does not, so
charts drawn at the same time in different threads do not interfere.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import anyio

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def draw_sales_chart(days: Sequence[tuple[date, Decimal, Decimal]], currency: str, title: str) -> bytes:
    """Per day a sales bar and a cost bar side by side, the revenue as a line, as PNG bytes."""
    # Imported on first use: matplotlib adds about a second to start-up, and most runs draw no chart.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [day.strftime("%d.%m") for day, _, _ in days]
    positions = range(len(days))
    axes.bar(
        [p - 0.2 for p in positions],
        [float(sales) for _, sales, _ in days],
        width=0.4,
        color="#4a90d9",
        label=f"sales, {currency}",
    )
    axes.bar(
        [p + 0.2 for p in positions],
        [float(sales - revenue) for _, sales, revenue in days],
        width=0.4,
        color="#d9534f",
        label=f"Fragment cost, {currency}",
    )
    axes.plot(
        positions,
        [float(revenue) for _, _, revenue in days],
        color="#e07b39",
        marker="o",
        markersize=3,
        label=f"revenue, {currency}",
    )
    axes.set_xticks(list(positions)[::3], labels[::3], rotation=45, fontsize=8)
    axes.axhline(0, color="#888888", linewidth=0.8)  # revenue below it: those days sold at a loss
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


async def render_sales_chart(days: Sequence[tuple[date, Decimal, Decimal]], currency: str, title: str) -> bytes:
    """draw_sales_chart in a worker thread."""
    return await anyio.to_thread.run_sync(draw_sales_chart, days, currency, title)
