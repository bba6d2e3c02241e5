// embed2prompt's page: try inversion, watch jobs. Every action is a call to the
// service's documented API (/embed, /generate_prompts_parallel, /jobs...), with the
// API key the person typed, kept in this tab's sessionStorage only.
"use strict";

(() => {
  const KEY_STORAGE = "embed2prompt.apiKey";
  const LIST_PAGE = 20; // jobs a page of GET /jobs brings
  const POLL_MS = 1000; // job progress: the target is an update at least every 2 s
  const RATE_WINDOW_MS = 15000; // progress samples the rate is measured over
  const FINAL_STATES = new Set(["completed", "cancelled", "failed"]);
  // Words too common to be worth marking as shared.
  const STOP_WORDS = new Set(
    "a an the and or but of to in on at for with by from as is are was were be been it its this that these those i you he she we they my your our their me him her us them do does did not no so if then than".split(" "),
  );

  const body = document.body;
  const config = {
    refinementSteps: Number(body.dataset.refinementSteps),
    maxSteps: Number(body.dataset.maxRefinementSteps),
    keyRequired: body.dataset.keyRequired === "true",
    dimension: null,
    embedder: null,
  };
  const $ = (id) => document.getElementById(id);

  // --- The API ------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, errors) {
      super(message);
      this.status = status;
      this.errors = errors || [];
    }
    // The request field a 422 names ("refinement_steps"), if any.
    get field() {
      const loc = this.errors.length ? this.errors[0].loc : [];
      return loc.length > 1 ? String(loc[1]) : null;
    }
  }

  function authHeaders(extra) {
    const headers = { ...extra };
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers["X-API-Key"] = key;
    return headers;
  }

  function describe(status, detail) {
    if (status === 401) {
      return "The service refused the API key: type the key it was started with (API_KEY).";
    }
    if (status === 413) return `Too large for the service: ${detail}.`;
    if (status === 415) return `The service cannot read this kind of file: ${detail}.`;
    if (status === 429 || status === 503) {
      return `The service is at its limits (${status}): ${detail || "try again in a moment"}.`;
    }
    if (status >= 500) return `The service failed (${status}): ${detail || "see its log"}.`;
    return detail || `The service answered ${status}.`;
  }

  async function errorOf(response) {
    let data = {};
    try {
      data = await response.json();
    } catch {
      // not JSON: a proxy's page, say
    }
    return new ApiError(response.status, describe(response.status, data.detail || ""), data.errors);
  }

  async function api(method, path, { json, signal } = {}) {
    const init = { method, headers: authHeaders(), signal };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "The service could not be reached: is it running?");
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (error.status === 401) askForKey(error.message);
      throw error;
    }
    return response;
  }

  const apiJson = async (method, path, options) => (await api(method, path, options)).json();

  // --- Errors next to what caused them ---------------------------------------------

  function showError(fieldId, message) {
    const box = $(`${fieldId}-error`);
    box.textContent = message;
    const field = $(fieldId);
    if (field && field.tagName !== "FORM") field.setAttribute("aria-invalid", "true");
  }

  function clearErrors(container) {
    for (const box of container.querySelectorAll(".error")) box.textContent = "";
    for (const field of container.querySelectorAll("[aria-invalid]")) {
      field.removeAttribute("aria-invalid");
    }
  }

  // --- The API key ------------------------------------------------------------------

  function askForKey(message) {
    const form = $("key-form");
    form.hidden = false;
    if (message) showError("key", message);
    $("key").focus();
  }

  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors($("key-form"));
    const key = $("key").value.trim();
    if (!key) {
      showError("key", "Type the API key first.");
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    try {
      await api("GET", "/metrics"); // the cheapest call that needs the key
    } catch (error) {
      sessionStorage.removeItem(KEY_STORAGE);
      showError("key", error.message);
      return;
    }
    $("key").value = "";
    $("key-form").hidden = true;
    $("key-change").hidden = false;
    refreshJobs();
  });

  $("key-change").addEventListener("click", () => askForKey(""));

  // --- Sections ---------------------------------------------------------------------

  function showSection() {
    const jobs = location.hash === "#jobs";
    $("try").hidden = jobs;
    $("jobs").hidden = !jobs;
    $(jobs ? "nav-jobs" : "nav-try").setAttribute("aria-current", "page");
    $(jobs ? "nav-try" : "nav-jobs").removeAttribute("aria-current");
    if (jobs && !waitingForKey()) listJobs();
  }
  window.addEventListener("hashchange", showSection);

  // --- Try it -----------------------------------------------------------------------

  const form = $("invert-form");
  let running = null; // the AbortController of the inversion in progress

  function mode() {
    return form.querySelector("input[name=mode]:checked").value;
  }

  function showMode() {
    for (const part of form.querySelectorAll("[data-mode]")) {
      part.hidden = part.dataset.mode !== mode();
    }
  }
  for (const radio of form.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", showMode);
  }

  function blendText() {
    const second = Number($("blend").value);
    return `${100 - second}% first, ${second}% second`;
  }
  $("blend").addEventListener("input", () => {
    $("blend-value").textContent = blendText();
    $("blend").setAttribute("aria-valuetext", blendText());
  });

  function readSteps(fieldId) {
    const raw = $(fieldId).value.trim();
    const steps = Number(raw);
    if (raw === "" || !Number.isInteger(steps) || steps < 0 || steps > config.maxSteps) {
      showError(fieldId, `Refinement steps: a whole number from 0 to ${config.maxSteps}.`);
      return null;
    }
    return steps;
  }

  function requireText(fieldId) {
    const text = $(fieldId).value;
    if (!text.trim()) {
      showError(fieldId, "Type some words to embed.");
      return null;
    }
    return text;
  }

  // The target vector and the texts it came from, as the chosen mode says.
  async function target(signal) {
    const which = mode();
    if (which === "vector") {
      let vector;
      try {
        vector = JSON.parse($("vector").value);
      } catch (error) {
        showError("vector", `Not JSON: ${error.message}. Paste an array such as [0.1, -0.2, ...].`);
        return null;
      }
      if (!Array.isArray(vector) || !vector.every((x) => typeof x === "number")) {
        showError("vector", "Expected a JSON array of numbers, such as [0.1, -0.2, ...].");
        return null;
      }
      return { vector, texts: [], errorField: "vector" };
    }
    if (which === "text") {
      const text = requireText("text");
      if (text === null) return null;
      const embedded = await embed([text], "text", signal);
      return embedded && { vector: embedded[0], texts: [text], errorField: "text" };
    }
    const first = requireText("text-a");
    const second = requireText("text-b");
    if (first === null || second === null) return null;
    const embedded = await embed([first, second], "text-a", signal);
    if (!embedded) return null;
    const weight = Number($("blend").value) / 100;
    const vector = embedded[0].map((x, i) => (1 - weight) * x + weight * embedded[1][i]);
    if (Math.hypot(...vector) < 1e-6) {
      showError("text-a", "At this blend the two vectors cancel out: move the slider.");
      return null;
    }
    return { vector, texts: [first, second], errorField: "text-a" };
  }

  async function embed(texts, fieldId, signal) {
    try {
      const answer = await apiJson("POST", "/embed", { json: { texts }, signal });
      answer.truncated.forEach((cut, index) => {
        if (cut) {
          const id = texts.length === 1 ? fieldId : ["text-a", "text-b"][index];
          $(`${id}-error`).textContent =
            "Longer than the embedder reads: only its beginning was embedded.";
        }
      });
      return answer.embeddings;
    } catch (error) {
      if (error.name === "AbortError") throw error;
      showError(fieldId, error.message);
      return null;
    }
  }

  async function invert(vector, options, signal) {
    return apiJson("POST", "/generate_prompts_parallel", {
      json: {
        embeddings: [vector],
        max_concurrent: 1,
        evaluate_quality: options.evaluate,
        generate_variants: options.variants,
        refinement_steps: options.steps,
        return_metadata: false,
      },
      signal,
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (running) running.abort();
    const controller = new AbortController();
    running = controller;
    clearErrors(form);
    const started = performance.now();
    const steps = readSteps("steps");
    if (steps === null) return;
    const options = { steps, evaluate: $("evaluate").checked, variants: $("variants").checked };
    const status = $("invert-status");
    const result = $("result");
    delete result.dataset.firstResultMs;
    delete result.dataset.finalResultMs;
    $("invert").disabled = true;
    try {
      status.textContent = mode() === "vector" ? "Inverting…" : "Embedding…";
      const found = await target(controller.signal);
      if (!found) {
        status.textContent = "";
        return;
      }
      // A first guess (no refinement, no evaluation) in well under a second, then the
      // answer asked for.
      const quick = { steps: 0, evaluate: false, variants: false };
      const asked = options.steps > 0 || options.evaluate || options.variants;
      if (asked) {
        status.textContent = "Inverting…";
        const first = await invert(found.vector, quick, controller.signal);
        show(first.results[0], found.texts, started, false);
        status.textContent = `First guess shown; refining (${options.steps} steps${
          options.evaluate ? ", then evaluating" : ""
        })…`;
      }
      const answer = await invert(found.vector, options, controller.signal);
      show(answer.results[0], found.texts, started, true);
      status.textContent = "Done.";
      result.focus();
    } catch (error) {
      if (error.name === "AbortError") return;
      status.textContent = "";
      if (error.field === "refinement_steps") showError("steps", error.message);
      else if (error.status === 422 && mode() === "vector") {
        showError("vector", `The vector was refused: ${error.message}`);
      } else showError("invert", error.message);
    } finally {
      if (running === controller) {
        running = null;
        $("invert").disabled = false;
      }
    }
  });

  function fixed(value) {
    return value === null || value === undefined ? "-" : value.toFixed(3);
  }

  function show(item, texts, started, final) {
    const result = $("result");
    const elapsed = performance.now() - started;
    result.dataset[final ? "finalResultMs" : "firstResultMs"] = String(Math.round(elapsed));
    result.hidden = false;
    const original = item.original_result;
    const prompt = item.original_prompt || "";
    if (!original.success && !prompt) {
      showError("invert", `This embedding failed: ${original.error || "unknown error"}`);
    }
    const promptWords = wordSet(prompt);
    const textWords = new Set(texts.flatMap((text) => [...wordSet(text)]));
    markShared($("prompt"), prompt, textWords);
    const box = $("original");
    box.replaceChildren();
    for (const text of texts) {
      const paragraph = document.createElement("p");
      paragraph.className = "text";
      markShared(paragraph, text, promptWords);
      box.append(paragraph);
    }
    $("original-box").hidden = texts.length === 0;
    $("prompt-similarity").textContent = fixed(original.prompt_similarity);
    $("similarity").textContent = fixed(original.similarity);
    const trace = item.cosine_by_step || [];
    $("steps-run").textContent = String(Math.max(trace.length - 1, 0));
    $("elapsed").textContent = `${(elapsed / 1000).toFixed(1)} s`;
    drawChart(trace);
    $("generated-box").hidden = !original.generated_text;
    $("generated").textContent = original.generated_text || "";
    if (!original.success && original.error && prompt) {
      showError("invert", `The evaluation failed: ${original.error}`);
    }
    const rows = $("variants-table").tBodies[0];
    rows.replaceChildren();
    for (const variant of item.variants || []) {
      const row = rows.insertRow();
      const text = row.insertCell();
      markShared(text, variant.prompt, textWords);
      row.insertCell().textContent = variant.source;
      for (const value of [variant.similarity, variant.prompt_similarity]) {
        const cell = row.insertCell();
        cell.className = "number";
        cell.textContent = fixed(value);
      }
    }
    $("variants-box").hidden = !(item.variants || []).length;
  }

  function normal(word) {
    return word.toLowerCase().replace(/^'+|'+$/g, "");
  }

  function wordSet(text) {
    const words = (text.match(/[\p{L}\p{N}']+/gu) || []).map(normal);
    return new Set(words.filter((word) => word && !STOP_WORDS.has(word)));
  }

  // ``text`` into ``element``, the words in ``shared`` marked (text nodes only: a prompt
  // recovered from an embedding can hold anything, markup included).
  function markShared(element, text, shared) {
    element.replaceChildren();
    let last = 0;
    for (const match of text.matchAll(/[\p{L}\p{N}']+/gu)) {
      if (match.index > last) element.append(text.slice(last, match.index));
      const word = match[0];
      if (shared.has(normal(word))) {
        const mark = document.createElement("mark");
        mark.textContent = word;
        element.append(mark);
      } else {
        element.append(word);
      }
      last = match.index + word.length;
    }
    element.append(text.slice(last));
  }

  // The cosine after each step as an SVG line, and the same numbers as a table for
  // screen readers.
  function drawChart(trace) {
    const svgNs = "http://www.w3.org/2000/svg";
    const width = 480;
    const height = 200;
    const left = 40;
    const right = 12;
    const top = 10;
    const bottom = 30;
    // From a little below the lowest cosine to 1, so that the climb is visible.
    const low = Math.max(-1, Math.floor((Math.min(...trace, 1) - 0.05) * 10) / 10);
    const tickStep = 1 - low > 0.5 ? 0.25 : 0.1;
    const x = (step) =>
      left + (trace.length > 1 ? (step / (trace.length - 1)) * (width - left - right) : (width - left - right) / 2);
    const y = (value) => top + ((1 - value) / (1 - low)) * (height - top - bottom);
    const svg = document.createElementNS(svgNs, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-labelledby", "chart-caption");
    const add = (name, attributes, text) => {
      const node = document.createElementNS(svgNs, name);
      for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
      if (text !== undefined) node.textContent = text;
      svg.append(node);
      return node;
    };
    for (let tick = 1; tick >= low - 1e-9; tick -= tickStep) {
      add("line", { class: "grid", x1: left, x2: width - right, y1: y(tick), y2: y(tick) });
      add("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, tick.toFixed(2));
    }
    add("line", { class: "axis", x1: left, x2: left, y1: top, y2: height - bottom });
    add("line", { class: "axis", x1: left, x2: width - right, y1: height - bottom, y2: height - bottom });
    const every = Math.max(1, Math.ceil(trace.length / 12));
    trace.forEach((_, step) => {
      if (step % every === 0 || step === trace.length - 1) {
        add("text", { x: x(step), y: height - bottom + 16, "text-anchor": "middle" }, String(step));
      }
    });
    add("text", { x: (left + width) / 2, y: height - 2, "text-anchor": "middle" }, "refinement step");
    if (trace.length > 1) {
      add("polyline", {
        class: "line",
        points: trace.map((value, step) => `${x(step)},${y(value)}`).join(" "),
      });
    }
    trace.forEach((value, step) => {
      const point = add("circle", {
        class: "point",
        cx: x(step),
        cy: y(value),
        r: 4,
        "data-step": step,
        "data-cosine": value,
      });
      const title = document.createElementNS(svgNs, "title");
      title.textContent = `step ${step}: ${value.toFixed(3)}`;
      point.append(title);
    });
    $("chart").replaceChildren(svg);
    const rows = $("chart-table").tBodies[0];
    rows.replaceChildren();
    trace.forEach((value, step) => {
      const row = rows.insertRow();
      row.insertCell().textContent = String(step);
      row.insertCell().textContent = value.toFixed(3);
    });
  }

  // --- Jobs -------------------------------------------------------------------------

  const jobs = new Map(); // id -> { status, element, samples: [[ms, done]] }
  let jobsShown = 0; // for the ids of their elements
  // GET /jobs's cursor for the page after the oldest loaded: undefined before the first
  // page, null once the oldest job is shown.
  let olderCursor;

  // The newest page of the service's jobs (every client's, not only this browser's),
  // or with ``older`` the page after the oldest shown.
  async function listJobs(older = false) {
    if (older && !olderCursor) return;
    const query = new URLSearchParams({ limit: LIST_PAGE });
    if (older) query.set("before", olderCursor);
    let page;
    try {
      page = await apiJson("GET", `/jobs?${query}`);
    } catch (error) {
      $("jobs-list-error").textContent = `The jobs could not be listed: ${error.message}`;
      return;
    }
    $("jobs-list-error").textContent = "";
    for (const summary of page.jobs) addJob(summary.id, summary);
    if (older || olderCursor === undefined) olderCursor = page.next_before;
    $("older-jobs").hidden = !olderCursor;
    placeInOrder();
  }

  // Newest first, as the service lists them; a job watched by id before its status
  // came back goes first.
  function placeInOrder() {
    const list = $("job-list");
    const created = (job) => (job.status && job.status.created_at) || Infinity;
    const ordered = [...jobs.values()].sort((a, b) => created(b) - created(a));
    ordered.forEach((job, index) => {
      if (list.children[index] !== job.element) {
        list.insertBefore(job.element, list.children[index] || null);
      }
    });
  }

  function addJob(id, status) {
    if (!jobs.has(id)) {
      const element = $("job-template").content.firstElementChild.cloneNode(true);
      element.dataset.jobId = id;
      element.querySelector(".job-id").textContent = id;
      // Each job's buttons say which job they act on, to a screen reader too.
      const title = element.querySelector(".job-title");
      title.id = `job-title-${(jobsShown += 1)}`;
      for (const button of element.querySelectorAll("button")) {
        button.setAttribute("aria-describedby", title.id);
      }
      const job = { status: null, element, samples: [] };
      jobs.set(id, job);
      element.querySelector(".job-cancel").addEventListener("click", () => cancelJob(id));
      element.querySelector(".job-jsonl").addEventListener("click", () =>
        download(id, `/jobs/${encodeURIComponent(id)}/results?format=jsonl`, "jsonl"),
      );
      element.querySelector(".job-parquet").addEventListener("click", () =>
        download(id, `/jobs/${encodeURIComponent(id)}/results.parquet`, "parquet"),
      );
      element.querySelector(".job-report").addEventListener("click", () => showReport(id));
      $("job-list").prepend(element);
      $("no-jobs").hidden = true;
    }
    // A list's summary has no latest errors: those of the last full status stay.
    const known = jobs.get(id).status;
    if (status) render(id, known && known.id ? { ...known, ...status } : status);
  }

  function duration(seconds) {
    if (!Number.isFinite(seconds)) return "-";
    if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function render(id, status) {
    const job = jobs.get(id);
    job.status = status;
    const now = performance.now();
    job.samples.push([now, status.done]);
    while (job.samples.length > 2 && now - job.samples[0][0] > RATE_WINDOW_MS) job.samples.shift();
    const [then, doneThen] = job.samples[0];
    const rate = now > then ? ((status.done - doneThen) * 1000) / (now - then) : 0;
    const element = job.element;
    element.dataset.state = status.state;
    element.dataset.done = String(status.done);
    element.dataset.polledAt = String(Date.now());
    element.querySelector(".job-state").textContent = status.state;
    const progress = element.querySelector(".job-progress");
    progress.value = status.progress;
    progress.setAttribute("aria-label", `Job ${id}: ${Math.round(status.progress * 100)}% done`);
    const parts = [
      `${status.done} of ${status.total} done`,
      `${status.succeeded} succeeded`,
      `${status.failed} failed`,
    ];
    if (FINAL_STATES.has(status.state)) {
      parts.push(`took ${duration(status.updated_at - status.created_at)}`);
    } else if (rate > 0) {
      parts.push(`${rate.toFixed(rate < 10 ? 1 : 0)} a second`);
      parts.push(`about ${duration((status.total - status.done) / rate)} left`);
    } else if (status.state === "running") {
      parts.push("measuring the rate…");
    }
    element.querySelector(".job-figures").textContent = parts.join(" · ");
    const problems = [];
    if (status.error) problems.push(`The job failed: ${status.error}`);
    for (const item of status.recent_errors || []) {
      problems.push(`Item ${item.index}: ${item.error}`);
    }
    element.querySelector(".job-error").textContent = problems.slice(0, 3).join(" ");
    element.querySelector(".job-cancel").hidden = FINAL_STATES.has(status.state);
    for (const name of [".job-jsonl", ".job-parquet", ".job-report"]) {
      element.querySelector(name).hidden = status.done === 0;
    }
  }

  function jobError(id, message) {
    const job = jobs.get(id);
    if (job) job.element.querySelector(".job-error").textContent = message;
  }

  async function poll(id) {
    try {
      const status = await apiJson("GET", `/jobs/${encodeURIComponent(id)}`);
      render(id, status);
    } catch (error) {
      if (error.status === 404) {
        jobs.get(id).status = { state: "unknown" };
        jobError(id, "The service has no job with this id (another service, or its database was reset).");
      } else {
        jobError(id, error.message);
      }
    }
  }

  let polling = false;
  async function pollLoop() {
    if (!polling) {
      polling = true;
      try {
        if (!$("jobs").hidden && !waitingForKey()) await listJobs();
        const active = [...jobs.entries()]
          .filter(([, job]) => !job.status || !FINAL_STATES.has(job.status.state))
          .filter(([, job]) => !job.status || job.status.state !== "unknown")
          .map(([id]) => id);
        if (active.length && !waitingForKey()) {
          await Promise.all(active.map(poll));
        }
      } finally {
        polling = false;
      }
    }
    setTimeout(pollLoop, POLL_MS);
  }

  const waitingForKey = () => config.keyRequired && !sessionStorage.getItem(KEY_STORAGE);

  function refreshJobs() {
    if (waitingForKey()) return;
    listJobs();
    for (const [id, job] of jobs) {
      if (!job.status || job.status.state === "unknown") job.status = null;
      poll(id);
    }
  }

  async function cancelJob(id) {
    try {
      render(id, await apiJson("DELETE", `/jobs/${encodeURIComponent(id)}`));
    } catch (error) {
      jobError(id, error.message);
    }
  }

  async function download(id, path, suffix) {
    try {
      const response = await api("GET", path);
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = `job-${id}.${suffix}`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      jobError(id, error.message);
    }
  }

  async function showReport(id) {
    const section = $("report");
    try {
      const report = await apiJson("GET", `/jobs/${encodeURIComponent(id)}/report`);
      $("report-title").textContent = `Report of job ${id}`;
      const rows = $("report-summary").tBodies[0];
      rows.replaceChildren();
      for (const [name, value] of Object.entries(report.summary)) {
        const row = rows.insertRow();
        const head = document.createElement("th");
        head.scope = "row";
        head.textContent = name.replaceAll("_", " ");
        row.append(head);
        const cell = row.insertCell();
        cell.className = "number";
        cell.textContent = typeof value === "number" && !Number.isInteger(value) ? value.toFixed(4) : String(value);
      }
      const figures = $("report-figures");
      figures.replaceChildren();
      for (const figure of report.figures) {
        const heading = document.createElement("h4");
        heading.textContent = figure.title;
        const image = document.createElement("img");
        image.alt = figure.title;
        image.src = `data:image/png;base64,${figure.png_base64}`;
        figures.append(heading, image);
      }
      section.hidden = false;
      section.focus();
    } catch (error) {
      jobError(id, error.message);
    }
  }

  const UPLOAD_TYPES = {
    ".jsonl": "application/x-ndjson",
    ".npy": "application/x-npy",
    ".parquet": "application/vnd.apache.parquet",
  };

  function uploadFile(file, query, contentType, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", `/jobs/upload?${query}`);
      for (const [name, value] of Object.entries(authHeaders({ "Content-Type": contentType }))) {
        request.setRequestHeader(name, value);
      }
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      });
      request.addEventListener("load", () => {
        let data = {};
        try {
          data = JSON.parse(request.responseText);
        } catch {
          // not JSON
        }
        if (request.status === 202) resolve(data);
        else reject(new ApiError(request.status, describe(request.status, data.detail || ""), data.errors));
      });
      request.addEventListener("error", () =>
        reject(new ApiError(0, "The upload was cut off: the service could not be reached.")),
      );
      request.send(file);
    });
  }

  $("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const uploadForm = $("upload-form");
    clearErrors(uploadForm);
    const file = $("file").files[0];
    if (!file) {
      showError("file", "Choose a file of embeddings first.");
      return;
    }
    const suffix = (file.name.match(/\.[^.]+$/) || [""])[0].toLowerCase();
    const contentType = UPLOAD_TYPES[suffix];
    if (!contentType) {
      showError("file", `${file.name} is not a .npy, .jsonl or .parquet file.`);
      return;
    }
    const steps = readSteps("job-steps");
    const concurrency = Number($("job-concurrency").value);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 50) {
      showError("job-concurrency", "Items at once: a whole number from 1 to 50.");
      return;
    }
    if (steps === null) return;
    const query = new URLSearchParams({
      evaluate_quality: $("job-evaluate").checked,
      generate_variants: $("job-variants").checked,
      refinement_steps: steps,
      max_concurrent: concurrency,
    });
    const status = $("upload-status");
    $("upload").disabled = true;
    try {
      const job = await uploadFile(file, query, contentType, (share) => {
        status.textContent = `Uploading ${file.name}: ${Math.round(share * 100)}%`;
      });
      status.textContent = `Job ${job.id} started.`;
      addJob(job.id, job);
    } catch (error) {
      status.textContent = "";
      if (error.status === 401) askForKey(error.message);
      const fields = { refinement_steps: "job-steps", max_concurrent: "job-concurrency" };
      showError(fields[error.field] || "file", error.message);
    } finally {
      $("upload").disabled = false;
    }
  });

  $("watch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors($("watch-form"));
    const id = $("watch-id").value.trim();
    if (!id) {
      showError("watch-id", "Type a job's id (POST /jobs answers with it).");
      return;
    }
    try {
      const status = await apiJson("GET", `/jobs/${encodeURIComponent(id)}`);
      addJob(id, status);
      placeInOrder();
      $("watch-id").value = "";
    } catch (error) {
      showError("watch-id", error.status === 404 ? `The service has no job ${id}.` : error.message);
    }
  });

  // --- Start --------------------------------------------------------------------------

  async function start() {
    showSection();
    showMode();
    if (config.keyRequired && !sessionStorage.getItem(KEY_STORAGE)) askForKey("");
    else if (config.keyRequired) $("key-change").hidden = false;
    try {
      const health = await (await fetch("/health")).json();
      config.dimension = health.dimension;
      config.embedder = health.embedder;
      for (const span of document.querySelectorAll(".dimension")) {
        span.textContent = String(health.dimension);
      }
    } catch {
      // the first action will say that the service cannot be reached
    }
    $("older-jobs").addEventListener("click", () => listJobs(true));
    refreshJobs();
    pollLoop();
  }

  start();
})();
