"""A real headless Chromium under Selenium, and the service as a process, for the web
page's tests and its benchmark.

Chromium and its driver are Debian's (``chromium``, ``chromium-driver``; ``make test``
installs them), named by path so that Selenium never looks for or downloads a driver.
Every request the page makes is in Chromium's performance log (the DevTools protocol's
``Network.requestWillBeSent`` events), so a test can check that all of them go to the
service.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.fuzz import running_service
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService

DESKTOP = (1100, 1500)
PHONE = (390, 844)  # CSS pixels of a common phone


def _find(*names: str) -> str:
    for name in names:
        if found := shutil.which(name):
            return found
    raise RuntimeError(
        f"{names[0]} is not installed: run `make chromium` (or `make test`, which installs "
        "Debian's chromium and chromium-driver)"
    )


def chromium(downloads: Path, size: tuple[int, int] = DESKTOP) -> webdriver.Chrome:
    """A headless Chromium that logs its network requests and saves downloads in
    ``downloads``."""
    options = Options()
    options.binary_location = _find("chromium", "chromium-browser")
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",  # the window's width is the page's (as on a phone)
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={size[0]},{size[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(
        options=options, service=DriverService(executable_path=_find("chromedriver"))
    )
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return driver


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """The URLs of the requests the page made since the last call (the log is drained)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@contextmanager
def service_process(folder: Path, **settings: str) -> Iterator[str]:
    """``python api/app.py`` with these settings, as ``bench fuzz`` runs it (its log in
    ``folder``), once ``/health`` answers: its URL."""
    with running_service(folder, **settings) as service:
        yield service.url
