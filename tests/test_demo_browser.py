"""translate demo in a real headless browser (Debian's chromium and chromium-driver, driven by selenium):
upload, translate, the strength slider, a corrupt upload. Screenshots go to the test's folder, and to
docs/ when TRANSLATE_SCREENSHOTS names a folder (that is how docs/demo-*.png were made)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("no chromium and chromedriver here (.ci/run installs Debian's chromium and chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT = 120  # seconds for a page element; a slow CI machine translates a tiny net in well under that


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page(demo_models, tmp_path_factory):
    root, ckpt, faces = demo_models
    port = _free_port()
    log = (tmp_path_factory.mktemp("demo-log") / "demo.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "translate.cli", "demo", ckpt, faces, "--port", str(port),
                             "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + WAIT
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"translate demo did not start (exit {proc.poll()}); see {log.name}")
            time.sleep(0.5)
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver, url, root
    driver.quit()
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _find(driver, selector: str):
    """The element, once the app (rendered by JavaScript) has drawn it."""
    return WebDriverWait(driver, WAIT).until(lambda d: (d.find_elements(By.CSS_SELECTOR, selector) or [False])[0])


def _picture(path: Path, size: tuple[int, int], seed: int) -> str:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return str(path)


def _src(driver, selector: str, old: str | None = None) -> str:
    """The src of the image under `selector`, once there is one (and it is not `old`)."""
    def ready(d):
        found = d.find_elements(By.CSS_SELECTOR, f"{selector} img")
        src = found[0].get_attribute("src") if found else None
        return src if src and src != old else False
    return WebDriverWait(driver, WAIT).until(ready)


def _fetch(src: str) -> np.ndarray:
    with urllib.request.urlopen(src, timeout=30) as response:
        return np.asarray(Image.open(BytesIO(response.read())).convert("RGB")).astype(int)


def _shot(driver, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / name))
    folder = os.environ.get("TRANSLATE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(folder) / name)


def test_upload_translate_and_see_the_output(page, tmp_path: Path):
    driver, url, _ = page
    driver.get(url)
    source = _picture(tmp_path / "photo.png", (64, 48), seed=1)
    _find(driver, "#images input[type=file]").send_keys(source)
    _find(driver, "#translate").click()
    out = _fetch(_src(driver, "#output"))
    assert out.shape == (48, 64, 3)  # the input's own size
    assert np.abs(out - np.asarray(Image.open(source)).astype(int)).mean() > 1
    WebDriverWait(driver, WAIT).until(lambda d: "translated 1 image" in d.find_element(By.ID, "status").text)
    _shot(driver, tmp_path, "demo-translate.png")


def test_a_corrupt_upload_shows_the_error_in_the_page(page, tmp_path: Path):
    driver, url, _ = page
    driver.get(url)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a real jpeg")
    _find(driver, "#images input[type=file]").send_keys(str(bad))
    _find(driver, "#translate").click()
    WebDriverWait(driver, WAIT).until(lambda d: "error:" in d.find_element(By.ID, "status").text)
    assert "broken.jpg" in driver.find_element(By.ID, "status").text


def test_the_strength_slider_changes_the_face(page, tmp_path: Path):
    driver, url, _ = page
    driver.get(url)
    _find(driver, "button[role=tab]")
    next(t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text == "Attribute").click()
    # the paper's raw output: a net trained for two batches leaves no footprint above the noise floor to blend
    next(o for o in _find(driver, "#blend").find_elements(By.CSS_SELECTOR, "label") if o.text.strip() == "none").click()
    _find(driver, "#target input[type=file]").send_keys(
        _picture(tmp_path / "target.png", (64, 64), seed=2))
    _find(driver, "#donor input[type=file]").send_keys(
        _picture(tmp_path / "donor.png", (64, 64), seed=3))
    first_src = _src(driver, "#moved")
    first = _fetch(first_src)
    slider = _find(driver, "#strength input[type=range]")  # dragged to 0, as a user would
    driver.execute_script("const e = arguments[0]; Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "
                          "'value').set.call(e, '0'); e.dispatchEvent(new Event('input', {bubbles: true})); "
                          "e.dispatchEvent(new Event('change', {bubbles: true}));", slider)
    second = _fetch(_src(driver, "#moved", old=first_src))
    assert second.shape == first.shape and np.abs(second - first).max() > 0
    _shot(driver, tmp_path, "demo-attribute.png")
