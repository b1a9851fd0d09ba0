"""GPU owners from the kubelet's pod-resources API: the generated client against a fake kubelet."""

from __future__ import annotations

import pytest

from tests.conftest import require_module

grpc = require_module("grpc", "pip install -e '.[test]' (the kubelet's pod-resources gRPC API)")

from meter.device.kubelet import Owner, PodResourcesClient, PodResourcesError  # noqa: E402
from meter.exporter.attribution import Attributor  # noqa: E402
from meter.exporter.state import Attribution  # noqa: E402
from tests.fake_kubelet import FakeKubelet  # noqa: E402

GPU0, GPU1 = "GPU-fa4e0000-0000-0000-0000-000000000000", "GPU-fa4e0000-0000-0000-0000-000000000001"
PODS = [
    ("team-a", "train-0", "trainer", "nvidia.com/gpu", [GPU0]),
    ("team-b", "chat-0", "server", "nvidia.com/gpu", [GPU1 + "::0"]),  # time-sliced replicas of one GPU
    ("team-c", "chat-1", "server", "nvidia.com/gpu", [GPU1 + "::1"]),
    ("team-a", "train-0", "sidecar", "example.com/nic", ["eth7"]),  # not a GPU
]


@pytest.fixture
def kubelet():
    k = FakeKubelet(PODS)
    yield k
    k.stop()


def test_the_client_maps_gpus_to_the_containers_holding_them(kubelet):
    client = PodResourcesClient(kubelet.socket)
    try:
        owners = client.gpu_owners()
    finally:
        client.close()
    assert owners == {
        GPU0: [Owner("team-a", "train-0", "trainer")],
        GPU1: [Owner("team-b", "chat-0", "server"), Owner("team-c", "chat-1", "server")],
    }
    assert Attribution.of(owners[GPU0]) == Attribution("team-a", "train-0", "trainer")
    assert Attribution.of(owners[GPU1]) == Attribution("team-b,team-c", "chat-0,chat-1", "server")
    assert Attribution.of([]) == Attribution("", "", "")


def test_a_failing_or_missing_kubelet_is_one_line_naming_the_socket(tmp_path):
    broken = FakeKubelet(PODS, fail_with=grpc.StatusCode.PERMISSION_DENIED)
    try:
        with pytest.raises(PodResourcesError) as info:
            PodResourcesClient(broken.socket).gpu_owners()
        assert str(broken.socket) in str(info.value) and "PERMISSION_DENIED" in str(info.value)
        assert "\n" not in str(info.value)
    finally:
        broken.stop()
    with pytest.raises(PodResourcesError, match="no such socket"):
        PodResourcesClient(tmp_path / "absent.sock").gpu_owners()
    not_a_socket = tmp_path / "file.sock"
    not_a_socket.write_text("hello")
    with pytest.raises(PodResourcesError, match="List failed"):
        PodResourcesClient(not_a_socket, timeout_s=0.5).gpu_owners()


def test_the_attributor_logs_a_problem_once_and_recovers():
    import tempfile
    from pathlib import Path

    said: list[str] = []
    directory = Path(tempfile.mkdtemp(prefix="kubelet-", dir="/tmp"))
    attributor = Attributor.from_setting(str(directory / "kubelet.sock"), said.append)
    assert attributor.owners() == {} and attributor.owners() == {}
    assert len(said) == 1 and "no such socket" in said[0]
    assert Attributor.from_setting("off", said.append).owners() is None
    k = FakeKubelet(PODS, directory=directory)  # the kubelet comes up later, on the same path
    try:
        assert attributor.owners()[GPU0] == [Owner("team-a", "train-0", "trainer")]
        assert said[-1].endswith("answers again")
    finally:
        k.stop()
        attributor.close()


def test_the_committed_stubs_are_the_generators_output(tmp_path):
    """meter/device/podresources/v1/api_pb2*.py come from the vendored .proto, unedited."""
    from meter.device.podresources.generate import HERE, generate

    for path in generate(tmp_path):
        assert (HERE / "v1" / path.name).read_text() == path.read_text(), (
            f"run python -m meter.device.podresources.generate and commit {path.name}"
        )
