"""How bytes reach Braze: two interchangeable HTTP engines behind one small interface.

httpx is the project's HTTP client; aiohttp is used when installed because
bench/delivery.py measured httpx at ~1.5 ms of CPU per request (pure-Python h11 + anyio
bookkeeping) against ~0.2 ms for aiohttp, and the delivery target (75,000 objects/s,
<= 15 CPU s per million objects) needs the latter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

POOL_CONNECTIONS = 8  # connections per httpx pool; see HttpxSender
KEEPALIVE_SECONDS = 30.0


@dataclass(slots=True)
class Answer:
    """One HTTP exchange: a response, or the transport error that replaced it."""

    status: int | None
    body: Any
    headers: Mapping[str, str] | None  # case-insensitive
    error: str | None = None  # transport failure text (timeout, dropped connection)


class TransportFailure(Exception):
    """No HTTP answer: timeout, refused or dropped connection. Always worth a retry."""


def choose_http(http: str) -> str:
    if http not in ("auto", "httpx", "aiohttp"):
        raise ValueError("http must be 'auto', 'httpx' or 'aiohttp'")
    if http != "auto":
        return http
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return "httpx"
    return "aiohttp"


class HttpxSender:
    """httpx with keep-alive. httpcore's pool scans every connection for every queued
    request, so one pool of 100+ connections burns a core on bookkeeping: use small pools
    of POOL_CONNECTIONS instead, handed out round-robin by a queue that never holds more
    tickets per pool than the pool has connections."""

    def __init__(self, url: str, headers: dict, timeout: float, max_concurrency: int) -> None:
        count = -(-max_concurrency // POOL_CONNECTIONS)
        size = min(POOL_CONNECTIONS, max_concurrency)
        self._pools = [
            httpx.AsyncClient(
                base_url=url,
                headers=headers,
                timeout=httpx.Timeout(timeout),
                limits=httpx.Limits(
                    max_connections=size,
                    max_keepalive_connections=size,
                    keepalive_expiry=KEEPALIVE_SECONDS,
                ),
            )
            for _ in range(count)
        ]
        self._tickets: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for index in range(max_concurrency):
            self._tickets.put_nowait(self._pools[index % count])

    async def send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: dict | None,
        params: dict | None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        pool = await self._tickets.get()
        try:
            response = await pool.request(
                method, path, content=content, headers=headers, params=params
            )
        except httpx.TransportError as exc:
            raise TransportFailure(f"{type(exc).__name__}: {exc}") from None
        finally:
            self._tickets.put_nowait(pool)
        return response.status_code, response.headers, response.content

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class AiohttpSender:
    """aiohttp with keep-alive, one connector sized to the concurrency. The session is
    created on first use, inside the running event loop, as aiohttp requires."""

    def __init__(self, url: str, headers: dict, timeout: float, max_concurrency: int) -> None:
        self._url = url
        self._headers = headers
        self._timeout = timeout
        self._max_concurrency = max_concurrency
        self._session: Any = None

    def _open(self) -> Any:
        import aiohttp

        self._errors = (aiohttp.ClientError, asyncio.TimeoutError)
        self._invalid = aiohttp.InvalidURL
        return aiohttp.ClientSession(
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            connector=aiohttp.TCPConnector(
                limit=self._max_concurrency,
                limit_per_host=0,
                keepalive_timeout=KEEPALIVE_SECONDS,
            ),
        )

    async def send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: dict | None,
        params: dict | None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        if self._session is None:
            self._session = self._open()
        try:
            async with self._session.request(
                method, self._url + path, data=content, headers=headers, params=params
            ) as response:
                return response.status, response.headers, await response.read()
        except self._invalid:
            raise
        except self._errors as exc:
            text = str(exc) or "timed out"
            raise TransportFailure(f"{type(exc).__name__}: {text}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
