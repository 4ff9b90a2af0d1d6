"""Shared fixtures: the bundled trained motion model, compiled once per test run."""

import pathlib
import socket

import numpy as np
import pytest

import c3d

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "motion" / "c3d-motion.onnx"
CLIP = ROOT / "models" / "clips" / "demo.mp4"


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """The motion model (input 1x3x8x16x16, six named classes) compiled with defaults."""
    out = tmp_path_factory.mktemp("plan") / "plan.bin"
    return c3d.compile(MODEL, out)


@pytest.fixture()
def clip_array():
    """A preprocessed input: uniform in [-2, 2], the preprocessing's range."""
    return np.random.default_rng(7).uniform(-2, 2, (1, 3, 8, 16, 16)).astype(np.float32)


def free_address():
    """A loopback address with a port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % s.getsockname()[1]
