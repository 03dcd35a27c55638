"""The banner a network prints when it starts training (the article shows NeuroFlow's)."""

from __future__ import annotations

import json
import math

LOGO = r"""
                                   _____ __
      ____  ___  __  ___________  / __/ / /___ _      __
     / __ \/ _ \/ / / / ___/ __ \/ /_/ / / __ \ | /| / /
    / / / /  __/ /_/ / /  / /_/ / __/ / / /_/ / |/ |/ /
   /_/ /_/\___/\__,_/_/   \____/_/ /_/_/\____/|__/|__/
"""


def _row(label: str, value: str) -> str:
    return f"{label:>19} : {value}"


def banner(net, version: str) -> str:
    """Version, network, weight count and size, precision, loss, update rule, layout."""
    itemsize = 4 if net.dtype_name == "f32" else 8
    n = net.num_weights
    lines = [LOGO.rstrip("\n"), f"{'':>50}{version}", ""]
    lines.append(_row("Network", f"neuroflow.Network ({net.backend}, {net.dtype_name})"))
    lines.append(_row("Weights", f"{n:,} (≈ {n * itemsize / 2**20:.5f} MB)"))
    lines.append(_row("Precision", "float32" if itemsize == 4 else "float64"))
    lines.append("")
    lines.append(_row("Loss", repr(net.layout[-1])))
    lines.append(_row("Update", repr(net.settings.update_rule)))
    lines.append("")
    specs = json.loads(net.spec_json)["layers"]
    descriptions = [layer.describe(spec) for layer, spec in zip(net.layout[:-1], specs)]
    lines.append(_row("Layout", descriptions[0]))
    lines.extend(" " * 22 + d for d in descriptions[1:])
    if net.settings.pretty_print:
        lines.append("")
        lines.extend(" " * 22 + row for row in pretty_columns(net))
    return "\n".join(lines) + "\n"


def pretty_columns(net) -> list[str]:
    """One column of O's per layer, taller for wider layers (log scale), centred."""
    spec = json.loads(net.spec_json)
    sizes = [math.prod(spec["input"])] + [math.prod(layer["dim_out"]) for layer in spec["layers"]]
    heights = [max(1, min(11, round(math.log2(s + 1)))) for s in sizes]
    top = max(heights)
    rows = []
    for r in range(top):
        cells = []
        for h in heights:
            pad = (top - h) // 2
            cells.append("O" if pad <= r < pad + h else " ")
        rows.append("     ".join(cells).rstrip())
    return rows
