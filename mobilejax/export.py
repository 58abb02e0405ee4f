"""Models out: `mobilejax export --workdir DIR --format tflite [--quantize none|float16|int8]`.

The trained model (a workdir's best or latest checkpoint, EMA weights when the run kept them) is converted with
jax2tf, the depthwise convolutions in their canonical `feature_group_count` form (so the converter emits
DEPTHWISE_CONV_2D), then by the TFLite converter of TensorFlow: float32, float16 weights, or int8 post-training
quantization calibrated on training images (integer kernels, float32 input and output). The file is then checked
with the TFLite interpreter on the validation split: max |logit difference| against JAX, top-1 agreement with JAX,
accuracy, and latency per image on this CPU. The input is one preprocessed image, float32 [1, H, W, 3], with the
run's evaluation preprocessing (resize/crop, ImageNet mean/std).

`max_examples=0` exports without that check, so without the run's data (a workdir moved to another machine, a
converted model whose dataset is not at hand); int8 still needs training images to calibrate on. The check runs only
on data of the run's classes (`workdir.class_difference`).
"""
from __future__ import annotations

import os
import statistics
import time
import warnings

import jax
import numpy as np

from mobilejax import workdir as workdir_lib
from mobilejax.errors import UsageError
from mobilejax.runtime import stderr_to_devnull

FORMATS = ("tflite",)
QUANTIZE = ("none", "float16", "int8")
VERIFICATION = ("max_abs_logit_diff", "top1_agreement", "accuracy_tflite", "accuracy_jax", "latency_ms_median")


def _inference_fn(config, workdir: str, checkpoint: str):
    """f(images) -> logits of the workdir's model, with the reference depthwise convolution."""
    from mobilejax.train.inference import restore

    run = workdir_lib.load_run(workdir)
    config.unlock()
    config.model.depthwise_impl = "xla"  # same parameters; the canonical grouped convolution for the converter
    model, steps, state, meta = restore(config, workdir, checkpoint, run["num_classes"], run["image_size"])
    params = state.ema_params if steps.use_ema else state.params
    stats = state.ema_batch_stats if steps.use_ema else state.batch_stats
    variables = jax.device_get({"params": params, "batch_stats": stats})
    return (lambda x: model.apply(variables, x, train=False)), run, int(meta["step"])


def _convert(fn, image_size: int, quantize: str, calibration) -> bytes:
    import tensorflow as tf
    from jax.experimental import jax2tf

    spec = tf.TensorSpec((1, image_size, image_size, 3), tf.float32)
    tf_fn = tf.function(jax2tf.convert(fn), input_signature=[spec], autograph=False)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([tf_fn.get_concrete_function()], tf_fn)
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def interpreter(model_content: bytes):
    """The LiteRT interpreter (`ai-edge-litert`) when installed, else TensorFlow's; with its default XNNPACK
    delegate, or without it for a graph the delegate cannot prepare (e.g. some int8 graphs)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        import tensorflow as tf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    try:
        interp = Interpreter(model_content=model_content)
        interp.allocate_tensors()
    except RuntimeError:
        interp = Interpreter(model_content=model_content,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp.allocate_tensors()
    return interp


def _images(ds, split: str, limit: int | None):
    """(images [N, H, W, 3] float32, labels [N]) of `split` with the evaluation preprocessing, at most `limit`."""
    images, labels = [], []
    for batch in ds.eval_batches(split):
        keep = batch["mask"] > 0
        images.append(batch["image"][keep])
        labels.append(batch["label"][keep])
        if limit is not None and sum(len(x) for x in labels) >= limit:
            break
    images, labels = np.concatenate(images), np.concatenate(labels)
    return (images[:limit], labels[:limit]) if limit is not None else (images, labels)


def _open_data(config, workdir: str, run: dict, quantize: str, verify: bool):
    """The run's datasets where the export needs them (int8's calibration images, the check's validation images), or
    None; data that cannot be opened, or whose classes are not the run's, is an error that says what to do."""
    from mobilejax.data import get_datasets

    if not (verify or quantize == "int8"):
        return None
    why = ("int8 calibrates on the run's training images" if quantize == "int8" else
           "the file is checked on the run's validation images")
    skip = "" if quantize == "int8" else ", or pass --max-examples 0 to export without the check"
    try:
        ds = get_datasets(config.data, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                          seed=config.seed, train=False)
    except ValueError as e:
        raise UsageError(f"{e} ({why}: point --config.data.dataset at a copy of the run's data{skip})") from None
    different = workdir_lib.class_difference(ds.class_names, run["class_names"]) if verify else None
    if different:
        raise UsageError(f"the classes of {config.data.dataset!r} are not those the model in {workdir} was trained "
                         f"on: {different} (the file is checked on the run's validation images: point "
                         f"--config.data.dataset at data of its classes{skip})")
    return ds


