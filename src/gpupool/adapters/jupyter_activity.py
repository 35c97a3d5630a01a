"""What a running Jupyter server says about its own activity, read over its REST API.

``JupyterActivityReader(base_url, token).read()`` asks ``GET /api/status`` (the server's last
activity: API requests, kernel messages, terminals; its open connections; its kernel count) and
``GET /api/kernels`` (each kernel's ``execution_state`` and ``last_activity``) and returns a
``ServerActivity``, Jupyter's ISO times as epoch seconds. ``ServerActivity.observe`` turns it
into the core's ``Activity`` for ``gpupool.core.sessions.IdleClock``.

The reads themselves are not activity: ``/api/status`` is untracked by Jupyter, and
``/api/kernels`` is asked with ``no_track_activity=1``. Any other authenticated request does
count, including the polling of an open JupyterLab tab (a hidden tab stops polling).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import httpx

from gpupool.core.sessions import Activity

__all__ = ["JupyterActivityError", "JupyterActivityReader", "KernelState", "ServerActivity", "parse_time"]

DEFAULT_TIMEOUT = 5.0  # seconds for one request to the server


class JupyterActivityError(RuntimeError):
    """The server could not be read: one line, what was asked and why it failed."""


@dataclass(frozen=True, slots=True)
class KernelState:
    """One kernel: ``execution_state`` as Jupyter says it (``idle``, ``busy``, ``starting``, ...)."""

    id: str
    name: str
    execution_state: str
    last_activity: float  # epoch seconds
    connections: int


@dataclass(frozen=True, slots=True)
class ServerActivity:
    """One reading of a Jupyter server (times in epoch seconds)."""

    started: float
    last_activity: float  # the server's: API requests, kernel messages, terminals
    connections: int  # open kernel websockets (an open notebook tab holds one)
    kernels: tuple[KernelState, ...]

    @property
    def kernel_busy(self) -> bool:
        return any(k.execution_state == "busy" for k in self.kernels)

    @property
    def latest(self) -> float:
        """The latest activity of the server or any kernel."""
        return max((self.last_activity, *(k.last_activity for k in self.kernels)))

    def observe(self, at: float, gpu_utilisation: float | None = None) -> Activity:
        """This reading as the idle clock's observation made at ``at``."""
        return Activity(
            at=at, kernel_busy=self.kernel_busy, last_activity=self.latest, gpu_utilisation=gpu_utilisation
        )


def parse_time(text: object, what: str) -> float:
    """A Jupyter ISO 8601 time (``2026-12-04T20:31:07.123456Z``) as epoch seconds; a time without
    a zone is UTC (Jupyter writes UTC). Raises JupyterActivityError."""
    if not isinstance(text, str):
        raise JupyterActivityError(f"{what} is {text!r}, not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise JupyterActivityError(f"{what} {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class JupyterActivityReader:
    """Reads the activity of the Jupyter server at ``base_url`` (its ``base_url`` included, e.g.
    ``http://10.0.0.5:8888/`` or ``http://host:8888/user/ada/``) with its ``token``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"token {token}"},
            timeout=timeout,
            transport=transport,
            trust_env=False,  # a proxy from the environment must not sit between us and the node
        )

    def read(self) -> ServerActivity:
        """Ask the server now. Raises JupyterActivityError (unreachable, refused, or an answer
        that is not Jupyter's)."""
        status = self._get("api/status")
        kernels = self._get("api/kernels", {"no_track_activity": "1"})
        if not isinstance(status, dict):
            raise JupyterActivityError(f"{self.base_url}api/status did not answer a JSON object")
        if not isinstance(kernels, list):
            raise JupyterActivityError(f"{self.base_url}api/kernels did not answer a JSON list")
        return ServerActivity(
            started=parse_time(status.get("started"), "api/status started"),
            last_activity=parse_time(status.get("last_activity"), "api/status last_activity"),
            connections=_count(status.get("connections"), "api/status connections"),
            kernels=tuple(_kernel(k) for k in kernels),
        )

    def _get(self, path: str, params: dict[str, str] | None = None) -> object:
        url = f"{self.base_url}{path}"
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise JupyterActivityError(f"could not read {url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            why = " (is the token right?)" if response.status_code in (401, 403) else ""
            raise JupyterActivityError(f"{url} answered HTTP {response.status_code}{why}")
        try:
            return response.json()
        except ValueError:
            raise JupyterActivityError(f"{url} did not answer JSON") from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> JupyterActivityReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _kernel(raw: object) -> KernelState:
    if not isinstance(raw, dict):
        raise JupyterActivityError(f"api/kernels listed {raw!r}, not a kernel")
    kid = str(raw.get("id", ""))
    return KernelState(
        id=kid,
        name=str(raw.get("name", "")),
        execution_state=str(raw.get("execution_state", "")),
        last_activity=parse_time(raw.get("last_activity"), f"kernel {kid} last_activity"),
        connections=_count(raw.get("connections", 0), f"kernel {kid} connections"),
    )


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JupyterActivityError(f"{what} is {value!r}, not a whole number")
    return value
