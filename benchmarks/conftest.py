import platform

import pytest
import torch


@pytest.fixture(autouse=True)
def _record_environment(benchmark):
    benchmark.extra_info.update(
        device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        cpu=platform.processor() or platform.machine(),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
    )
