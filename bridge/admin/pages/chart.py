"""The overview's chart: events received and deliveries done per minute, as the geometry of a
small server-rendered SVG line chart (no script, no library; the template draws it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bridge.records import Activity
from bridge.times import iso


@dataclass(frozen=True, kw_only=True)
class Chart:
    width: int
    height: int
    received_line: str  # SVG points of the received polyline
    received_area: str  # the same closed down to the axis, for the shaded area
    delivered_line: str
    peak: int  # the value at the top of the chart (per minute)
    received: int  # totals over the whole span
    delivered: int
    busiest_at: str | None  # the start (iso) of the bucket with the most received, if any
    busiest: int  # how many it received
    start: str | None  # iso times of the first bucket, the middle one, and the span's end
    middle: str | None
    end: str | None
    bucket: float  # seconds per point


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least `value`."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def activity_chart(
    activity: Sequence[Activity], *, bucket: float, width: int = 720, height: int = 160
) -> Chart:
    received = [a.received for a in activity]
    delivered = [a.delivered for a in activity]
    peak = _nice_ceiling(max([*received, *delivered, 1]))
    top = 4  # keep the peak's line inside the frame
    span = max(len(activity) - 1, 1)

    def points(values: Sequence[int]) -> list[str]:
        # the ends of each run of equal values are enough to draw it (and keep pages small)
        return [
            f"{i * width / span:.1f},{height - value * (height - top) / peak:.1f}"
            for i, value in enumerate(values)
            if i in (0, len(values) - 1) or not values[i - 1] == value == values[i + 1]
        ]

    received_points = points(received)
    area = (
        [f"0,{height}", *received_points, f"{(len(received) - 1) * width / span:.1f},{height}"]
        if received_points
        else []
    )
    busiest = max(activity, key=lambda a: a.received, default=None)
    return Chart(
        width=width,
        height=height,
        received_line=" ".join(received_points),
        received_area=" ".join(area),
        delivered_line=" ".join(points(delivered)),
        peak=peak,
        received=sum(received),
        delivered=sum(delivered),
        busiest_at=iso(busiest.start) if busiest is not None and busiest.received else None,
        busiest=busiest.received if busiest is not None else 0,
        start=iso(activity[0].start) if activity else None,
        middle=iso(activity[len(activity) // 2].start) if activity else None,
        end=iso(activity[-1].start + bucket) if activity else None,
        bucket=bucket,
    )
