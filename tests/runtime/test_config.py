"""RuntimeConfig: every setting checked once, with the one 'unknown X; choose one of' message."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime import Estimator, OneEuroConfig, RuntimeConfig
from ppl_edge.runtime.live import LiveOptions


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"backend": "openvino"}, "unknown backend 'openvino'; choose one of auto, onnxruntime"),
        ({"refine": "dream"}, "unknown refinement mode 'dream'; choose one of none, memory"),
        ({"resize": "cubic"}, "unknown resize method 'cubic'; choose one of fast, area"),
        ({"precision": "int4"}, "unknown precision 'int4'; choose one of fp32, fp16, int8"),
        ({"crops": "blob"}, "unknown crop mode 'blob'; choose one of full, roi, motion"),
        ({"iterations": -1}, "iterations must be an integer >= 0"),
        ({"iterations": True}, "iterations must be an integer >= 0"),
        ({"iterations": 1.5}, "iterations must be an integer >= 0"),
        ({"crops": "roi"}, "needs roi"),
        ({"roi": (0, 0, 0, 4)}, "roi must be"),
        ({"roi": (1, 2, 3)}, "roi must be"),
        ({"threads": 0}, "threads must be >= 1"),
        ({"smooth": 3}, "smooth must be"),
    ],
)
def test_bad_settings_are_refused_when_the_config_is_made(settings, message):
    with pytest.raises(PplEdgeError, match=message):
        RuntimeConfig(**settings)


def test_settings_are_normalised():
    config = RuntimeConfig(roi=(1.0, 2, 3, 4), smooth={"beta": 0.2}, iterations=np.int64(2))
    assert config.crops == "roi" and config.roi == (1, 2, 3, 4)  # a roi alone implies "roi"
    assert config.smooth == OneEuroConfig(beta=0.2) and type(config.iterations) is int
    assert RuntimeConfig(smooth=True).smooth == OneEuroConfig()
    assert RuntimeConfig(smooth=False).smooth is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.refine = "image"
    with pytest.raises(TypeError):
        RuntimeConfig("onnxruntime")  # keyword-only


def test_per_call_refinement_overrides_are_checked():
    config = RuntimeConfig(refine="image", iterations=2)
    assert config.refinement() == ("image", 2)
    assert config.refinement("memory", 3) == ("memory", 3)
    with pytest.raises(PplEdgeError, match="unknown refinement mode"):
        config.refinement("dream")
    with pytest.raises(PplEdgeError, match="iterations"):
        config.refinement(iterations=-2)
    assert config.replace(iterations=4).iterations == 4
    with pytest.raises(PplEdgeError, match="unknown backend"):
        config.replace(backend="gpu")


def test_live_options_are_a_runtime_config_plus_the_loop():
    options = LiveOptions(smooth=True, beta=0.5, threads=1, max_frames=3)
    assert isinstance(options, RuntimeConfig) and options.threads == 1
    assert options.smooth == OneEuroConfig(min_cutoff=1.0, beta=0.5)
    again = LiveOptions.from_config(RuntimeConfig(refine="memory"), max_frames=2)
    assert again.refine == "memory" and again.max_frames == 2


def test_estimator_takes_a_config_or_its_fields(tiny_export):
    config = RuntimeConfig(backend="onnxruntime", threads=1, refine="memory", iterations=1)
    with Estimator(tiny_export, config=config) as est:
        assert est.config is config and (est.refine_mode, est.iterations) == ("memory", 1)
    with Estimator(tiny_export, config=config, iterations=3) as est:
        assert est.config.iterations == 3 and est.config.threads == 1
    with Estimator(tiny_export, backend="onnxruntime", refine="image", iterations=2) as est:
        assert est.config == RuntimeConfig(backend="onnxruntime", refine="image", iterations=2)


def test_runtime_verbs_share_one_flag_group():
    from ppl_edge.cli import build_parser
    from ppl_edge.cli import live as live_verb

    parser = build_parser()
    live = parser.parse_args(["live", "--refine", "image", "--iterations", "2", "--roi", "1,2,3,4"])
    demo = parser.parse_args(["demo"])
    bench = parser.parse_args(["bench", "--backend", "all", "--iterations", "0-2"])
    assert (live.backend, live.refine, live.iterations) == ("auto", "image", 2)
    assert (demo.backend, demo.refine, demo.iterations) == ("auto", "none", 1)  # demo: 1 iteration
    assert (bench.backend, bench.iterations) == ("all", "0-2")  # lists, parsed by the verb
    for verb in ("live", "demo"):
        with pytest.raises(SystemExit):
            parser.parse_args([verb, "--refine", "dream"])
    options = live_verb.options(live)
    assert (options.refine, options.iterations, options.crops) == ("image", 2, "roi")


def test_bench_config_checks_its_lists():
    from ppl_edge.runtime.bench import BenchConfig

    pytest.importorskip("onnxruntime")  # "all" is every backend usable here
    config = BenchConfig(backends=("all",), refines=("none", "image"), iterations=(0, 2))
    assert "onnxruntime" in config.backends and "all" not in config.backends
    with pytest.raises(PplEdgeError, match="unknown refinement mode 'fast'"):
        BenchConfig(refines=("fast",))
    with pytest.raises(PplEdgeError, match="unknown backend 'gpu'"):
        BenchConfig(backends=("gpu",))
    with pytest.raises(PplEdgeError, match="at least 32x32"):
        BenchConfig(frame_size=(16, 64))
    with pytest.raises(PplEdgeError, match="frames must be >= 1"):
        BenchConfig(frames=0)


def test_the_cli_vocabulary_needs_no_numpy():
    import subprocess
    import sys

    code = (
        "import sys; from ppl_edge.cli import build_parser; build_parser(); "
        "import ppl_edge.runtime.config; "
        "print([m for m in ('numpy', 'cv2', 'torch') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
