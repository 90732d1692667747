"""`deblurdiff demo --quick` end to end, and its page rendered in headless Chromium."""
import re
import shutil
import subprocess

import pytest

from deblurdiff.cli import main
from deblurdiff.commands.demo import EXPOSURE_METHODS, IMAGE_METHODS, VIDEO_METHODS, _label
from deblurdiff.methods import shipped_checkpoint
from deblurdiff.api import checkpoint_name

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--quick", "--quiet"]) == 0
    return out


def test_page_shows_every_shipped_method(demo_page):
    page = (demo_page / "index.html").read_text()
    for name, backbone in IMAGE_METHODS + VIDEO_METHODS + EXPOSURE_METHODS:
        label = _label(name, backbone)
        if shipped_checkpoint(checkpoint_name(name, backbone)).is_dir() or name in ("identity", "blind"):
            assert f"<td>{label}</td>" in page, f"{label} missing from the metrics tables"
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all((demo_page / s).is_file() for s in sources)
    assert (demo_page / "benchmark" / "manifest.json").is_file()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_every_image_renders_in_chromium(demo_page, tmp_path):
    page = demo_page / "index.html"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--allow-file-access-from-files",
         "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    images = len(re.findall(r"<img ", page.read_text()))
    assert f'data-images="{images}"' in dom, "the page's load handler did not run"
    assert 'data-broken="0"' in dom, "some images failed to render"
