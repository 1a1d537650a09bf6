"""Prometheus text read as Prometheus reads it (``prometheus_client.parser``)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; a missing sample is a failure that names what exists."""
        key = (name, frozenset(labels.items()))
        if key not in self.samples:
            known = sorted(str(dict(lbl)) for n, lbl in self.samples if n == name)
            raise AssertionError(f"no sample {name}{labels}; {name} has {known}")
        return self.samples[key]

    def get(self, name: str, default: float = 0.0, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), default)
