"""lightkube's AsyncClient behind the console's synchronous protocols.

The protocols (Training, Traffic) are synchronous because the CLI is; the TUI runs them in
worker threads. One event loop in a daemon thread per backend object owns one AsyncClient
(one connection pool); sync methods submit coroutines to it, so they work from any thread,
including one that already runs an event loop. Async callers use the `a*` methods directly.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Awaitable, Iterator, TypeVar

from backends.base import BackendError, BadInputError, ConflictError, NotFoundError

T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread: run(coro) and iterate(async_iterator) from sync code."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mrc-k8s-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(agen, "aclose", None)
            if close is not None and not self.loop.is_closed():
                self.run(close())

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


def make_async_client(config: dict[str, Any], *, namespace: str, where: str):
    """An AsyncClient from the user's kubeconfig (KUBECONFIG or ~/.kube/config) and context."""
    from lightkube import AsyncClient, KubeConfig  # lightkube: ~0.13 s
    from lightkube.core.exceptions import ConfigError

    try:
        if config.get("kubeconfig"):
            kubeconfig = KubeConfig.from_file(str(config["kubeconfig"]))
        else:
            kubeconfig = KubeConfig.from_env()
        single = kubeconfig.get(context_name=config.get("context") or None)
        return AsyncClient(config=single, namespace=namespace, field_manager="mrc")
    except (ConfigError, OSError) as exc:
        raise BadInputError(f"{where}: no usable Kubernetes configuration ({exc}); "
                            "set KUBECONFIG or kubeconfig/context in this section") from None
    except KeyError as exc:  # an unknown context name
        raise BadInputError(f"{where}: kubeconfig has no context {exc}") from None


def api_error(exc: Exception, what: str) -> Exception:
    """Map a lightkube/httpx failure to the console's errors (exit codes 2/3/4)."""
    from lightkube import ApiError  # lightkube: ~0.13 s

    if isinstance(exc, ApiError):
        code = getattr(exc.status, "code", None)
        message = getattr(exc.status, "message", "") or str(exc)
        if code == 409:
            return ConflictError(f"{what}: {message}")
        if code == 404:
            return NotFoundError(f"{what}: not found ({message})")
        if code in (400, 422):
            return BadInputError(f"{what}: rejected by the API server: {message}")
        if code in (401, 403):  # the server's message names the verb, the resource and the namespace
            return BackendError(f"{what}: not allowed ({code}): {' '.join(str(message).split())}")
        return BackendError(f"{what}: API server answered {code}: {message}")
    response = getattr(exc, "response", None)  # an HTTP error whose body was not a Status object
    if response is not None and getattr(response, "status_code", None) == 409:
        return ConflictError(f"{what}: 409 Conflict")
    if response is not None and getattr(response, "status_code", None) == 404:
        # a path the API server does not serve at all answers 404 with a plain-text body, not a Status:
        # the resource type is unknown there (a CustomResourceDefinition not installed)
        return NotFoundError(f"{what}: the API server does not serve this resource type "
                             "(is its CustomResourceDefinition installed?)")
    return BackendError(f"{what}: {type(exc).__name__}: {exc}")


def check_int(config: dict[str, Any], key: str, default: int, where: str, *, minimum: int = 0) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInputError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    return value
