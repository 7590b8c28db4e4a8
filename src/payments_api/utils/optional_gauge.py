"""A gauge whose samples can be taken away again.

A `prometheus_client.Gauge` without labels always shows a value: after a failed read it would
go on showing the last one, and an alert on it would judge the deployment by a stale number.
An `OptionalGauge` shows only what was set since it was last cleared, so a value that could not
be read this time is left out of the scrape (and Prometheus marks its series stale) instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class OptionalGauge(Collector):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def set(self, value: float, *labelvalues: str) -> None:
        """One sample (of the series named by `labelvalues`, in the order of `labelnames`)."""
        if len(labelvalues) != len(self.labelnames):
            raise ValueError(f"{self.name} takes the labels {self.labelnames}")
        self._values[labelvalues] = value

    def replace(self, values: Mapping[tuple[str, ...], float]) -> None:
        """Exactly these samples from now on, all at once (none of the earlier ones kept)."""
        for labelvalues in values:
            if len(labelvalues) != len(self.labelnames):
                raise ValueError(f"{self.name} takes the labels {self.labelnames}")
        self._values = dict(values)

    def clear(self) -> None:
        """No sample until the next `set`: the value is unknown, not zero."""
        self._values = {}

    def value(self, *labelvalues: str) -> float | None:
        return self._values.get(labelvalues)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The family without samples: what the registry checks names against."""
        yield GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labelvalues, value in sorted(self._values.items()):
            family.add_metric(list(labelvalues), value)
        yield family
