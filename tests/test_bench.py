"""`mobilejax bench`: runs the real train step / inference and reports throughput (no timing assertions)."""
import json

import pytest

from mobilejax import cli


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_bench_json(mode, capsys):
    assert cli.main(["bench", "mobilenet_v1", "--alpha", "0.25", "--resolution", "32", "--batch", "4",
                     "--steps", "2", "--mode", mode, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["img_per_s"] > 0 and out["compile_s"] > 0 and out["mode"] == mode and out["batch"] == 4


def test_bench_rejects_bad_input(capsys):
    assert cli.main(["bench", "mobilenet_v9", "--steps", "1"]) == 2
    assert "unknown model 'mobilenet_v9'" in capsys.readouterr().err
    assert cli.main(["bench", "mobilenet_v2", "--steps", "0"]) == 2
