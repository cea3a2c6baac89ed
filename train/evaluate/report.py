"""Evaluate a checkpoint into a folder (``ppl-edge eval``): one validated :class:`EvalConfig`, one
call (:func:`evaluate_to_folder`) that writes ``metrics.json``, ``metrics.md``, ``overlays.png``
and, with occlusion, ``occlusion.{md,csv,json,png}`` and ``occlusion_iterations.png``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.fileio import atomic_write_bytes
from ppl_edge.train.evaluate import PROTOCOLS

log = logging.getLogger(__name__)

OVERLAY_IMAGES = 16
REFINE_MODES = ("image", "memory")


@dataclass(frozen=True)
class EvalConfig:
    """Everything one evaluation needs, checked on construction."""

    checkpoint: str
    out: str
    data: str = "synthetic:humanoid"
    data_options: dict[str, Any] = field(default_factory=dict)
    protocol: str = "auto"
    iterations: int = 4
    refine: str = "image"
    occlusion: bool = False
    n_fit: int = 2000
    n_test: int = 1000
    n_occlusion: int = 200
    batch_size: int = 64
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("n_fit", "n_test", "n_occlusion", "batch_size"):
            if getattr(self, name) <= 0:
                raise PplEdgeError(
                    f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}"
                )
        if self.num_workers < 0:
            raise PplEdgeError(f"--num-workers must be >= 0, got {self.num_workers}")
        if self.iterations < 0:
            raise PplEdgeError(f"--iterations must be >= 0, got {self.iterations}")
        check_choice(self.protocol, ("auto", *PROTOCOLS), "protocol")
        check_choice(self.refine, REFINE_MODES, "refinement")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise PplEdgeError(f"--out {out} exists and is not a folder")


@dataclass
class EvalReport:
    """What :func:`evaluate_to_folder` measured and wrote."""

    metrics: dict
    out: Path
    edges: list
    occlusion: Any = None  # occlusion.OcclusionResult or None

    def lines(self) -> list[str]:
        """The headline numbers, as printed by ``ppl-edge eval``."""
        m = self.metrics
        scale, unit = (1.0, "px@256") if m["protocol"] == "taichi" else (100.0, "% of image")
        lines = [
            f"{m['protocol']} error {m['error'] * scale:.2f} {unit} (mean-pose baseline "
            f"{m['baseline_mean_pose'] * scale:.2f}), PDJ@0.2 {100 * m['pdj']:.1f}% on "
            f"{m['n_test']} test images -> {self.out}"
        ]
        if "keypoints_on_figure" in m:

            def pct(value):
                return "n/a" if value is None else f"{100 * value:.1f}%"

            lines.append(
                f"on the figure (mask dilated 1 px): keypoints {pct(m['keypoints_on_figure'])}, "
                f"skeleton length {pct(m['skeleton_on_figure'])} ({len(self.edges)} edges)"
            )
        if m.get("keypoint_identity") is not None:
            shares = [v for v in m["keypoint_identity_per_joint"] if v is not None]
            lines.append(
                f"keypoint identity (the keypoint nearest a joint is its usual one): "
                f"{100 * m['keypoint_identity']:.1f}% of images, mean over joints; lowest "
                f"{100 * min(shares):.1f}%"
            )
        if "named_error" in m:
            lines.append(
                f"named joints ({len(m['named_joints'])}, no regression): error "
                f"{100 * m['named_error']:.2f} % of image, "
                f"{100 * m['named_error_swap_aligned']:.2f} after left/right alignment "
                f"(left and right swapped in {100 * m['named_swap_rate']:.1f}% of images), "
                f"PCK@0.1 {100 * m['named_pck']:.1f}%"
            )
        if self.occlusion is not None:
            lines.append(self.occlusion.to_markdown().rstrip("\n"))
        return lines


def _measure(cfg: EvalConfig, model, device: str):
    """Run the protocol (and the occlusion protocol) on the model: (metrics, test predictions,
    occlusion result or None)."""
    import torch

    from ppl_edge.train import occlusion
    from ppl_edge.train.evaluate import run

    fit_data, test_data = run.build_splits(
        cfg.data, model.cfg.img_size, cfg.n_fit, cfg.n_test, cfg.seed, cfg.data_options
    )
    layout = run.layout_for(cfg.data, cfg.protocol, test_data)
    with torch.inference_mode():
        metrics, fit, test_pred = run.run_evaluation(
            model, fit_data, test_data, layout, cfg.n_fit, cfg.n_test, cfg.batch_size,
            cfg.iterations, cfg.refine, keep=OVERLAY_IMAGES, num_workers=cfg.num_workers,
        )  # fmt: skip
        occ = None
        if cfg.occlusion:
            occ = occlusion.run_occlusion(
                model, fit, test_data, layout.swap_pairs, min(cfg.n_occlusion, cfg.n_test),
                cfg.batch_size, cfg.iterations, cfg.refine, cfg.seed, keep=1,
                num_workers=cfg.num_workers,
            )  # fmt: skip
    return metrics, test_pred, occ


def named_metrics(model, cfg: EvalConfig, pred) -> dict:
    """Error of the model's *named* joints against the ground truth of the same names, with no
    regression: a template prior's keypoints, or the map ``ppl-edge name`` stored. Strict (no
    left / right swap) and after the protocol's per-image swap alignment; % of the image, PCK@0.1.

    Returns:
        {} when the model names no joints or the data does not name them.
    """
    import numpy as np

    from ppl_edge.templates import template_of
    from ppl_edge.train.data import build_dataset
    from ppl_edge.train.evaluate.common import swap_joints
    from ppl_edge.train.naming import load_joint_map

    template, jmap = template_of(model.cfg.prior), load_joint_map(cfg.checkpoint)
    if (template is None and jmap is None) or pred.gt is None:
        return {}
    kp = pred.keypoints[0]  # (S, N, 2) in [0, 1]
    if jmap is not None:
        names, joints = jmap.names, (jmap.apply(kp * 2 - 1) + 1) / 2
    else:
        names, joints = template.names, kp
    data = build_dataset(cfg.data, model.cfg.img_size, split="test", seed=cfg.seed, length=1,
                         **cfg.data_options)  # fmt: skip
    have = list(getattr(data, "joint_names", ()) or ())
    if not set(names) <= set(have):
        log.warning("the data names no joints %s...: no named-joint error", list(names)[:3])
        return {}
    gt = pred.gt[:, [have.index(n) for n in names]]
    pairs = [(i, names.index("r_" + n[2:])) for i, n in enumerate(names)
             if n.startswith("l_") and "r_" + n[2:] in names]  # fmt: skip
    d = np.linalg.norm(joints - gt, axis=-1)  # (S, J)
    ds = np.linalg.norm(joints - swap_joints(gt, pairs), axis=-1)
    swapped = ds.mean(1) < d.mean(1)  # (S,) the model's left and right are the other way round
    aligned = np.where(swapped[:, None], ds, d)
    return {
        "named_joints": list(names),
        "named_error": float(d.mean()),
        "named_error_swap_aligned": float(aligned.mean()),
        "named_swap_rate": float(swapped.mean()),
        "named_pck": float((d < 0.1).mean()),
        "named_error_per_joint": {n: round(100 * float(v), 3) for n, v in zip(names, d.mean(0))},
    }


def evaluate_to_folder(cfg: EvalConfig) -> EvalReport:
    """Evaluate ``cfg.checkpoint`` on ``cfg.data`` and write the metrics and pictures to
    ``cfg.out``.

    Raises:
        PplEdgeError: unlabelled data, an impossible combination, a bad checkpoint.
    """
    import torch

    from ppl_edge.checkpoint import load_model
    from ppl_edge.skeleton import edges_from_weights
    from ppl_edge.train import plots
    from ppl_edge.train.evaluate import run

    # refuse unlabelled data and impossible combinations before any work
    if run.layout_for(cfg.data, cfg.protocol).protocol != "h36m" and cfg.occlusion:
        raise PplEdgeError(
            "--occlusion is scored with the h36m-style regressor; use --protocol h36m"
        )
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, _ = load_model(cfg.checkpoint, device)
    edges = edges_from_weights(model.connectivity.matrix().detach().cpu().numpy())
    metrics, test_pred, occ = _measure(cfg, model, device)
    metrics = {"checkpoint": str(cfg.checkpoint), "data": cfg.data, **metrics}
    metrics.update(named_metrics(model, cfg, test_pred))
    if occ is not None:
        metrics["occlusion"] = occ.to_json()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    atomic_write_bytes(out / "metrics.md", metrics_markdown(metrics).encode())
    plots.plot_overlays(
        test_pred.images[0],
        test_pred.keypoints[0, :OVERLAY_IMAGES] * 2 - 1,
        edges,
        out / "overlays.png",
        title=f"{cfg.data}: predicted keypoints, learned skeleton",
    )
    if occ is not None:
        occ.write(out)
        plots.plot_occlusion_curves(occ.labels, occ.errors, out / "occlusion.png", occ.mode)
        plots.plot_occlusion_iterations(occ.examples, edges, out / "occlusion_iterations.png")
    log.info("wrote %s", ", ".join(sorted(p.name for p in out.iterdir())))
    return EvalReport(metrics, out, edges, occ)


def metrics_markdown(metrics: dict) -> str:
    """A short Markdown table of the headline numbers (fractions printed x100)."""
    scale = 1.0 if metrics["protocol"] == "taichi" else 100.0
    rows = [
        ("error", metrics["error"] * scale),
        ("error, memory-refined keypoints", metrics["error_memory_refined"] * scale),
        ("mean-pose baseline", metrics["baseline_mean_pose"] * scale),
        (f"PDJ@{metrics['pdj_fraction']} ({metrics['pdj_reference']}), %", 100 * metrics["pdj"]),
    ]
    rows += [
        (f"error at iteration {i} ({metrics['mode']} refinement)", e * scale)
        for i, e in enumerate(metrics["error_per_iteration"])
        if i > 0
    ]
    for key, name in (("bplp_c", "BPLP-C"), ("bplp_c_gt", "BPLP-C of ground truth")):
        if key in metrics:
            rows.append((name, float("inf") if metrics[key] is None else metrics[key]))
    for key, name in (
        ("keypoints_on_figure", "keypoints on the figure (mask dilated 1 px), %"),
        ("skeleton_on_figure", "skeleton length on the figure (mask dilated 1 px), %"),
        ("keypoint_identity", "keypoint identity (nearest keypoint is the usual one), %"),
    ):
        if key in metrics:
            rows.append((name, float("nan") if metrics[key] is None else 100 * metrics[key]))
    names = metrics.get("joint_names") or []
    for i, value in enumerate(metrics.get("error_per_joint") or []):
        name = names[i] if i < len(names) else f"joint {i}"
        rows.append((f"error at {name}", float("nan") if value is None else value * scale))
    unit = "pixels at 256" if scale == 1.0 else "% of image size"
    head = [
        f"Protocol **{metrics['protocol']}** on `{metrics.get('data', '?')}`: fit on "
        f"{metrics['n_fit']} train_reg images, scored on {metrics['n_test']} test images; "
        f"errors in {unit}.",
        "",
        "| metric | value |",
        "|---|---:|",
    ]
    return "\n".join(head + [f"| {k} | {v:.2f} |" for k, v in rows]) + "\n"
