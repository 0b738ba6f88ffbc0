"""A JupyterLab server on 127.0.0.1 with a token, over a scratch copy of the notebooks, and Debian's Chromium."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import NOTEBOOKS, ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "build" / "screenshots"
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """(base URL, token) of a fresh JupyterLab; notebooks are copies, so autosave never touches the repo."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium; run it, or apt-get install chromium")
    work = tmp_path_factory.mktemp("lab")
    shutil.copytree(NOTEBOOKS, work / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    home = work / "home"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "ws"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    # Render every cell (JupyterLab 4 otherwise detaches cells scrolled out of view) and ask about no news.
    for plugin, settings in SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    port, token = _free_port(), secrets.token_hex(16)
    log = (work / "jupyter.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work / 'notebooks'}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"JupyterLab did not start:\n{(work / 'jupyter.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield base, token
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser page; when the test fails, its screenshot is kept in build/screenshots/ to look at."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    setattr(item, f"rep_{call.when}", outcome.get_result())


# -- running a lab in the page --------------------------------------------------------------------------------

def put_notebook(base: str, token: str, name: str, nb) -> None:
    """Write ``nb`` (an nbformat notebook) into the served folder as ``name``, through JupyterLab's contents API."""
    import urllib.request

    import nbformat

    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata.pop("jupytext", None)  # a scratch copy, paired with no text file
    body = json.dumps({"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(nb))}).encode()
    req = urllib.request.Request(f"{base}/api/contents/{name}?token={token}", data=body, method="PUT",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 201)


def small(lab: str):
    """The stored lab ``lab`` (e.g. "02_shared_space.ipynb") with the notebook tests' small sizes injected."""
    import nbformat
    from test_notebooks import PARAMETERS, inject

    return inject(nbformat.read(NOTEBOOKS / lab, as_version=4), PARAMETERS[lab])


# Every code cell has run once its prompt holds a number; a traceback in an output means Run All stopped there.
_ALL_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')];
  const failed = [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')]
    .some((el) => el.innerText.includes('Traceback (most recent call last)'));
  return failed || (prompts.length > 0 && prompts.every((p) => /\\[\\d+\\]/.test(p.innerText)));
}"""


def open_and_run_all(page, base: str, token: str, name: str, workspace: str, timeout_s: float = 600) -> None:
    """Open ``name`` in a workspace of its own, Run All once the kernel is idle, and wait until every cell ran.
    Run All can arrive before the kernel is wired to the notebook and then runs nothing, so it is retried."""
    page.goto(f"{base}/lab/workspaces/{workspace}/tree/{name}?reset&token={token}")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
    first_prompt = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt").first
    for _ in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:  # the first cell shows [*] or a number once Run All has reached the kernel
            page.wait_for_function("(el) => /\\[[\\d*]+\\]/.test(el.innerText)", arg=first_prompt.element_handle(),
                                   timeout=20_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; try again
            continue
    page.wait_for_function(_ALL_RAN, timeout=timeout_s * 1000)
    tracebacks = page.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)")
    assert tracebacks.count() == 0, tracebacks.first.inner_text()[-2000:]
    assert page.get_by_text("Error displaying widget").count() == 0


def expect_figures(page, n: int, timeout_s: float = 30) -> None:
    """The notebook's output areas show exactly ``n`` matplotlib figures (image/png outputs), each one loaded."""
    count = """() => [...document.querySelectorAll('.jp-Notebook .jp-OutputArea .jp-RenderedImage img')]
      .filter((img) => img.complete && img.naturalWidth > 0).length"""
    try:
        page.wait_for_function(f"() => ({count})() >= {n}", timeout=timeout_s * 1000)
    finally:
        shown = page.evaluate(count)
    assert shown == n, f"{shown} figures rendered, expected {n}"
