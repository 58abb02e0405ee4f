"""`mobilejax export`: a trained tiny model becomes float32 and int8 TFLite files that the interpreter runs; the
float32 logits match JAX, the graph has DEPTHWISE_CONV_2D ops, and the int8 agreement with JAX is reported."""
import json
import os
import re
import sys

import pytest

from mobilejax import cli
from mobilejax.train import train_and_evaluate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny import make_folder, random_variables, tiny_config  # noqa: E402


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


# the first one trains the module's model; the `export` group keeps the three tests that use it on one worker
@pytest.mark.parametrize("quantize", [pytest.param("none", marks=pytest.mark.heavy(100)), "int8"])
@pytest.mark.xdist_group("export")  # one worker trains the `trained` fixture once for these
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
    from mobilejax.export import VERIFICATION
    assert all(isinstance(res[k], float) for k in VERIFICATION)
    if quantize == "none":
        assert res["max_abs_logit_diff"] <= 1e-4 and res["top1_agreement"] == 1.0
        assert res["accuracy_tflite"] == res["accuracy_jax"]
    else:
        assert res["max_abs_logit_diff"] > 0  # really quantized
        assert "QUANTIZE" in res["ops"] and "DEQUANTIZE" in res["ops"]


@pytest.mark.xdist_group("export")
def test_export_bad_input(trained, capsys):
    assert cli.main(["export", "--workdir", trained, "--format", "onnx"]) == 2
    assert "unknown export format 'onnx'; allowed: tflite" in capsys.readouterr().err
    assert cli.main(["export", "--workdir", trained, "--quantize", "int4"]) == 2
    assert "unknown quantization 'int4'; allowed: none, float16, int8" in capsys.readouterr().err


@pytest.mark.xdist_group("export")
def test_export_without_the_data_or_with_other_classes(trained, capsys, tmp_path):
    """The run's data gone (a workdir moved to another machine): the check needs it and says so, with what to do;
    `--max-examples 0` exports without it (int8 still needs images to calibrate on). Data of other classes is not
    used to score the file."""
    from mobilejax.export import VERIFICATION
    gone = ["--workdir", trained, "--checkpoint", "latest", f"--config.data.dataset=image_folder:{tmp_path / 'gone'}"]
    for extra, message in (([], r"the file is checked on the run's validation images: point --config.data.dataset "
                                r"at a copy of the run's data, or pass --max-examples 0 to export without the check"),
                           (["--quantize", "int8", "--max-examples", "0"],
                            r"int8 calibrates on the run's training images: point --config.data.dataset at a copy of "
                            r"the run's data\)"),
                           (["--max-examples", "-1"], r"--max-examples=-1 is invalid; allowed: an integer >= 1, or 0")):
        assert cli.main(["export", *gone, *extra]) == 2
        cap = capsys.readouterr()
        assert cap.out == "" and cap.err.count("\n") == 1 and re.search(message, cap.err), cap.err
    other = make_folder(tmp_path / "other", classes=("ant", "bee", "cat"))
    assert cli.main(["export", "--workdir", trained, "--checkpoint", "latest",
                     f"--config.data.dataset=image_folder:{other}"]) == 2
    assert re.search(r"the classes of .* are not those the model in .* was trained on: label 0 is 'ant' here and "
                     r"'cat' in the run;", capsys.readouterr().err)
    out = str(tmp_path / "unchecked.tflite")
    assert cli.main(["export", *gone, "--max-examples", "0", "--out", out]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["examples"] == 0 and res["split"] is None and os.path.getsize(out) == res["bytes"] > 10_000
    assert all(res[k] is None for k in VERIFICATION) and "DEPTHWISE_CONV_2D" in res["ops"]


@pytest.mark.parametrize("name,alpha", [("mobilenet_v1", 0.25), ("mobilenet_v3_large", 0.75),
                                        ("mobilenet_v3_small", 0.75), ("shufflenet_v2", 0.5)])
@pytest.mark.heavy
def test_every_family_converts(name, alpha):
    """Squeeze-excite, hard-swish, channel split/shuffle and max-pool all reach TFLite with equal float32 logits."""
    import jax
    import numpy as np

    from mobilejax.export import _convert, interpreter
    from mobilejax.models import create_model
    from mobilejax.runtime import stderr_to_devnull

    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    kw = dict(num_classes=5, alpha=alpha, small_input=True, depthwise_impl="xla")
    model = create_model(name, **kw)

    @jax.jit  # one program (eager application compiles every op separately, ~3x the time)
    def stats_and_logits(v, x):
        # random weights (no init to compile) with this batch's own running statistics (momentum 0), so the
        # activations stay O(1) through the network and the logits are far from zero
        stats = create_model(name, bn_momentum=0.0, **kw).apply(v, x, train=True, mutable=["batch_stats"],
                                                                 rngs={"dropout": jax.random.key(1)})[1]
        return stats, model.apply({**v, **stats}, x, train=False)

    v = random_variables(model, 32)
    stats, ref = stats_and_logits(v, x)
    v, ref = {**v, **stats}, np.asarray(ref)
    fn = lambda z: model.apply(v, z, train=False)  # noqa: E731
    assert np.std(ref) > 1e-3
    with stderr_to_devnull():
        interp = interpreter(_convert(fn, 32, "none", None))
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    out = []
    for image in x:
        interp.set_tensor(i["index"], image[None])
        interp.invoke()
        out.append(interp.get_tensor(o["index"])[0])
    np.testing.assert_allclose(np.stack(out), ref, rtol=1e-4, atol=1e-4)
    assert "DEPTHWISE_CONV_2D" in {d["op_name"] for d in interp._get_ops_details()}
