"""Files shipped in the `assets` package: stylesheets, the default gate policy, templates."""

from __future__ import annotations

from pathlib import Path


def asset_path(name: str) -> Path:
    import assets

    return Path(assets.__file__).parent / name
