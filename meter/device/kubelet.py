"""Which pod holds which GPU: the kubelet's pod-resources gRPC API (the socket dcgm-exporter reads).

The kubelet lists, per pod and container, the device ids its device plugins handed out; which
resource names are GPUs each backend says (:func:`meter.device.gpu.kubelet_resource_prefixes`). NVIDIA's
plugin names GPUs by UUID (``GPU-...``; time-sliced replicas as ``GPU-...::N``). The client is
generated from the kubelet's own .proto (``meter/device/podresources``) and needs the
``kubernetes`` extra (grpcio, protobuf).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from meter.device.gpu import kubelet_resource_prefixes
from meter.errors import MeterError

DEFAULT_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
MAX_MESSAGE_BYTES = 16 * 2**20  # as the kubelet's own limit for this API


class PodResourcesError(MeterError):
    """The pod-resources socket is missing, refuses us, or answers something unusable."""


@dataclass(frozen=True, order=True)
class Owner:
    namespace: str
    pod: str
    container: str


def device_key(device_id: str) -> str:
    """The GPU a plugin's device id stands for: time-sliced replicas ``GPU-x::3`` are GPU ``GPU-x``."""
    return device_id.split("::", 1)[0]


class PodResourcesClient:
    """A channel to the kubelet's unix socket; ``gpu_owners()`` asks it once per call."""

    def __init__(self, socket_path: Path = DEFAULT_SOCKET, *, timeout_s: float = 2.0):
        try:
            import grpc

            from meter.device.podresources.v1 import api_pb2, api_pb2_grpc
        except ImportError as exc:
            raise PodResourcesError(
                f"pod attribution needs grpcio and protobuf: pip install 'gpu-cost-meter[kubernetes]' ({exc})"
            ) from None
        except RuntimeError as exc:  # the generated code refuses a grpcio older than it was built for
            raise PodResourcesError(f"pod attribution: {exc}") from None
        self.path = Path(socket_path)
        self.timeout_s = timeout_s
        self._grpc, self._pb = grpc, api_pb2
        self._channel = grpc.insecure_channel(
            f"unix://{self.path}",
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
        )
        self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)

    def gpu_owners(self) -> dict[str, list[Owner]]:
        """GPU UUID -> the containers holding it (sorted; several when a GPU is shared)."""
        if not self.path.exists():
            raise PodResourcesError(f"{self.path}: no such socket (is the kubelet's pod-resources dir mounted?)")
        try:
            answer = self._stub.List(self._pb.ListPodResourcesRequest(), timeout=self.timeout_s)
        except self._grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") and exc.code() else "UNKNOWN"
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise PodResourcesError(
                f"{self.path}: List failed ({code}: {' '.join(str(details).split())[:200]})"
            ) from None
        gpu_prefixes = kubelet_resource_prefixes()
        owners: dict[str, set[Owner]] = defaultdict(set)
        for pod in answer.pod_resources:
            for container in pod.containers:
                for devices in container.devices:
                    if not devices.resource_name.startswith(gpu_prefixes):
                        continue
                    for device_id in devices.device_ids:
                        owners[device_key(device_id)].add(Owner(pod.namespace, pod.name, container.name))
        return {gpu: sorted(found) for gpu, found in owners.items()}

    def close(self) -> None:
        self._channel.close()
