"""`neuroflow train cifar10 --preset speed` with airbench94_muon's optimizer choices at airbench93's
widths, as run for docs/experiments.md §3 "Muon" (commit d318d88). Its builder has since moved
into the library as `muon_net` (python/neuroflow/apps/cifar.py; a check built both and found
equal layer specs and initial weights), which is `--preset speed` since commit 40b9cab; this
script now calls it. Env: MU_BATCH (2000), MU_WIDTHS ("64,128,128": added as --width 5),
MU_LR (0.24)."""
import os
import sys

from neuroflow.apps import cifar as C
from neuroflow.apps.cli import main

LR = float(os.environ.get("MU_LR", C.MUON_LR))


def speed_muon(data, batch_size, iterations, seed, backend, peak=None, **kw):
    return C.muon_net(data, batch_size, iterations, seed, backend, peak=LR if peak is None else peak, **kw)


C.SPEED_WIDTHS.append(tuple(int(v) for v in os.environ.get("MU_WIDTHS", "64,128,128").split(",")))
C.PRESETS["speed"] = C.Preset(speed_muon, int(os.environ.get("MU_BATCH", 2000)), 8, "flip", True, has_widths=True)
sys.exit(main(sys.argv[1:]))
