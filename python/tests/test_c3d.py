"""The Python API end to end: a secure run over loopback against the plaintext simulation,
inspect, the protocol choice, and the errors a user meets."""

import pathlib
import threading

import numpy as np
import pytest

import c3d
from conftest import CLIP, MODEL, free_address


def serve_in_thread(plan, address, sessions=1):
    """Starts `c3d.serve` in a daemon thread; returns the thread and where its result lands."""
    result = {}

    def run():
        try:
            result["reports"] = c3d.serve(plan, address, sessions=sessions)
        except c3d.C3dError as e:  # surfaced by the test, not lost in the thread
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def test_secure_run_equals_simulation(compiled, clip_array):
    plan = pathlib.Path(compiled["plan"])  # os.PathLike works as well as str
    address = free_address()
    server, result = serve_in_thread(plan, address)
    # infer runs while the server thread holds no GIL: both release it.
    got = c3d.infer(plan, clip_array, address)
    server.join(timeout=60)
    assert not server.is_alive() and "error" not in result, result
    expected = c3d.simulate(plan, clip_array)
    assert got["output"].dtype == np.float32
    assert np.array_equal(got["output"], expected)
    best = int(np.argmax(expected))
    assert got["top"][0]["index"] == best
    assert got["top"][0]["label"] == compiled["class_names"][best]
    assert len(got["top"]) == 5
    assert got["plan_hash"] == compiled["hash"]
    assert got["report"]["bytes_sent"] > 0
    (report,) = result["reports"]
    assert isinstance(report, dict) and report["session"] == 1
    assert report["plan_hash"] == got["report"]["plan_hash"]


def test_secure_run_on_a_video_clip(compiled):
    plan = compiled["plan"]
    address = free_address()
    server, result = serve_in_thread(plan, address)
    got = c3d.infer(plan, CLIP, address, top=2)
    server.join(timeout=60)
    assert "error" not in result, result
    assert len(got["top"]) == 2
    assert np.array_equal(got["output"], c3d.simulate(plan, CLIP))


def test_compile_returns_the_plan_summary(compiled):
    assert pathlib.Path(compiled["plan"]).is_file()
    assert compiled["weights"] == compiled["plan"] + ".weights"
    assert pathlib.Path(compiled["weights"]).is_file()
    assert len(compiled["hash"]) == 64
    assert compiled["class_names"] == ["right", "left", "up", "down", "grow", "shrink"]
    assert compiled["p"] > 2 and compiled["frac_bits"] > 0
    assert {"name", "op", "protocol"} <= set(compiled["layers"][0])


def test_inspect_lists_layers_with_protocols(compiled):
    ins = c3d.inspect(compiled["plan"])
    assert ins["plan_hash"] == compiled["hash"]
    protocols = {layer["protocol"] for layer in ins["layers"]}
    assert "HeLinear" in protocols
    assert [l["name"] for l in ins["layers"]] == [l["name"] for l in compiled["layers"]]


def test_nonlinear_choice_changes_the_protocols(tmp_path):
    def protocols(choice):
        out = c3d.compile(MODEL, tmp_path / (choice + ".bin"), nonlinear=choice)
        return [l["protocol"] for l in c3d.inspect(out["plan"])["layers"]]

    gc, ot = protocols("gc"), protocols("ot")
    assert gc != ot
    assert "GarbledCircuit" in gc and "GarbledCircuit" not in ot
    assert "OtComparison" in ot


def test_compile_name_and_labels(tmp_path):
    labels = ["a", "b", "c", "d", "e", "f"]
    out = c3d.compile(MODEL, str(tmp_path / "p.bin"), name="renamed", labels=labels)
    assert out["model"] == "renamed" and out["class_names"] == labels
    assert c3d.inspect(out["plan"])["model"] == "renamed"
    # The compiler's name rules apply, as for `c3dc compile --name`.
    for bad in ["", "x" * 200, "tab\there"]:
        with pytest.raises(c3d.C3dError, match="name"):
            c3d.compile(MODEL, str(tmp_path / "q.bin"), name=bad)


def test_missing_onnx_file(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(c3d.C3dError, match="nope.onnx"):
        c3d.compile(missing, tmp_path / "p.bin")


def test_bad_compile_options(tmp_path):
    with pytest.raises(c3d.C3dError, match="prune=1.5"):
        c3d.compile(MODEL, tmp_path / "p.bin", prune=1.5)
    with pytest.raises(c3d.C3dError, match="nonlinear"):
        c3d.compile(MODEL, tmp_path / "p.bin", nonlinear="fast")
    with pytest.raises(c3d.C3dError, match="bandwidth"):
        c3d.compile(MODEL, tmp_path / "p.bin", bandwidth=0.0)


def test_wrong_input_arrays(compiled):
    plan = compiled["plan"]
    with pytest.raises(c3d.C3dError, match=r"shape \(1, 3, 8, 8, 8\).*\(1, 3, 8, 16, 16\)"):
        c3d.simulate(plan, np.zeros((1, 3, 8, 8, 8), np.float32))
    with pytest.raises(c3d.C3dError, match="float64.*float32"):
        c3d.simulate(plan, np.zeros((1, 3, 8, 16, 16)))
    with pytest.raises(c3d.C3dError, match="shape"):
        c3d.infer(plan, np.zeros((3, 8, 16, 16), np.float32), free_address())
    with pytest.raises(c3d.C3dError, match="numpy array or a path"):
        c3d.simulate(plan, [1.0, 2.0])


def test_weights_file_as_plan(compiled, clip_array):
    weights = compiled["weights"]
    with pytest.raises(c3d.C3dError, match="is a weights file, not a plan"):
        c3d.infer(weights, clip_array, free_address())
    with pytest.raises(c3d.C3dError, match="weights file, not a plan"):
        c3d.inspect(weights)


def test_unreachable_server(compiled, clip_array):
    address = free_address()
    with pytest.raises(c3d.C3dError, match="cannot connect to the server at " + address):
        c3d.infer(compiled["plan"], clip_array, address, connect_wait=0.2)


def test_plain_tcp_off_loopback_is_refused(compiled, clip_array):
    with pytest.raises(c3d.C3dError, match="refusing plain TCP.*allow_plaintext=True"):
        c3d.infer(compiled["plan"], clip_array, "192.0.2.1:7878", connect_wait=0.2)
    with pytest.raises(c3d.C3dError, match="refusing to serve plain TCP"):
        c3d.serve(compiled["plan"], "0.0.0.0:0", sessions=1)


def test_missing_weights_for_serve(compiled, tmp_path):
    with pytest.raises(c3d.C3dError, match="missing.weights"):
        c3d.serve(compiled["plan"], free_address(), weights=tmp_path / "missing.weights")
