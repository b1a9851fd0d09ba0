"""Who owns each GPU, for the exporter's labels: the kubelet's pod-resources API where there is one.

A missing or broken socket never stops the exporter: the GPUs go unattributed and the reason is
logged once (again only when it changes), and the next poll tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from meter.device.kubelet import DEFAULT_SOCKET, Owner, PodResourcesClient, PodResourcesError


class Attributor:
    """``owners()``: GPU UUID -> holders, or None off Kubernetes (no socket configured or found)."""

    def __init__(self, socket: Path | None, say: Callable[[str], None]):
        self.say = say
        self.socket = socket
        self._client: PodResourcesClient | None = None
        self._last_problem: str | None = None

    @classmethod
    def from_setting(cls, setting: str | None, say: Callable[[str], None]) -> Attributor:
        """``None``/``auto``: the kubelet's default socket if it exists now; ``off``: none; else that path."""
        if setting == "off":
            return cls(None, say)
        if setting in (None, "auto"):
            return cls(DEFAULT_SOCKET if DEFAULT_SOCKET.exists() else None, say)
        return cls(Path(setting), say)

    @property
    def enabled(self) -> bool:
        return self.socket is not None

    def owners(self) -> dict[str, list[Owner]] | None:
        if self.socket is None:
            return None
        try:
            if self._client is None:
                self._client = PodResourcesClient(self.socket)
            found = self._client.gpu_owners()
        except PodResourcesError as exc:
            self._problem(str(exc))
            return {}
        if self._last_problem is not None:
            self.say(f"pod attribution: {self.socket} answers again")
            self._last_problem = None
        return found

    def _problem(self, message: str) -> None:
        if message != self._last_problem:
            self.say(f"pod attribution off until it answers: {message}")
            self._last_problem = message

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
