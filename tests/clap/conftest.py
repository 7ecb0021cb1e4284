"""Fixtures for the CLAP tests: one thread, no hub access, a tiny in-domain CLAP module."""
from __future__ import annotations

import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # everything loads from local paths; a download attempt fails loudly

from clap_helpers import SMALL, data_info  # noqa: E402


@pytest.fixture
def clap_module():
    from ditto2.lit.clap import InDomainClapModule

    torch.manual_seed(0)
    return InDomainClapModule(data_info(), **SMALL)
