"""Reading a svasim metrics endpoint as Prometheus does: over HTTP, with the text parser."""

from __future__ import annotations

import ssl
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, host: str = "127.0.0.1", *, ca: str = "") -> Samples:
    """Every sample of the endpoint: (sample name, sorted labels) -> value; over HTTPS,
    checked against the CA file ``ca``, if given."""
    if ca:
        url, context = f"https://{host}:{port}/metrics", ssl.create_default_context(cafile=ca)
    else:
        url, context = f"http://{host}:{port}/metrics", None
    with urllib.request.urlopen(url, timeout=10, context=context) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def buckets(samples: Samples, name: str, **labels: str) -> list[tuple[float, float]]:
    """The (upper bound, cumulative count) pairs of histogram ``name``, by bound."""
    want = set(labels.items())
    out = []
    for (n, ls), v in samples.items():
        if n == f"{name}_bucket" and want <= set(ls):
            out.append((float(dict(ls)["le"]), v))
    return sorted(out)
