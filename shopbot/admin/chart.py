"""The dashboard's chart: daily sales and revenue of the last 30 days as a PNG, drawn with matplotlib.

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
    """One bar per day (sales) with the revenue on it, as PNG bytes."""
    # Imported on first use: matplotlib adds about a second to start-up, and most runs draw no chart.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [day.strftime("%d.%m") for day, _, _ in days]
    positions = range(len(days))
    axes.bar(positions, [float(sales) for _, sales, _ in days], color="#4a90d9", label=f"sales, {currency}")
    axes.plot(positions, [float(revenue) for _, _, revenue in days], color="#e07b39", marker="o", markersize=3,
              label=f"revenue, {currency}")
    axes.set_xticks(list(positions)[::3], labels[::3], rotation=45, fontsize=8)
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
