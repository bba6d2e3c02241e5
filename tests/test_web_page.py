"""The web page at ``/``, in a real headless Chromium against the service as a process,
and the API endpoints it relies on (``/embed``, ``refinement_steps`` and
``cosine_by_step``, ``.npy`` and ``.parquet`` uploads, a job's Parquet and report).

The service runs with the real default model and 2 refinement steps, quality judged by
the OpenAI generator against the local OpenAI-compatible server. After every browser
test, every request the page made is checked to have gone to the service. With
``SCREENSHOTS_DIR`` set, the tests save the page's screenshots there (the README's come
from ``SCREENSHOTS_DIR=docs/images``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from embed2prompt.testing import OpenAITestServer
from tests.browser import PHONE, chromium, requested_urls, service_process
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.slow  # a real Chromium and a service process (about a minute)

KEY = "page-key-0123456789"
STEPS = 2
WAIT_S = 60  # the longest any step of the page may take on a busy two-core machine
TEXT = "How do I reset my password?"


@pytest.fixture(scope="module")
def service(
    api_server: OpenAITestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("page-service")
    with service_process(
        folder,
        API_KEY=KEY,
        EMBED2PROMPT_REFINEMENT_STEPS=str(STEPS),
        EMBED2PROMPT_GENERATOR="openai",
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=api_server.url,
        EMBED2PROMPT_GENERATION_MAX_TOKENS="16",
        EMBED2PROMPT_NUM_VARIANTS="2",
    ) as url:
        yield url


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(downloads: Path) -> Iterator[webdriver.Chrome]:
    browser = chromium(downloads)
    yield browser
    browser.quit()


@pytest.fixture
def page(driver: webdriver.Chrome, service: str) -> Iterator[webdriver.Chrome]:
    """The page opened with the key already given; after the test, every request the
    page made must have gone to the service."""
    _open_afresh(driver, f"{service}/#try")
    _give_key(driver, KEY)
    _wait(driver, lambda d: not d.find_element(By.ID, "key-form").is_displayed())
    yield driver
    _assert_only_the_service(driver, service)


def _open_afresh(driver: webdriver.Chrome, url: str) -> None:
    """The page at ``url`` as a new visitor sees it: nothing in its storage."""
    driver.get(url)
    driver.execute_script("sessionStorage.clear(); localStorage.clear();")
    driver.refresh()


def _assert_only_the_service(driver: webdriver.Chrome, service: str) -> None:
    urls = requested_urls(driver)
    assert urls, "the performance log recorded no request"
    elsewhere = [
        url
        for url in urls
        if not (url == service or url.startswith(f"{service}/"))
        and not url.startswith(("data:", "blob:"))
    ]
    assert elsewhere == []


def _wait(driver: webdriver.Chrome, condition: Any, timeout: float = WAIT_S) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def _give_key(driver: webdriver.Chrome, key: str) -> None:
    field = _wait(driver, lambda d: d.find_element(By.ID, "key"))
    field.clear()
    field.send_keys(key, Keys.ENTER)


def _text(driver: webdriver.Chrome, element_id: str) -> str:
    text: str = driver.find_element(By.ID, element_id).text
    return text


def _api(service: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        service + path,
        data=data,
        method=method,
        headers={"X-API-Key": KEY, "Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    if raw[:4] == b"PAR1":
        return status, raw
    return status, json.loads(raw)


def _screenshot(driver: webdriver.Chrome, name: str) -> None:
    """The whole page (beyond the window too) as ``SCREENSHOTS_DIR/name``, when set."""
    folder = os.environ.get("SCREENSHOTS_DIR")
    if not folder:
        return
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / name).write_bytes(base64.b64decode(shot["data"]))


# The page in a browser ---------------------------------------------------------------


def test_a_wrong_key_is_refused_next_to_the_key_field(
    driver: webdriver.Chrome, service: str
) -> None:
    _open_afresh(driver, f"{service}/")
    assert driver.find_element(By.ID, "key-form").is_displayed()  # asked for at once
    _give_key(driver, "not-the-key")
    error = _wait(driver, lambda d: d.find_element(By.ID, "key-error").text or None)
    assert "refused the API key" in error
    assert driver.find_element(By.ID, "key").get_attribute("aria-invalid") == "true"
    assert driver.execute_script("return sessionStorage.length") == 0  # not kept
    _give_key(driver, KEY)
    _wait(driver, lambda d: not d.find_element(By.ID, "key-form").is_displayed())
    assert driver.execute_script("return Object.values(sessionStorage)") == [KEY]
    assert driver.execute_script("return localStorage.length") == 0  # only this tab
    assert KEY not in driver.current_url
    _assert_only_the_service(driver, service)


def test_a_typed_text_comes_back_as_the_apis_prompt(page: webdriver.Chrome, service: str) -> None:
    text = page.find_element(By.ID, "text")
    text.clear()
    text.send_keys(TEXT)
    page.find_element(By.ID, "steps").send_keys(Keys.ENTER)  # the keyboard submits
    _wait(page, lambda d: d.find_element(By.ID, "result").get_attribute("data-final-result-ms"))
    # The same request through the API.
    _, embedded = _api(service, "POST", "/embed", {"texts": [TEXT]})
    request = {"embeddings": embedded["embeddings"], "evaluate_quality": False}
    status, answer = _api(
        service, "POST", "/generate_prompts_parallel", {**request, "refinement_steps": STEPS}
    )
    assert status == 200
    item = answer["results"][0]
    assert _text(page, "prompt") == item["original_prompt"]
    assert _text(page, "prompt-similarity") == f"{item['original_result']['prompt_similarity']:.3f}"
    assert _text(page, "similarity") == "-"  # not evaluated
    assert _text(page, "steps-run") == str(STEPS)
    points = page.find_elements(By.CSS_SELECTOR, "#chart circle")
    cosines = [float(point.get_attribute("data-cosine") or "nan") for point in points]
    assert cosines == item["cosine_by_step"]
    assert len(cosines) == STEPS + 1
    assert cosines[-1] == pytest.approx(item["original_result"]["prompt_similarity"])
    # Marked words are in both texts, and the original's words that the prompt has
    # (beyond the most common ones) are marked.
    marked = {m.text.lower() for m in page.find_elements(By.CSS_SELECTOR, "#prompt mark")}
    original = {m.text.lower() for m in page.find_elements(By.CSS_SELECTOR, "#original mark")}
    assert marked == original
    assert marked <= set(TEXT.lower().rstrip("?").split())
    assert "password" in marked or "password" not in item["original_prompt"].lower()
    _screenshot(page, "page-try.png")


def test_a_blend_evaluated_with_variants_shows_what_the_api_gives(
    page: webdriver.Chrome, service: str
) -> None:
    page.find_element(By.CSS_SELECTOR, "input[name=mode][value=blend]").click()
    first, second = "A recipe for chocolate cake", "How to repair a bicycle tyre"
    for field, value in (("text-a", first), ("text-b", second)):
        page.find_element(By.ID, field).clear()
        page.find_element(By.ID, field).send_keys(value)
    slider = page.find_element(By.ID, "blend")
    slider.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT)  # 50% -> 40% of the second
    assert slider.get_attribute("aria-valuetext") == "60% first, 40% second"
    page.find_element(By.ID, "evaluate").click()
    page.find_element(By.ID, "variants").click()
    page.find_element(By.ID, "invert").click()
    _wait(page, lambda d: d.find_element(By.ID, "result").get_attribute("data-final-result-ms"))
    _, embedded = _api(service, "POST", "/embed", {"texts": [first, second]})
    a, b = embedded["embeddings"]
    blend = [(1 - 0.4) * x + 0.4 * y for x, y in zip(a, b, strict=True)]
    request = {
        "embeddings": [blend],
        "evaluate_quality": True,
        "generate_variants": True,
        "refinement_steps": STEPS,
    }
    _, answer = _api(service, "POST", "/generate_prompts_parallel", request)
    item = answer["results"][0]
    assert _text(page, "prompt") == item["original_prompt"]
    assert _text(page, "similarity") == f"{item['original_result']['similarity']:.3f}"
    assert _text(page, "generated") == item["original_result"]["generated_text"]
    rows = page.find_elements(By.CSS_SELECTOR, "#variants-table tbody tr")
    assert [row.find_elements(By.TAG_NAME, "td")[0].text for row in rows] == [
        variant["prompt"] for variant in item["variants"]
    ]
    assert [row.find_elements(By.TAG_NAME, "td")[2].text for row in rows] == [
        f"{variant['similarity']:.3f}" for variant in item["variants"]
    ]
    _screenshot(page, "page-blend.png")


def test_a_vector_of_the_wrong_dimension_is_explained_beside_it(page: webdriver.Chrome) -> None:
    page.find_element(By.CSS_SELECTOR, "input[name=mode][value=vector]").click()
    vector = page.find_element(By.ID, "vector")
    vector.send_keys("[0.1, 0.2, 0.3]")
    page.find_element(By.ID, "invert").click()
    error = _wait(page, lambda d: d.find_element(By.ID, "vector-error").text or None)
    assert "384" in error
    assert error.startswith("The vector was refused")
    vector.clear()
    vector.send_keys("[0.1, oops]")
    page.find_element(By.ID, "invert").click()
    _wait(page, lambda d: "Not JSON" in d.find_element(By.ID, "vector-error").text)


def test_an_uploaded_file_becomes_a_job_watched_to_the_end(
    page: webdriver.Chrome, service: str, tmp_path: Path, downloads: Path
) -> None:
    page.find_element(By.ID, "nav-jobs").click()
    assert page.find_element(By.ID, "upload-form").is_displayed()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[0.1, 0.2]\n")
    page.find_element(By.ID, "file").send_keys(str(bad))
    page.find_element(By.ID, "upload").click()
    error = _wait(page, lambda d: d.find_element(By.ID, "file-error").text or None)
    assert "line 1" in error
    assert "384" in error
    _, embedded = _api(service, "POST", "/embed", {"texts": ["one cat", "two dogs", "three birds"]})
    path = tmp_path / "three.npy"
    np.save(path, np.asarray(embedded["embeddings"], dtype=np.float32))
    page.find_element(By.ID, "file").send_keys(str(path))
    steps = page.find_element(By.ID, "job-steps")
    steps.clear()
    steps.send_keys("0")
    page.find_element(By.ID, "upload").click()
    started = _wait(page, lambda d: re.search(r"Job (\w+) started", _text(d, "upload-status")))
    job_id = started.group(1)  # the list holds every job of the service: this one by its id
    job = _wait(page, lambda d: d.find_element(By.CSS_SELECTOR, f"li.job[data-job-id='{job_id}']"))
    _wait(page, lambda _: job.get_attribute("data-state") == "completed")
    assert job.find_element(By.CLASS_NAME, "job-figures").text.startswith("3 of 3 done")
    _, status = _api(service, "GET", f"/jobs/{job_id}")
    assert status["options"]["refinement_steps"] == 0
    job.find_element(By.CLASS_NAME, "job-jsonl").click()
    saved = downloads / f"job-{job_id}.jsonl"
    _wait(page, lambda _: saved.is_file() and saved.read_text().count("\n") == 3)
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [row["embedding_index"] for row in rows] == [0, 1, 2]
    job.find_element(By.CLASS_NAME, "job-report").click()
    images = _wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#report-figures img"))
    assert all(page.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    assert images[0].get_attribute("alt") == "Similarity"
    _screenshot(page, "page-jobs.png")


def test_the_jobs_list_shows_every_job_of_the_service_newest_first(
    page: webdriver.Chrome, service: str
) -> None:
    # Two jobs started through the API, not by this browser: the page lists them too.
    _, embedded = _api(service, "POST", "/embed", {"texts": ["listed once", "listed twice"]})
    body = {"embeddings": embedded["embeddings"], "evaluate_quality": False, "refinement_steps": 0}
    started = [_api(service, "POST", "/jobs", body)[1]["id"] for _ in range(2)]
    _, listed = _api(service, "GET", "/jobs")
    ids = [job["id"] for job in listed["jobs"]]
    assert ids[:2] == started[::-1]  # newest first
    page.find_element(By.ID, "nav-jobs").click()

    def shown(driver: webdriver.Chrome) -> list[str | None]:
        items = driver.find_elements(By.CSS_SELECTOR, "#job-list li.job")
        return [item.get_attribute("data-job-id") for item in items]

    _wait(page, lambda d: shown(d) == ids)
    newest = page.find_element(By.CSS_SELECTOR, f"li.job[data-job-id='{started[1]}']")
    _wait(page, lambda _: newest.get_attribute("data-state") == "completed")
    assert newest.find_element(By.CLASS_NAME, "job-figures").text.startswith("2 of 2 done")
    # A job started after the page opened appears at the top without a reload.
    later = _api(service, "POST", "/jobs", body)[1]["id"]
    _wait(page, lambda d: shown(d)[:1] == [later])
    assert not page.find_element(By.ID, "no-jobs").is_displayed()


def test_the_jobs_list_pages_by_cursor_behind_the_key(service: str) -> None:
    _, embedded = _api(service, "POST", "/embed", {"texts": ["paged"]})
    body = {"embeddings": embedded["embeddings"], "evaluate_quality": False, "refinement_steps": 0}
    for _ in range(3):
        assert _api(service, "POST", "/jobs", body)[0] == 202
    _, everything = _api(service, "GET", "/jobs?limit=200")
    assert everything["next_before"] is None
    every_id = [job["id"] for job in everything["jobs"]]
    created = [job["created_at"] for job in everything["jobs"]]
    assert created == sorted(created, reverse=True)
    paged: list[str] = []
    query = "/jobs?limit=2"
    while True:
        status, page = _api(service, "GET", query)
        assert status == 200
        assert len(page["jobs"]) <= 2
        paged += [job["id"] for job in page["jobs"]]
        if page["next_before"] is None:
            break
        query = f"/jobs?limit=2&before={page['next_before']}"
    assert paged == every_id
    item = everything["jobs"][0]
    assert set(item) == {
        "id", "state", "mode", "total", "done", "succeeded", "failed", "progress",
        "created_at", "updated_at", "error",
    }  # fmt: skip
    assert (item["mode"], item["total"]) == ("sync", 1)
    _, done = _api(service, "GET", "/jobs?state=completed&limit=200")
    assert all(job["state"] == "completed" for job in done["jobs"])
    status, answer = _api(service, "GET", "/jobs?before=no-such-job")
    assert (status, answer["detail"]) == (404, "no job 'no-such-job' to list the jobs before")
    assert _api(service, "GET", "/jobs?limit=0")[0] == 422
    assert _api(service, "GET", "/jobs", **{"X-API-Key": "no"})[0] == 401


def test_every_control_has_a_label_and_the_page_fits_a_phone(
    page: webdriver.Chrome, service: str
) -> None:
    unlabelled = page.execute_script(
        """return [...document.querySelectorAll('input, textarea, select')]
             .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label'))
             .map((e) => e.id || e.name);"""
    )
    assert unlabelled == []
    page.set_window_size(*PHONE)
    try:
        page.get(f"{service}/#try")
        widths = page.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1]  # nothing wider than the phone: no sideways scrolling
        _screenshot(page, "page-phone.png")
    finally:
        page.set_window_size(1100, 1500)


# The API the page relies on ------------------------------------------------------------


def test_embed_rejects_empty_texts_and_too_many(service: str) -> None:
    status, body = _api(service, "POST", "/embed", {"texts": ["fine", "   "]})
    assert (status, body["detail"]) == (422, "text 1 is empty; expected some words to embed")
    status, body = _api(service, "POST", "/embed", {"texts": []})
    assert status == 422
    status, body = _api(service, "POST", "/embed", b'{"texts": ["\\ud800 alone"]}')
    assert (status, body["detail"]) == (
        422,
        "text 0 holds an unpaired surrogate; expected Unicode text",
    )
    status, body = _api(service, "POST", "/embed", {"texts": ["hello"]}, **{"X-API-Key": "no"})
    assert status == 401


def test_refinement_steps_are_a_request_option_with_a_limit(service: str) -> None:
    _, embedded = _api(service, "POST", "/embed", {"texts": [TEXT]})
    request = {"embeddings": embedded["embeddings"], "evaluate_quality": False}
    _, answer = _api(service, "POST", "/generate_prompts_parallel", request)
    assert len(answer["results"][0]["cosine_by_step"]) == STEPS + 1  # the setting
    assert answer["metadata"]["refinement_steps"] == STEPS
    _, answer = _api(
        service, "POST", "/generate_prompts_parallel", {**request, "refinement_steps": 0}
    )
    assert len(answer["results"][0]["cosine_by_step"]) == 1
    status, body = _api(
        service, "POST", "/generate_prompts_parallel", {**request, "refinement_steps": 65}
    )
    assert status == 422
    assert body["errors"][0]["loc"] == ["body", "refinement_steps"]


def test_parquet_and_npy_uploads_and_a_jobs_parquet_and_report(service: str) -> None:
    _, embedded = _api(service, "POST", "/embed", {"texts": ["a red car", "a blue boat"]})
    vectors = embedded["embeddings"]
    buffer = io.BytesIO()
    pq.write_table(pa.table({"embedding": vectors}), buffer)
    parquet = "application/vnd.apache.parquet"
    query = "/jobs/upload?evaluate_quality=false&refinement_steps=0"
    status, job = _api(service, "POST", query, buffer.getvalue(), **{"Content-Type": parquet})
    assert status == 202, job
    assert job["total"] == 2
    for body, content_type, message in (
        (b"not a parquet file", parquet, "the upload: not a readable Parquet file"),
        (_parquet({"vec": vectors}), parquet, "no 'embedding' column"),
        (_npy(np.zeros((2, 5))), "application/x-npy", "has shape (5,)"),
        (_npy(np.zeros((2, 384))), "application/x-npy", "embedding 0 is all zeros"),
    ):
        status, answer = _api(service, "POST", query, body, **{"Content-Type": content_type})
        assert status == 422
        assert message in answer["detail"]
        assert "/tmp" not in answer["detail"]  # the spooled file's path is not shown
    status, answer = _api(service, "POST", query, b"x", **{"Content-Type": "text/csv"})
    assert status == 415
    assert "application/vnd.apache.parquet" in answer["detail"]
    status, answer = _api(service, "GET", "/jobs/no-such-job/report")
    assert status == 404
    for _ in range(WAIT_S * 10):
        _, state = _api(service, "GET", f"/jobs/{job['id']}")
        if state["state"] == "completed":
            break
        time.sleep(0.1)  # polling a job that runs in another process
    assert state["state"] == "completed"
    status, raw = _api(service, "GET", f"/jobs/{job['id']}/results.parquet")
    assert status == 200
    table = pq.read_table(io.BytesIO(raw)).to_pylist()
    _, page = _api(service, "GET", f"/jobs/{job['id']}/results")
    assert [row["prompt"] for row in table] == [r["original_prompt"] for r in page["results"]]
    assert [row["id"] for row in table] == ["0", "1"]
    status, report = _api(service, "GET", f"/jobs/{job['id']}/report")
    assert status == 200
    assert report["summary"]["total_processed"] == 2
    assert next(figure["title"] for figure in report["figures"]) == "Similarity"
    assert report["figures"][0]["png_base64"].startswith("iVBORw0KGgo")  # a PNG


def test_the_page_is_open_and_loads_nothing_from_elsewhere(service: str) -> None:
    with urllib.request.urlopen(f"{service}/") as response:
        policy = response.headers["Content-Security-Policy"]
        html = response.read().decode()
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "http://" not in html
    assert "https://" not in html
    assert f'data-refinement-steps="{STEPS}"' in html
    for name in ("page.js", "page.css"):
        with urllib.request.urlopen(f"{service}/static/{name}") as response:
            assert response.status == 200
    status, _ = _api(service, "GET", "/static/../app.py")
    assert status in (401, 404)


def _parquet(columns: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def _npy(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    return buffer.getvalue()
