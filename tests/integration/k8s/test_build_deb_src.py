"""tests/support/k8s/deb_src.sh: the control-plane build's deb-src entries come from the machine's
own Debian `deb` entries (no mirror host in the repo), on apt configuration trees built here."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DERIVE = REPO / "tests" / "support" / "k8s" / "deb_src.sh"


def derive(apt_dir: Path) -> str:
    done = subprocess.run(["bash", str(DERIVE), str(apt_dir), "bookworm"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def stanzas(text: str) -> list[str]:
    return [s.strip() for s in text.split("\n\n") if s.strip()]


def test_deb822_debian_entries_become_deb_src_and_third_party_ones_do_not(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "# a comment\n"
        "URIs: http://archive.test/debian\n"
        "Suites: bookworm bookworm-updates trixie\n"
        "Components: main contrib\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb\n"
        "URIs: http://archive.test/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
        "Signed-By:\n"
        " -----BEGIN PGP PUBLIC KEY BLOCK-----\n"
        " .\n"
        " mQINBGPL\n"
        " -----END PGP PUBLIC KEY BLOCK-----\n")
    (tmp_path / "sources.list.d" / "vendor.sources").write_text(
        "Types: deb\nURIs: https://vendor.test/node_20.x\nSuites: nodistro\nComponents: main\n\n"
        "Types: deb\nEnabled: no\nURIs: http://off.test/debian\nSuites: bookworm\nComponents: main\n")
    # apt reads only *.list and *.sources: a disabled file is not an entry
    (tmp_path / "sources.list.d" / "old.sources.disabled").write_text(
        "Types: deb\nURIs: http://disabled.test/debian\nSuites: bookworm\nComponents: main\n")

    assert stanzas(derive(tmp_path)) == [
        "Types: deb-src\nURIs: http://archive.test/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg",
        "Types: deb-src\nURIs: http://archive.test/debian-security\nSuites: bookworm-security\n"
        "Components: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGPL\n"
        " -----END PGP PUBLIC KEY BLOCK-----",
    ]


def test_one_line_deb_entries_become_deb822_deb_src(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# one-line entries\n"
        "deb http://archive.test/debian bookworm main non-free-firmware\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://archive.test/sec bookworm-security main\n"
        "deb-src http://archive.test/debian bookworm main\n"
        "deb https://vendor.test/apt cloud-sdk-bookworm main\n"
        "deb http://archive.test/debian trixie main\n")
    (tmp_path / "sources.list.d" / "extra.list").write_text("deb [trusted=yes] http://local.test/debian bookworm-backports main\n")

    assert stanzas(derive(tmp_path)) == [
        "Types: deb-src\nURIs: http://archive.test/debian\nSuites: bookworm\nComponents: main non-free-firmware",
        "Types: deb-src\nURIs: http://archive.test/sec\nSuites: bookworm-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/k.gpg",
        "Types: deb-src\nURIs: http://local.test/debian\nSuites: bookworm-backports\nComponents: main\nTrusted: yes",
    ]


def test_nothing_to_derive_prints_nothing(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "vendor.sources").write_text(
        "Types: deb\nURIs: https://vendor.test/node_20.x\nSuites: nodistro\nComponents: main\n")
    assert derive(tmp_path) == ""
    assert derive(tmp_path / "missing") == ""
