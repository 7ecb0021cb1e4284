"""The page as a person uses it: `ditto2 serve` started as a process, driven by Playwright in Debian's headless
Chromium (scripts/fetch-chromium.sh, `make browser`): a bad upload is a message on the page, then a MIDI file is
uploaded, Generate pressed, and the DITTO-2 player gets a source and the grade appears. The screenshot is the README's
(DITTO2_SCREENSHOT=path keeps it)."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from midi_tune import write_midi

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("DITTO2_CHROMIUM", ROOT / ".browser" / "chromium"))

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no headless Chromium at {CHROMIUM}: `make browser` "
                                "fetches Debian's chromium-headless-shell (apt-get download, no root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    pytest.importorskip("gradio")
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ditto2.cli", "serve", "--port", str(port), "--out",
                             str(tmp_path / "runs"), "--threads", "1"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            if proc.poll() is not None:
                raise RuntimeError(f"ditto2 serve exited: {(tmp_path / 'serve.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("ditto2 serve did not answer within 120 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def wait_for(check, seconds: float, what: str):
    end = time.time() + seconds
    while time.time() < end:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


def test_upload_a_midi_press_generate_and_hear_it(server, tmp_path):
    from playwright.sync_api import sync_playwright

    junk = tmp_path / "broken.mid"
    junk.write_text("not a MIDI file")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.goto(server)
            page.wait_for_selector("#generate", timeout=60_000)
            page.get_by_test_id("melody-radio-label").click()
            upload = page.locator("#melody_file input[type=file]")
            upload.set_input_files(str(junk))
            page.wait_for_timeout(1000)
            page.locator("#generate").click()
            status = wait_for(lambda: "⚠️" in page.locator("#status").inner_text() and
                              page.locator("#status").inner_text(), 120, "the bad upload's message")
            assert "Traceback" not in status and "broken.mid" in status  # one line naming the file
            page.locator("#melody_file button[aria-label='Clear']").first.click()
            upload.set_input_files(str(write_midi(tmp_path / "tune.mid")))
            page.wait_for_timeout(1000)
            page.locator("#generate").click()
            players = page.locator("#ditto2_audio audio")  # Playwright's CSS reaches the player's shadow DOM
            wait_for(lambda: any(players.evaluate_all("els => els.map(a => a.src)")), 180, "the DITTO-2 audio")
            wait_for(lambda: "accuracy_pct" in page.locator("#grades").inner_text(), 30, "the grade")
            assert "generation" in page.locator("#status").inner_text()
            assert any(page.locator("#uncontrolled audio").evaluate_all("els => els.map(a => a.src)"))
            shot = os.environ.get("DITTO2_SCREENSHOT") or str(tmp_path / "page.png")
            page.screenshot(path=shot, full_page=True)
            assert Path(shot).stat().st_size > 10_000
        finally:
            browser.close()
