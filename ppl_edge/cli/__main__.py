"""``python -m ppl_edge.cli`` (e.g. ``torchrun --nproc_per_node 2 -m ppl_edge.cli train ...``)."""

import sys

from ppl_edge.cli import main

sys.exit(main())
