"""`mrc load` refuses unbounded load and an unserved model before sending anything."""

from __future__ import annotations

import pytest

from tests.support.cli import tree_digest


@pytest.mark.parametrize("args,needle", [
    (["--rate", "0"], "--rate"),
    (["--rate", "5000"], "--rate"),
    (["--duration", "99999"], "--duration"),
    ([], "not served"),
])
def test_load_bad_input(synthetic_ws, mrc, args, needle):
    before = tree_digest(synthetic_ws)
    result = mrc("load", "breast-cancer", *args, "--workspace", str(synthetic_ws))
    assert result.returncode == 2 and needle in result.stderr and result.stderr.count("\n") == 1
    assert tree_digest(synthetic_ws) == before
