"""`mobilejax export`: a trained tiny model becomes float32 and int8 TFLite files that the interpreter runs; the
float32 logits match JAX, the graph has DEPTHWISE_CONV_2D ops, and the int8 agreement with JAX is reported."""
import json
import os
import sys

import pytest

from mobilejax import cli
from mobilejax.train import train_and_evaluate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train import make_folder, tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    folder = make_folder(root / "images")
    c = tiny_config(dataset=f"image_folder:{folder}", train_split="train", eval_split="val")
    c.model = type(c.model)(c.model)  # a copy we may change
    c.model.name, c.model.small_input = "mobilenet_v2", True
    c.model.alpha = 0.35
    c.num_train_steps = 6
    c.optim.ema_decay = 0.5  # exported weights are the EMA ones
    workdir = str(root / "run")
    train_and_evaluate(c, workdir)
    return workdir


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_export_tflite(trained, quantize, capsys, tmp_path):
    out = str(tmp_path / f"m_{quantize}.tflite")
    capsys.readouterr()
    assert cli.main(["export", "--workdir", trained, "--quantize", quantize, "--out", out, "--checkpoint",
                     "latest"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert os.path.getsize(out) == res["bytes"] > 10_000
    assert res["examples"] == 15 and res["step"] == 6
    assert "DEPTHWISE_CONV_2D" in res["ops"] and "CONV_2D" in res["ops"]
    assert 0.0 <= res["top1_agreement"] <= 1.0 and res["latency_ms_median"] > 0
    if quantize == "none":
        assert res["max_abs_logit_diff"] <= 1e-4 and res["top1_agreement"] == 1.0
        assert res["accuracy_tflite"] == res["accuracy_jax"]
    else:
        assert res["max_abs_logit_diff"] > 0  # really quantized
        assert "QUANTIZE" in res["ops"] and "DEQUANTIZE" in res["ops"]


def test_export_bad_input(trained, capsys):
    assert cli.main(["export", "--workdir", trained, "--format", "onnx"]) == 2
    assert "unknown export format 'onnx'; allowed: tflite" in capsys.readouterr().err
    assert cli.main(["export", "--workdir", trained, "--quantize", "int4"]) == 2
    assert "unknown quantization 'int4'; allowed: none, float16, int8" in capsys.readouterr().err
