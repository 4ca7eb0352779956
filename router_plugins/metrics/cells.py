"""Counters and histograms kept as plain cells on the event loop, turned into Prometheus families only when scraped.

prometheus_client's own metrics take a lock and go through a few layers on every
``inc``/``observe``; here a request's update is list arithmetic on a cell found by its
label values. That is safe because every update and every scrape runs on the one event
loop thread of a process (each ``--workers`` process has its own cells).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

# A counter cell is ``[value]``; a histogram cell ``[count in bucket 0, …, count above the last bound, sum]``.
Cell = list


class Counter:
    """One counter family: a ``[value]`` cell per tuple of label values, made on first use."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.cells: dict[tuple[Any, ...], Cell] = {}
        self.created: dict[tuple[Any, ...], float] = {}

    def cell(self, *labels: Any) -> Cell:
        found = self.cells.get(labels)
        if found is None:
            found = self.cells[labels] = [0]
            self.created[labels] = time.time()
        return found

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, cell in self.cells.items():
            if cell[0]:  # a request's cells are made together; a series appears once it counted something
                family.add_metric([str(v) for v in labels], cell[0], created=self.created[labels])
        return family


class Histogram:
    """One histogram family with fixed upper bounds (``le``, inclusive; ``+Inf`` implied)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self.cells: dict[tuple[Any, ...], Cell] = {}
        self.created: dict[tuple[Any, ...], float] = {}

    def cell(self, *labels: Any) -> Cell:
        found = self.cells.get(labels)
        if found is None:
            found = self.cells[labels] = [0] * (len(self.bounds) + 1) + [0.0]
            self.created[labels] = time.time()
        return found

    def observe(self, cell: Cell, value: float) -> None:
        cell[bisect.bisect_left(self.bounds, value)] += 1  # the first bound >= value: le is inclusive
        cell[-1] += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [*(floatToGoString(b) for b in self.bounds), "+Inf"]
        for labels, cell in self.cells.items():
            running, buckets = 0, []
            for le, n in zip(les, cell, strict=False):  # the cell's last item is the sum
                running += n
                buckets.append((le, running))
            if not running:
                continue
            values = [str(v) for v in labels]
            family.add_metric(values, buckets, sum_value=cell[-1])
            # prometheus_client's own Histogram also says when each series began
            family.samples.append(
                Sample(f"{self.name}_created", dict(zip(self.labelnames, values, strict=True)), self.created[labels])
            )
        return family


class Cells:
    """A prometheus_client collector that renders the families' cells at scrape time."""

    def __init__(self, *families: Counter | Histogram) -> None:
        self.families = families

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.family()
