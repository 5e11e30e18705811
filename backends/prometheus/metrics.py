"""Health windows per variant from PromQL instant queries over Prometheus' HTTP API.

Defaults fit KServe Serverless: Knative's queue-proxy exports `revision_app_request_count`
(labels `revision_name`, `response_code_class`) and the histogram
`revision_app_request_latencies` (milliseconds) for every revision. Every query is a
`string.Template` ($selector, $window, $quantile, $model, $version, $revision, $namespace)
so a team serving through something else overrides them in `[metrics.queries]`.

"No data" (an empty vector) and NaN are reported as None with the reason in `missing`: a
window with nothing in it is never healthy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from string import Template
from typing import Any

from backends.base import BackendError, BadInputError, HealthWindow, check_name

DEFAULT_QUERIES = {
    "requests": "sum(increase(revision_app_request_count{$selector}[$window]))",
    "errors": 'sum(increase(revision_app_request_count{$selector, response_code_class="5xx"}[$window]))',
    "latency": "histogram_quantile($quantile, sum by (le) (rate(revision_app_request_latencies_bucket{$selector}[$window])))",
}
DEFAULT_SELECTOR = 'revision_name="$revision"'
# Knative numbers revisions itself (NAME-predictor-00003); map versions explicitly in
# [metrics.revisions] ("model@version" = "revision") or label pods with the version and relabel.
DEFAULT_REVISION = "$model-predictor-$version"
PLACEHOLDERS = ("selector", "window", "quantile", "model", "version", "revision", "namespace")


@dataclass
class PromHealthWindow(HealthWindow):
    """A HealthWindow that also says what was missing and which PromQL produced it."""

    missing: dict[str, str] = field(default_factory=dict)  # measure -> why it is None
    queries: dict[str, str] = field(default_factory=dict)  # measure -> the PromQL that ran


def _template(text: Any, where: str) -> Template:
    if not isinstance(text, str) or not text.strip():
        raise BadInputError(f"{where}: must be a non-empty PromQL template string")
    template = Template(text)
    try:
        # a template naming an unknown $placeholder is a configuration error, found before any query
        template.substitute({name: "x" for name in PLACEHOLDERS})
    except KeyError as exc:
        raise BadInputError(f"{where}: unknown placeholder ${exc.args[0]} "
                            f"(known: {', '.join('$' + p for p in PLACEHOLDERS)})") from None
    except ValueError as exc:
        raise BadInputError(f"{where}: malformed placeholder ({exc}) "
                            f"(known: {', '.join('$' + p for p in PLACEHOLDERS)})") from None
    return template


class PrometheusMetrics:
    """The Metrics protocol over one Prometheus server."""

    def __init__(self, url: str, *, queries: dict[str, str] | None = None, selector: str = DEFAULT_SELECTOR,
                 revision: str = DEFAULT_REVISION, revisions: dict[str, str] | None = None, namespace: str = "",
                 timeout_s: float = 5.0, retries: int = 3, where: str = "mrc.toml"):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadInputError(f"{where}: metrics.url must be an http(s) URL of a Prometheus server, got {url!r}")
        from urllib.parse import urlsplit

        if urlsplit(url).username is not None or urlsplit(url).password is not None:
            raise BadInputError(f"{where}: metrics.url must not carry credentials (user:password@); "
                                "put Prometheus behind a proxy that authenticates")
        self.url = url.rstrip("/")
        self.where = where
        merged = dict(DEFAULT_QUERIES)
        for key, text in (queries or {}).items():
            if key not in DEFAULT_QUERIES:
                raise BadInputError(f"{where}: metrics.queries.{key} is not a known measure "
                                    f"(known: {', '.join(DEFAULT_QUERIES)})")
            merged[key] = text
        self.queries = {key: _template(text, f"{where}: metrics.queries.{key}") for key, text in merged.items()}
        self.selector = _template(selector, f"{where}: metrics.selector")
        self.revision = _template(revision, f"{where}: metrics.revision")
        self.revisions = dict(revisions or {})
        self.namespace = namespace
        self.timeout_s = float(timeout_s)
        self.retries = max(1, int(retries))
        self._http = None

    @classmethod
    def from_config(cls, config: dict[str, Any], *, where: str = "mrc.toml") -> "PrometheusMetrics":
        known = {"backend", "url", "queries", "selector", "revision", "revisions", "namespace", "timeout_s", "retries"}
        for key in config:
            if key not in known:
                raise BadInputError(f"{where}: metrics.{key} is not a known setting (known: {', '.join(sorted(known))})")
        for key in ("queries", "revisions"):
            if not isinstance(config.get(key, {}), dict):
                raise BadInputError(f"{where}: [metrics.{key}] must be a table")
        try:
            timeout_s = float(config.get("timeout_s", 5.0))
        except (TypeError, ValueError):
            raise BadInputError(f"{where}: metrics.timeout_s must be a number of seconds") from None
        try:
            retries = int(config.get("retries", 3))
        except (TypeError, ValueError):
            raise BadInputError(f"{where}: metrics.retries must be a whole number") from None
        return cls(config.get("url", "http://127.0.0.1:9090"), queries=config.get("queries"),
                   selector=config.get("selector", DEFAULT_SELECTOR), revision=config.get("revision", DEFAULT_REVISION),
                   revisions=config.get("revisions"), namespace=str(config.get("namespace", "")),
                   timeout_s=timeout_s, retries=retries, where=where)

    # -- HTTP -------------------------------------------------------------------------------
    def _client(self):
        if self._http is None:
            import httpx

            self._http = httpx.Client(base_url=self.url, timeout=self.timeout_s)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def query(self, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
        """One instant query: [(labels, value)] (NaN kept as NaN). Retries network errors and 5xx."""
        import httpx

        delay = 0.2
        last_error = ""
        for attempt in range(self.retries):
            try:
                response = self._client().get("/api/v1/query", params={"query": promql, "time": f"{at:.3f}"})
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500:
                    return self._parse(promql, response)
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
            if attempt + 1 < self.retries:
                time.sleep(delay)
                delay *= 2
        raise BackendError(f"prometheus {self.url}: {last_error} (after {self.retries} attempts)")

    def _parse(self, promql: str, response) -> list[tuple[dict[str, str], float]]:
        try:
            body = response.json()
        except ValueError:
            raise BackendError(f"prometheus {self.url}: answered HTTP {response.status_code} with no JSON") from None
        if body.get("status") != "success":
            kind, error = body.get("errorType", ""), body.get("error", "")
            if kind == "bad_data":  # the query itself is wrong: that is our configuration
                raise BadInputError(f"{self.where}: [metrics] query {promql!r} rejected by Prometheus: {error}")
            raise BackendError(f"prometheus {self.url}: {kind}: {error}")
        data = body.get("data", {})
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return [({}, float(result[1]))]
        if kind != "vector":
            raise BadInputError(f"{self.where}: [metrics] query {promql!r} must return an instant vector, got {kind}")
        return [(sample.get("metric", {}), float(sample["value"][1])) for sample in result]

    # -- the Metrics protocol -----------------------------------------------------------------
    def revision_of(self, model: str, version: str) -> str:
        return self.revisions.get(f"{model}@{version}") or self.revision.substitute(
            model=model, version=version, namespace=self.namespace)

    def promql(self, measure: str, model: str, version: str, window_s: float, quantile: float | None = None) -> str:
        revision = self.revision_of(model, version)
        names = {"model": model, "version": version, "revision": revision, "namespace": self.namespace}
        selector = self.selector.substitute(names)
        return self.queries[measure].substitute(
            names, selector=selector, window=f"{max(1, int(round(window_s)))}s",
            quantile="" if quantile is None else repr(quantile))

    def _one_value(self, measure: str, promql: str, at: float, window: PromHealthWindow, key: str) -> float | None:
        window.queries[key] = promql
        samples = self.query(promql, at)
        if not samples:
            window.missing[key] = f"no data: {measure} query returned an empty vector"
            return None
        if len(samples) > 1:
            raise BadInputError(f"{self.where}: [metrics] query for {measure} returned {len(samples)} series; "
                                "aggregate it to one (sum / sum by (le))")
        value = samples[0][1]
        if math.isnan(value) or math.isinf(value):
            shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
            window.missing[key] = f"{measure} is {shown} (no observations in the window)"
            return None
        return value

    def health(self, model: str, version: str, start: float, end: float) -> PromHealthWindow:
        check_name(model, "model")
        check_name(version, "version")
        if end <= start:
            raise BadInputError(f"health window: end ({end}) must be after start ({start})")
        window_s = end - start
        window = PromHealthWindow(model, version, start, end)
        requests = self._one_value("requests", self.promql("requests", model, version, window_s), end, window, "requests")
        if requests is not None:
            window.requests = int(round(requests))
            if window.requests == 0:
                window.missing["requests"] = "no requests in the window"
        errors = self._one_value("errors", self.promql("errors", model, version, window_s), end, window, "errors")
        if errors is None:
            # no 5xx series while requests exist means none failed; with no requests it stays unknown
            if requests:
                window.missing.pop("errors", None)
            window.errors = 0
        else:
            window.errors = int(round(errors))
        for quantile, attr, key in ((0.5, "latency_p50_ms", "latency_p50"), (0.99, "latency_p99_ms", "latency_p99")):
            promql = self.promql("latency", model, version, window_s, quantile)
            setattr(window, attr, self._one_value(f"latency p{int(quantile * 100)}", promql, end, window, key))
        return window
