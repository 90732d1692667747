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


def test_demo_runs_a_checkpoint_at_its_own_steps_up_to_the_cap(tmp_path):
    """VDD and DIVD ship sampling in one step (their best measured setting): the demo must not run
    them at its larger cap; a checkpoint whose default exceeds the cap gets the cap."""
    from types import SimpleNamespace

    from deblurdiff.commands.demo import DEMO_STEPS, Demo

    class Fake:
        def __init__(self, name, config):
            self.name, self.model, self.calls = name, SimpleNamespace(config=config), []

        def deblur(self, x, **kw):
            self.calls.append(kw["steps"])
            return x

    demo = Demo(tmp_path, SimpleNamespace(steps=None, quiet=True))
    for name, config, expected in (("vdd", {"steps": 1}, 1), ("divd", {"default_steps": 1}, 1),
                                   ("divd", {"default_steps": 50}, DEMO_STEPS["divd"]),
                                   ("vdm-md", {"default_steps": 1000}, DEMO_STEPS["vdm-md"])):
        fake = Fake(name, config)
        demo.run_method(fake, None)
        assert fake.calls == [expected], name
    demo.args.steps = 3
    fake = Fake("vdd", {"steps": 1})
    demo.run_method(fake, None)
    assert fake.calls == [3]  # --steps wins
