"""Reads `auditwheel show` on stdin; exits 0 when the platform tag auditwheel finds the
wheel consistent with is a manylinux tag of the same architecture and a glibc no newer than
the one given (argv[1], e.g. manylinux_2_28_x86_64). Used by scripts/wheels.sh."""

import re
import sys

ALIASES = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def parse(tag: str) -> tuple[tuple[int, int], str] | None:
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", tag)
    if m:
        return (int(m[1]), int(m[2])), m[3]
    m = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", tag)
    return (ALIASES[m[1]], m[2]) if m else None


shown = sys.stdin.read()
print(shown, end="")
found = re.search(r'consistent\s+with\s+the\s+following\s+platform\s+tag:\s+"([^"]+)"', shown)
want = parse(sys.argv[1])
got = parse(found[1]) if found else None
if want is None or got is None or got[1] != want[1] or got[0] > want[0]:
    print(f"_check_tag: auditwheel allows {found[1] if found else 'nothing'}, the wheel says {sys.argv[1]}", file=sys.stderr)
    sys.exit(1)
print(f"_check_tag: ok, {sys.argv[1]} (auditwheel: {found[1]})")
