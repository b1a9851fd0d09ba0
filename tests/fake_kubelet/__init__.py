"""A fake kubelet pod-resources server: the real generated gRPC service on a unix socket.

``serve(socket_path, pods)`` answers ``List`` with ``pods`` ((namespace, pod, container,
resource name, device ids) rows) until stopped; ``fail_with`` makes every call fail with that
gRPC status instead, as a broken kubelet would.
"""

from __future__ import annotations

import os
import tempfile
from concurrent import futures
from pathlib import Path

import grpc

from meter.device.podresources.v1 import api_pb2, api_pb2_grpc


class _Lister(api_pb2_grpc.PodResourcesListerServicer):
    def __init__(self, pods, fail_with):
        self.pods, self.fail_with, self.calls = pods, fail_with, 0

    def List(self, request, context):  # noqa: N802 (the generated servicer's name)
        self.calls += 1
        if self.fail_with is not None:
            context.abort(self.fail_with, "fake kubelet refuses")
        answer = api_pb2.ListPodResourcesResponse()
        by_pod: dict[tuple[str, str], api_pb2.PodResources] = {}
        for namespace, pod, container, resource, device_ids in self.pods:
            if (namespace, pod) not in by_pod:
                by_pod[(namespace, pod)] = answer.pod_resources.add(name=pod, namespace=namespace)
            c = by_pod[(namespace, pod)].containers.add(name=container)
            c.devices.add(resource_name=resource, device_ids=list(device_ids))
        return answer


class FakeKubelet:
    def __init__(self, pods, fail_with: grpc.StatusCode | None = None, directory: Path | None = None):
        # unix socket paths are short (108 bytes): a fresh directory under /tmp unless told where
        self.dir = directory or Path(tempfile.mkdtemp(prefix="kubelet-", dir="/tmp"))
        self.socket = self.dir / "kubelet.sock"
        self.lister = _Lister(pods, fail_with)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(self.lister, self.server)
        self.server.add_insecure_port(f"unix://{self.socket}")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None)
        self.socket.unlink(missing_ok=True)
        if not any(self.dir.iterdir()):
            os.rmdir(self.dir)
