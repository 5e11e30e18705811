"""Is a version healthy? Its last window's error rate and latency within the team's thresholds
([alerts] max_error_rate, max_p99_latency_ms, min_requests, health_window_s) — not "its server
answers /health", which a version failing 30 % of its requests also does.

`judge` is pure; `measure` reads one window from the workspace's metrics backend. The dialogs,
the rollback message and home's health panel all say the same thing through `Verdict.line`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from console.notify.alerts import AlertsConfig, parse_config


@dataclass(frozen=True)
class Verdict:
    version: str
    healthy: bool | None  # None: the window cannot say (too few requests, metrics unavailable)
    requests: int = 0
    error_rate: float | None = None
    p99_ms: float | None = None
    window_s: float = 0.0
    max_error_rate: float = 0.05
    max_p99_ms: float = 500.0
    min_requests: int = 20
    why: str = ""  # what breaks the thresholds, or why there is no verdict

    def line(self) -> str:
        """"5: UNHEALTHY — errors 30.0 % > 5.0 % max (120 requests in the last 300 s)"."""
        if self.healthy is None:
            return f"{self.version}: health unknown — {self.why}"
        p99 = "—" if self.p99_ms is None else f"{self.p99_ms:.0f} ms"
        facts = (f"errors {self.error_rate:.1%} (max {self.max_error_rate:.1%}) · p99 {p99} "
                 f"(max {self.max_p99_ms:.0f} ms) · {self.requests} requests in the last {self.window_s:.0f} s")
        if self.healthy:
            return f"{self.version}: healthy — {facts}"
        return f"{self.version}: UNHEALTHY — {self.why}; {facts}"

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "healthy": self.healthy, "requests": self.requests,
                "error_rate": self.error_rate, "p99_ms": self.p99_ms, "window_s": self.window_s,
                "max_error_rate": self.max_error_rate, "max_p99_ms": self.max_p99_ms, "why": self.why,
                "summary": self.line()}


def thresholds(config: dict[str, Any] | None, where: str = "mrc.toml") -> AlertsConfig:
    """The team's thresholds: [alerts] (its defaults when the table is absent)."""
    return parse_config((config or {}).get("alerts"), where)


def judge(version: str, window, cfg: AlertsConfig) -> Verdict:
    """Pure: a HealthWindow against the thresholds. Too few requests is no verdict, never healthy."""
    base = {"max_error_rate": cfg.max_error_rate, "max_p99_ms": cfg.max_p99_latency_ms,
            "min_requests": cfg.min_requests, "window_s": cfg.health_window_s}
    requests = int(getattr(window, "requests", 0) or 0) if window is not None else 0
    if requests < cfg.min_requests:
        return Verdict(version, None, requests, **base,
                       why=f"{requests} requests in the last {cfg.health_window_s:.0f} s (a verdict needs "
                           f"{cfg.min_requests}; [alerts] min_requests)")
    rate = window.errors / requests
    p99 = window.latency_p99_ms
    broken = []
    if rate > cfg.max_error_rate:
        broken.append(f"errors {rate:.1%} > {cfg.max_error_rate:.1%} max")
    if p99 is not None and p99 > cfg.max_p99_latency_ms:
        broken.append(f"p99 {p99:.0f} ms > {cfg.max_p99_latency_ms:.0f} ms max")
    return Verdict(version, not broken, requests, rate, p99, **base, why="; ".join(broken))


def measure(ws, model: str, version: str, *, now: float | None = None) -> Verdict:
    """The version's last window from the workspace's metrics backend, judged. Never raises: a
    metrics backend that fails is a verdict of "unknown" naming the failure."""
    try:
        cfg = thresholds(ws.config, str(ws.config_path))
    except Exception as exc:  # noqa: BLE001  (a bad [alerts] table is reported where it is parsed)
        return Verdict(version, None, why=f"[alerts] unreadable ({exc})")
    end = time.time() if now is None else now
    try:
        window = ws.metrics().health(model, version, end - cfg.health_window_s, end)
    except Exception as exc:  # noqa: BLE001
        return Verdict(version, None, max_error_rate=cfg.max_error_rate, max_p99_ms=cfg.max_p99_latency_ms,
                       window_s=cfg.health_window_s, why=f"metrics unavailable ({type(exc).__name__}: {exc})")
    return judge(version, window, cfg)


def active_fault(traffic, model: str, version: str) -> dict[str, float] | None:
    """The rehearsal fault a locally served version carries now ({"error_rate", "latency_ms",
    "shift"} with a non-zero value), None when it has none or is not served here."""
    served = getattr(traffic, "served_versions", None)
    if served is None:
        return None
    try:
        port = served(model).get(version)
    except Exception:  # noqa: BLE001
        return None
    if port is None:
        return None
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=2.0)
    try:
        conn.request("GET", "/health")
        body = json.loads(conn.getresponse().read() or b"{}")
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
    fault = body.get("fault") if isinstance(body, dict) else None
    if isinstance(fault, dict) and any(float(v or 0) for v in fault.values()):
        return {k: float(v or 0) for k, v in fault.items()}
    return None


def fault_line(version: str, fault: dict[str, float] | None) -> str:
    if not fault:
        return ""
    parts = []
    if fault.get("error_rate"):
        parts.append(f"{fault['error_rate']:.0%} errors")
    if fault.get("latency_ms"):
        parts.append(f"+{fault['latency_ms']:.0f} ms")
    if fault.get("shift"):
        parts.append(f"shift {fault['shift']:+g}")
    return f"{version}: DRILL ACTIVE ({', '.join(parts)}) — `mrc drill MODEL {version} --off` ends it"
