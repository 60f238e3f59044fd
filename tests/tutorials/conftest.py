"""A `graphexec serve` for the tutorial tests: one real process per module, started with the same helpers
as tests/integration's fixtures (loaded from that file, which is not importable by name)."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("integration_processes",
                                               Path(__file__).resolve().parents[1] / "integration" / "conftest.py")
processes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(processes)


@pytest.fixture(scope="module")
def server():
    """The target of a `graphexec serve` with no Redis (its embedded worker), for a module's tests."""
    started = []
    try:
        yield processes.start_serve(started)
    finally:
        for process in started:
            process.kill()
