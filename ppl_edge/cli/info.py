"""Say what a model is and whether it can run here: an export folder, a manifest.json, an ONNX
graph, a TensorRT engine (with its .json sidecar) or a Core ML package.

Prints the manifest (keypoints N, memory M x K x D, input size and normalisation, names, precision,
batch), every artifact with its sha256 status, each graph's inputs and outputs (shapes and dtypes),
an engine's precision, batch profile, TensorRT and plugin versions and GPU, and which backends can
run it on this machine. Exits 1 when an artifact is changed or missing. Never imports torch.

examples:
  ppl-edge info models/ppl-small-humanoid
  ppl-edge info exports/small/keypoints_trt.fp16.engine
  ppl-edge info models/ppl-small-humanoid --json info.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge info``."""
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="export folder, manifest.json, .onnx, .engine or .mlpackage",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")


def _shape(shape: list) -> str:
    return (
        "("
        + ", ".join(
            "B" if i == 0 and d is None else "?" if d is None else str(d)
            for i, d in enumerate(shape)
        )
        + ")"
    )


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.2f} MiB"


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _manifest_lines(m: dict[str, Any]) -> list[str]:
    inp, mem = m["input"], m["memory"]
    ckpt = (m["checkpoint_sha256"] or "")[:12]
    batch = m["batch"]
    return [
        f"  model       {m['name']} (preset {m['preset']}, checkpoint {ckpt or '-'}, "
        f"ppl-edge {m['ppl_edge_version']})",
        f"  keypoints   N={m['keypoints']}: {_names(m['keypoint_names'])}; {m['edges']} edges",
        f"  memory      M={mem['banks']} banks x K={mem['entries']} entries x D={mem['dim']}",
        f"  input       '{inp['name']}' {inp['height']}x{inp['width']} {inp['color']} NCHW, "
        f"(x * {inp['scale']:.6g} - mean {inp['mean']}) / std {inp['std']}",
        "  joints      "
        + (_names(m["joint_names"], 12) if m["joint_names"] else "none (unnamed keypoints)"),
        f"  batch       {'dynamic' if batch['dynamic'] else 'fixed'}, max {batch['max']}",
        f"  precision   {m['precision']}, opset {m['opset'] or '-'}",
    ]


def _graph_lines(g: dict[str, Any]) -> list[str]:
    lines = [f"  {g['file']}  [{g['kind']}, {_size(g.get('bytes'))}]"]
    if "sidecar" in g:
        if g["sidecar"] is None:
            lines.append("    sidecar     none: precision, profile and TensorRT version unknown")
        else:
            lo, opt, hi = g["batch_profile"]
            plugin = (
                f"plugin v{g['plugin_version']}" if g["lookup"] == "plugin" else "native lookup"
            )
            lines += [
                f"    built       TensorRT {g['tensorrt']}, {g['precision']}, {plugin}, "
                f"on {g['gpu']} ({g['sm']})",
                f"    profile     batch {lo}..{hi} (opt {opt}), input {g['input_size']}",
                f"    engine      sha256 {g['engine_sha256']} (sidecar {g['sidecar']})",
            ]
            if g["plugin_library_here"] is not None:
                lines.append(f"    plugin lib  here: {g['plugin_library_here']}")
    if "error" in g:
        lines.append(f"    I/O         {g['error']}")
        return lines
    for io, tensors in (("in ", g["inputs"]), ("out", g["outputs"])):
        lines += [
            f"    {io} {t['name']:<22} {_shape(t['shape']):<18} {t['dtype']}" for t in tensors
        ]
    if "batch_profile" in g and "sidecar" not in g:
        lines.append(f"    profile     batch {g['batch_profile'][0]}..{g['batch_profile'][1]}")
    return lines


def _runs_lines(r: dict[str, Any]) -> list[str]:
    gpu = "yes" if r["gpu"] else f"none ({r['gpu_problem']})"
    lines = [f"  GPU         {gpu}"]
    for name, b in r["backends"].items():
        if b["unavailable"]:
            state = f"no: {b['unavailable']}"
        else:
            state = "yes" if b["artifact"] else "yes, but this model has no graph for it"
        lines.append(f"  {name:<11} {state}" + (f" [{b['artifact']}]" if b["artifact"] else ""))
    auto = r.get("auto")
    if auto is not None:
        picked = f"{auto['backend']} on {auto['file']}" if "backend" in auto else auto["error"]
        lines.append(f"  auto        {picked}")
    for backend, roles in r.get("refinement", {}).items():
        where = [
            f"{role} {'absent' if w is None else Path(w['file']).name + ' on ' + w['backend']}"
            for role, w in roles.items()
        ]
        lines.append(f"  refinement  with {backend}: {', '.join(where)}")
    return lines


def render(report: dict[str, Any]) -> str:
    """The report as text, one section per paragraph."""
    lines = [f"{report['model']}: {report['kind']}"]
    if "manifest" in report:
        lines += ["manifest " + report["manifest"]["path"], *_manifest_lines(report["manifest"])]
    elif "manifest_problem" in report:
        lines.append(f"manifest    none usable: {report['manifest_problem']}")
    if report.get("artifacts"):
        lines.append("artifacts")
        lines += [
            f"  {a['key']:<15} {a['file']:<28} {_size(a['bytes']):>10}  sha256 {a['sha256']}"
            for a in report["artifacts"]
        ]
    if report["graphs"]:
        lines.append("graphs")
        for graph in report["graphs"]:
            lines += _graph_lines(graph)
    lines += ["runs here", *_runs_lines(report["runs_here"])]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Describe the model; 1 when an artifact is changed or missing."""
    from ppl_edge.runtime.info import describe, problems

    report = describe(args.model)
    found = problems(report)
    report["problems"] = found
    print(render(report))
    if args.json:
        from ppl_edge.fileio import atomic_write_bytes

        text = json.dumps(report, indent=2, allow_nan=False) + "\n"
        atomic_write_bytes(Path(args.json), text.encode())
    if found:
        print(f"error: {'; '.join(found)}", file=sys.stderr)
    return 1 if found else 0