def _verify(interp, fn, images: np.ndarray, labels: np.ndarray) -> dict:
    """The TFLite file against the JAX model on `images`: logits, top-1 decisions, accuracy, latency per image."""
    reference = np.asarray(jax.jit(fn)(images))
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    logits, times = [], []
    for image in images:
        t0 = time.perf_counter()
        interp.set_tensor(inp["index"], image[None])
        interp.invoke()
        logits.append(interp.get_tensor(outp["index"])[0].astype(np.float32))
        times.append(time.perf_counter() - t0)
    logits = np.stack(logits)
    return {"max_abs_logit_diff": float(np.max(np.abs(logits - reference))),
            "top1_agreement": float(np.mean(np.argmax(logits, -1) == np.argmax(reference, -1))),
            "accuracy_tflite": float(np.mean(np.argmax(logits, -1) == labels)),
            "accuracy_jax": float(np.mean(np.argmax(reference, -1) == labels)),
            "latency_ms_median": round(statistics.median(times) * 1e3, 3)}


def export(config, workdir: str, *, fmt: str = "tflite", quantize: str = "none", out: str | None = None,
           checkpoint: str = "best", max_examples: int | None = None, calibration_examples: int = 200) -> dict:
    """Export a workdir's model and verify the file (on at most `max_examples` validation images; 0: no check);
    returns what `mobilejax export` prints."""
    from mobilejax.data import Options

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if quantize not in QUANTIZE:
        raise UsageError(f"unknown quantization {quantize!r}; allowed: {', '.join(QUANTIZE)}")
    if max_examples is not None and (isinstance(max_examples, bool) or max_examples < 0):
        raise UsageError(f"--max-examples={max_examples} is invalid; allowed: an integer >= 1, or 0 to export "
                         "without checking the file on the validation images")
    verify = max_examples != 0
    fn, run, step = _inference_fn(config, workdir, checkpoint)
    ds = _open_data(config, workdir, run, quantize, verify)
    size = Options.from_config(config.data).eval_size  # the model's input: evaluation images
    calibration = _images(ds, config.data.train_split, calibration_examples)[0] if quantize == "int8" else None
    with stderr_to_devnull():  # the converter logs pages of MLIR diagnostics; failures still raise
        content = _convert(fn, size, quantize, calibration)
    out = out or os.path.join(workdir, "export", f"model_{quantize}.tflite")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "wb") as f:
        f.write(content)

    with stderr_to_devnull():
        interp = interpreter(content)
    ops = sorted({d["op_name"] for d in interp._get_ops_details()})
    result = {"file": out, "format": fmt, "quantize": quantize, "checkpoint": checkpoint, "step": step,
              "bytes": len(content), "size_mb": round(len(content) / 2 ** 20, 3)}
    if not verify:
        return {**result, "examples": 0, "split": None, **dict.fromkeys(VERIFICATION), "ops": ops}
    images, labels = _images(ds, config.data.eval_split, max_examples)
    return {**result, "examples": int(len(images)), "split": config.data.eval_split,
            **_verify(interp, fn, images, labels), "ops": ops}
