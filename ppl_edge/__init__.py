"""ppl-edge: Pose Prior Learner from unlabelled images to a live pose estimator.

`import ppl_edge` is cheap: it never imports torch, onnx, tensorrt or coremltools.
"""

from ppl_edge.errors import MissingDependencyError, PplEdgeError

__version__ = "0.1.0"

__all__ = ["PplEdgeError", "MissingDependencyError", "__version__"]
