"""Every Lambda entry imports with only what the Lambda layer ships (no PyAV, click, uvicorn…), as on AWS."""

from __future__ import annotations

import pytest

from bench import cold_start


@pytest.mark.parametrize("module", cold_start.entry_modules())
def test_each_entry_imports_without_the_packages_the_layer_leaves_out(module: str) -> None:
    hidden = cold_start.not_in_layer()
    assert "av" in hidden
    milliseconds, _ = cold_start.sample(module, hidden)  # raises if the import fails in a fresh interpreter
    assert milliseconds > 0
