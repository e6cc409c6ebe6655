"""Installing the Debian packages a test needs, the way the Slurm suite installs Slurm:
apt-get when something is missing; a skip with the reason only where that is impossible."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def ensure_packages(packages: list[str], *, missing: bool) -> None:
    """apt-get install ``packages`` when ``missing``; skip the test (naming them and why) when
    apt-get is not usable here (not root, no apt-get) or fails."""
    if not missing:
        return
    names = " ".join(packages)
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"{names} missing and apt-get is not usable here (needs root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *packages],
            env=env,
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        tail = exc.stderr.decode(errors="replace").strip()[-300:]
        pytest.skip(f"apt-get could not install {names}: {tail}")
