"""Export and draw a checkpoint's learned prior: prior.json, prior.png, prior_evolution.png.

Examples:
  ppl-edge prior --checkpoint runs/small/latest.safetensors --out runs/small/prior
  ppl-edge prior --checkpoint CKPT --run runs/small --out DIR

prior.json holds the keypoint prior T (N, 2, xy in [-1, 1]), the connectivity W (N, N), the skeleton
edges derived from W and the memory shape. prior.png draws T with every link shaded by W and the
skeleton edges highlighted; prior_evolution.png shows T and W over training from the run folder's
prior_history.npz (--run, default: the checkpoint's folder), or the final prior only when it has
none.
"""

from __future__ import annotations

import argparse

from ppl_edge.cli import flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge prior``."""
    flags.add_checkpoint(parser)
    parser.add_argument(
        "--run",
        metavar="RUNDIR",
        help="run folder with prior_history.npz (default: the checkpoint's folder)",
    )
    parser.add_argument(
        "--panels", type=int, default=6, help="panels of prior_evolution.png (default 6)"
    )
    flags.add_out_folder(parser)


def run(args: argparse.Namespace) -> int:
    """Write prior.json and the two pictures."""
    import logging
    from pathlib import Path

    from ppl_edge.checkpoint import load_model
    from ppl_edge.errors import PplEdgeError
    from ppl_edge.train import plots, prior_io

    log = logging.getLogger(__name__)
    if args.panels < 1:
        raise PplEdgeError(f"--panels must be at least 1, got {args.panels}")
    run_dir = Path(args.run) if args.run else Path(args.checkpoint).parent
    if args.run and not run_dir.is_dir():
        raise PplEdgeError(f"run folder not found: {run_dir}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise PplEdgeError(f"--out {out} is a file; expected a folder (it is created if missing)")
    model, _ = load_model(args.checkpoint)  # before the folder: a bad checkpoint leaves nothing
    out.mkdir(parents=True, exist_ok=True)
    record = prior_io.model_prior_record(model, source=str(args.checkpoint))
    prior_io.write_prior(out / "prior.json", record)
    prior, weights = record["prior"], record["connectivity"]
    plots.plot_prior(prior, weights, out / "prior.png")
    history = prior_io.load_prior_history(run_dir)
    if history is None:
        log.warning(
            "%s has no %s: prior_evolution.png shows the final prior only",
            run_dir,
            prior_io.HISTORY_FILE,
        )
    plots.plot_prior_evolution(history, (prior, weights), out / "prior_evolution.png", args.panels)
    snapshots = 0 if history is None else len(history["steps"])
    print(
        f"prior of {record['num_keypoints']} keypoints, {len(record['edges'])} skeleton edges, "
        f"{snapshots} history snapshots -> {out}"
    )
    return 0
