"""The family matrix's modules run torch on one thread: their many tiny forwards and training steps run
several times faster so on a 2-core machine (module-scoped, so the modules' own fixtures get it too)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_module():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
