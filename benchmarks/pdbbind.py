"""PDBBind time-split benchmark: ``discodock benchmark`` as a script (same options).

Usage (from the repository root; shared data beside the repository)::

    python benchmarks/pdbbind.py --data-dir ../shared/data/dsdp_pdbbind_timesplit_test \
        --split ../shared/data/splits/timesplit_test --samples 40 --steps 20 --pocket \
        --vina pocket --vina-subset 60 --out benchmarks/results/pdbbind

The unseen-receptor subset is read from ``timesplit_test_no_rec_overlap`` beside the split file. See
:mod:`discodock.benchmark` for what is measured and written, and :mod:`discodock.benchmark.run` for the
three-phase route (``--export-inputs``, ``python -m discodock.benchmark.sample_inputs``,
``--import-samples``) for a GPU machine without RDKit.
"""

from __future__ import annotations

import sys

from discodock.cli import main

if __name__ == "__main__":
    main(args=["benchmark", *sys.argv[1:]], prog_name="pdbbind.py")
