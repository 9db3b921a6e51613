"""Device parsing and self-description."""

from __future__ import annotations

import pytest
import torch

from hwtune.exceptions import ConfigError
from hwtune.hardware import CPUDevice, CUDADevice, available_cpu_count, parse_device


def test_parse_cpu_specs() -> None:
    assert parse_device(None) == CPUDevice(None)
    assert parse_device("cpu:1") == CPUDevice(1)
    assert parse_device("CPU", threads=1) == CPUDevice(1)
    assert parse_device("cpu:1").to_spec() == "cpu:1"
    with pytest.raises(ConfigError, match="positive"):
        parse_device("cpu:zero")
    with pytest.raises(ConfigError, match="CPUs are available"):
        parse_device("cpu", threads=available_cpu_count() + 1)
    with pytest.raises(ConfigError, match="unknown device"):
        parse_device("tpu")


def test_parse_cuda_specs_without_checking() -> None:
    assert parse_device("cuda", check=False) == CUDADevice(0)
    assert parse_device("cuda:3", threads=1, check=False) == CUDADevice(3, 1)
    assert parse_device("gpu:1", check=False).to_spec() == "cuda:1"
    d = CUDADevice(2)
    assert d.kind == "cuda" and d.torch_device == "cuda:2" and d.resolved_threads() == available_cpu_count()
    with pytest.raises(ConfigError, match="GPU index"):
        parse_device("cuda:x", check=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without a GPU")
def test_cuda_without_gpu_says_so() -> None:
    with pytest.raises(ConfigError, match="torch sees none"):
        parse_device("cuda")


def test_cpu_device_describes_itself_and_fixes_threads() -> None:
    d = CPUDevice(1)
    desc = d.describe()
    assert desc["type"] == "cpu" and desc["threads"] == 1 and desc["torch"] == torch.__version__ and desc["model"]
    before = torch.get_num_threads()
    with d.activate():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    d.sync()  # nothing to wait for
