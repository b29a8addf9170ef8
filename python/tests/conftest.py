"""Shared fixtures: the checkout's samples, the CLI binary, one pipeline, one local Ray cluster."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.chdir(ROOT)  # the tests name photos relative to the checkout, as the CLI tests do


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def photos() -> list[str]:
    """Ten held-out FairFace photos (five per class) and the scenes (several faces, none)."""
    fair = ROOT / "samples" / "fairface"
    picked = sorted((fair / "female").iterdir())[:5] + sorted((fair / "male").iterdir())[:5]
    scenes = sorted((ROOT / "samples" / "scenes").iterdir())
    return [str(p.relative_to(ROOT)) for p in picked + scenes if p.suffix.lower() in (".jpg", ".png")]


@pytest.fixture(scope="session")
def cli(root) -> Path:
    """The `facegender` binary of this checkout (built here if it is not yet)."""
    exe = Path(os.environ.get("FACEGENDER_CLI", root / "target" / "debug" / "facegender"))
    if "FACEGENDER_CLI" not in os.environ:
        subprocess.run(["cargo", "build", "--quiet", "-p", "facegender"], cwd=root, check=True)
    return exe


@pytest.fixture(scope="session")
def cli_json(cli, root):
    """`facegender predict --json` on photos, as parsed objects keyed by image path."""

    def run(paths, *extra):
        out = subprocess.run(
            [str(cli), "-q", "predict", "--json", *extra, *paths],
            cwd=root,
            capture_output=True,
            text=True,
        )
        assert out.returncode in (0, 3), out.stderr  # 3: some inputs unreadable
        return {o["image"]: o for o in map(json.loads, out.stdout.splitlines())}

    return run


@pytest.fixture(scope="session")
def pipeline(root):
    import facegender

    os.chdir(root)
    return facegender.Pipeline()


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster: the driver plus worker processes on two CPUs."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
