"""Type stub of the native module `c3d` (python/src/*.rs); the docstrings there say more."""

import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str
_Path = Union[str, os.PathLike]
_Input = Union[npt.NDArray[np.float32], str, os.PathLike]

class C3dError(Exception):
    """A compilation, plan, simulation or session failed; the message says why."""

def compile(
    onnx_path: _Path,
    output: _Path = "plan.bin",
    *,
    prune: float = 0.0,
    nonlinear: str = "auto",
    bandwidth: float = 1000.0,
    rtt: float = 0.5,
    name: Optional[str] = None,
    labels: Union[Sequence[str], _Path, None] = None,
    approx: Optional[Sequence[str]] = None,
    approx_budget: Optional[float] = None,
    input_shape: Optional[Sequence[int]] = None,
    frac_bits: Optional[int] = None,
    prime: Optional[int] = None,
    calib_samples: int = 4,
    calib: Optional[Sequence[Union[npt.NDArray[np.float32], _Path]]] = None,
    preprocess: Union[Dict[str, Any], _Path, None] = None,
    no_rewrite: bool = False,
    weights_out: Optional[_Path] = None,
    verbose: bool = False,
) -> Dict[str, Any]: ...
def inspect(plan_path: _Path, weights: Optional[_Path] = None) -> Dict[str, Any]: ...
def simulate(
    plan_path: _Path, input: _Input, weights: Optional[_Path] = None
) -> npt.NDArray[np.float32]: ...
def serve(
    plan_path: _Path,
    address: str = "127.0.0.1:7878",
    *,
    weights: Optional[_Path] = None,
    sessions: Optional[int] = None,
    max_clients: int = 4,
    tls_cert: Optional[_Path] = None,
    tls_key: Optional[_Path] = None,
    client_ca: Optional[_Path] = None,
    allow_plaintext: bool = False,
    timeout: float = 300.0,
) -> List[Union[Dict[str, Any], str]]: ...
def infer(
    plan_path: _Path,
    clip: _Input,
    address: str = "127.0.0.1:7878",
    *,
    top: int = 5,
    tls_ca: Optional[_Path] = None,
    tls_cert: Optional[_Path] = None,
    tls_key: Optional[_Path] = None,
    server_name: Optional[str] = None,
    allow_plaintext: bool = False,
    connect_wait: float = 10.0,
    timeout: float = 300.0,
) -> Dict[str, Any]: ...
