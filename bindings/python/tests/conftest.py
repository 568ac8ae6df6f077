"""Shared fixtures: a fresh store in a temporary directory."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

import etch


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Path of a store file that does not exist yet."""
    return tmp_path / "test.etch"


@pytest.fixture
def db(path: Path) -> Iterator[etch.Store]:
    """An open store, closed after the test."""
    store = etch.open(path)
    yield store
    store.close()
