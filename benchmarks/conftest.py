import platform

import pytest
import torch


@pytest.fixture(autouse=True)
def _record_environment(benchmark):
    benchmark.extra_info.update(
        device="cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        cpu=platform.processor() or platform.machine(),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
    )
