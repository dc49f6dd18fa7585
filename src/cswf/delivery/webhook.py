"""Webhooks and notifications: an HTTP POST of the action as JSON.

`Idempotency-Key: <action_id>` is the contract with the receiver: the same key may arrive more
than once (a retry after a 5xx or a timeout, a re-run after a crash) and must take effect once.
Retries within one delivery attempt back off exponentially and are bounded; 5xx, 408, 429,
timeouts and connection errors are retried, other 4xx fail at once (the request is wrong), and
redirects are not followed (a POST must not silently change target). A URL that gave no answer
at all gets a single try for the other actions of the same run (until `close()`), so a dead
receiver costs one timeout per action rather than `max_attempts` of them.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import urlsplit

from cswf.delivery.config import LOOPBACK_HOSTS, WebhookConfig
from cswf.delivery.model import OutboundAction, SendResult

RETRY_STATUSES = frozenset({408, 429})
ERROR_BODY_LIMIT = 300
ERROR_READ_LIMIT = 65536
MAX_BACKOFF_SECONDS = 30.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx surfaces as an HTTPError


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS:
        handlers.append(urllib.request.ProxyHandler({}))  # no proxy reaches our loopback
    return urllib.request.build_opener(*handlers)


def _snippet(raw: bytes, secrets: list[str]) -> str:
    """The start of an error body, secrets masked before cutting (no half secret survives)."""
    text = raw.decode(errors="replace")
    for secret in secrets:  # a receiver may echo the request back in its error
        text = text.replace(secret, "***")
    text = " ".join(text.split())[:ERROR_BODY_LIMIT]
    return f": {text}" if text else ""


class WebhookSender:
    channel = "webhook"

    def __init__(self, config: WebhookConfig, *, sleep: Callable[[float], None] = time.sleep,
                 environ: Mapping[str, str] | None = None) -> None:
        self._config = config
        self._sleep = sleep
        self._environ = os.environ if environ is None else environ
        self._unreachable: set[str] = set()

    def __repr__(self) -> str:
        """Scheme and host only: a URL's path or query may carry a token."""
        parts = urlsplit(self._config.url or "")
        return f"WebhookSender({parts.scheme}://{parts.hostname})" if parts.hostname else (
            "WebhookSender(no url)")

    def _url(self, action: OutboundAction) -> str | None:
        endpoint = action.payload.get("endpoint")
        if endpoint is not None:
            return self._config.endpoints.get(str(endpoint))
        return self._config.url

    def _headers(self, action: OutboundAction) -> tuple[dict[str, str], list[str]]:
        """The request headers, and the secret values among them (to scrub from errors)."""
        headers = {"Content-Type": "application/json", "User-Agent": "cswf-delivery",
                   "Idempotency-Key": action.action_id}
        secrets = []
        for name, variable in self._config.headers_env.items():
            value = self._environ.get(variable)
            if value:
                headers[name] = value
                secrets.append(value)
        return headers, secrets

    def _post_once(self, url: str, body: bytes, headers: dict[str, str], secrets: list[str]
                   ) -> tuple[int | None, str]:
        """(HTTP status, detail); status None: no answer (connection error or timeout)."""
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with _opener(url).open(request, timeout=self._config.timeout_seconds) as response:
                return response.status, f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, f"HTTP {exc.code}{_snippet(exc.read(ERROR_READ_LIMIT), secrets)}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, f"no answer from the webhook: {type(reason).__name__}: {reason}"

    def send(self, action: OutboundAction, now: datetime) -> SendResult:
        url = self._url(action)
        if url is None:
            wanted = action.payload.get("endpoint")
            what = f"endpoint {wanted!r} is not configured" if wanted else "no webhook url set"
            return SendResult.failed(f"webhook: {what}", retryable=False)
        body, (headers, secrets) = action.as_json(), self._headers(action)
        detail = ""
        tries = 1 if url in self._unreachable else self._config.max_attempts
        for attempt in range(1, tries + 1):
            if attempt > 1:
                delay = self._config.backoff_seconds * 2 ** (attempt - 2)
                self._sleep(min(delay, MAX_BACKOFF_SECONDS))
            status, detail = self._post_once(url, body, headers, secrets)
            if status is None:
                self._unreachable.add(url)
                continue
            self._unreachable.discard(url)
            if 200 <= status < 300:
                return SendResult.sent(f"HTTP {status}", detail=detail)
            if status < 500 and status not in RETRY_STATUSES:
                return SendResult.failed(detail, retryable=False, provider_id=f"HTTP {status}",
                                         events=(("failed", detail),))
        return SendResult.failed(f"{detail} (after {tries} {'try' if tries == 1 else 'tries'})",
                                 retryable=True)

    def close(self) -> None:
        """End of a run: forget which URLs did not answer (one connection per request)."""
        self._unreachable.clear()
