"""The Rust core's unsafe code stays small and explained: Cargo.toml denies
`unsafe_op_in_unsafe_fn` (rustc, every build) and `undocumented_unsafe_blocks` (clippy);
this test holds the second without clippy, which CI does not run, and keeps intrinsics in
the one file written for them."""

import re
from pathlib import Path

RUST = Path(__file__).resolve().parent.parent / "rust"
UNSAFE = re.compile(r"\bunsafe\s*(\{|impl\b)")


def _missing_safety_comments(text: str) -> list[int]:
    lines = text.splitlines()
    bad = []
    for i, line in enumerate(lines):
        code = line.split("//", 1)[0]
        if not UNSAFE.search(code):
            continue
        # the comment sits on the line itself or on the lines just above (a multi-line
        # comment, or an expression the block is part of: `let x = unsafe { … }`)
        above = " ".join(lines[max(0, i - 4) : i + 1])
        if "SAFETY" not in above:
            bad.append(i + 1)
    return bad


def test_every_unsafe_block_says_why():
    missing = {p.name: n for p in sorted(RUST.rglob("*.rs")) if (n := _missing_safety_comments(p.read_text()))}
    assert not missing, f"unsafe without a `// SAFETY:` comment (file: lines): {missing}"


def test_the_check_finds_an_unexplained_block():
    assert _missing_safety_comments("fn f(p: *const f32) -> f32 {\n    unsafe { *p }\n}\n") == [2]
    assert _missing_safety_comments("// SAFETY: p is valid\nlet v = unsafe { *p };\n") == []


def test_vector_intrinsics_live_in_lanes_rs():
    users = sorted(p.name for p in RUST.rglob("*.rs") if re.search(r"std::arch::(x86_64|aarch64)", p.read_text()))
    assert users == ["lanes.rs"], users


def test_cargo_denies_the_unsafe_lints():
    cargo = (RUST.parent / "Cargo.toml").read_text()
    assert re.search(r'unsafe_op_in_unsafe_fn\s*=\s*"deny"', cargo)
    assert re.search(r'undocumented_unsafe_blocks\s*=\s*"deny"', cargo)
