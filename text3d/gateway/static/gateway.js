// The gateway's page: post a prompt, follow the job, show the winning mesh and its evidence.
// Everything from the network goes onto the page through textContent (never innerHTML), and the
// mesh and views are fetched with the key in a header and shown through blob: URLs.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const anonymous = document.body.dataset.anonymous === "1";
  const maxPrompt = parseInt(document.body.dataset.maxPrompt || "512", 10);
  const KEY_STORE = "text3d.gateway.key";
  const blobUrls = [];
  let polling = null;

  function headers(json) {
    const h = {};
    const key = $("key").value.trim();
    if (key) h["Authorization"] = "Bearer " + key;
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  function show(id, on) { $(id).hidden = !on; }

  function fail(message) {
    $("error").textContent = message;
    show("error", true);
    $("go").disabled = false;
    show("progress", false);
  }

  async function detail(response) {
    try {
      const data = await response.json();
      if (data && typeof data.detail === "string") return data.detail;
    } catch (e) { /* not JSON */ }
    return "HTTP " + response.status;
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function fixed(x, digits) { return typeof x === "number" ? x.toFixed(digits) : "–"; }

  async function fetchBlob(url) {
    const response = await fetch(url, { headers: headers(false) });
    if (!response.ok) throw new Error(url + ": " + (await detail(response)));
    const blob = await response.blob();
    const objectUrl = URL.createObjectURL(blob);
    blobUrls.push(objectUrl);
    return objectUrl;
  }

  function resetResult() {
    while (blobUrls.length) URL.revokeObjectURL(blobUrls.pop());
    $("views").replaceChildren();
    $("evidence").tBodies[0].replaceChildren();
    $("candidates").tBodies[0].replaceChildren();
    show("result", false);
  }

  function phaseText(job) {
    const attempt = job.attempts > 1 ? " (attempt " + job.attempts + ")" : "";
    if (job.status === "queued") {
      const ahead = job.queue_position || 0;
      return "Queued" + (ahead ? ": " + ahead + " ahead" : ": next") + (job.note ? " (" + job.note + ")" : "");
    }
    if (job.status === "running") return "Miners are making it; a validator is scoring the answers" + attempt;
    if (job.status === "done") return "Done";
    return "Failed";
  }

  async function showResult(job) {
    resetResult();
    show("result", true);  // visible before the viewer loads: it sizes its canvas from its box
    const ev = job.evidence || {};
    $("score").textContent = fixed(job.score, 3);
    $("picked").textContent = (ev.candidates ? ev.candidates.length : 0) + " miners asked, uid " +
      ev.winner_uid + "'s answer won";
    const viewer = $("viewer");
    if (viewer) {
      viewer.setAttribute("alt", "3D model: " + job.prompt);
      viewer.src = await fetchBlob(job.links.preview);
    }
    const download = $("download");
    download.href = await fetchBlob(job.links.mesh);
    download.download = "text3d-" + job.id.slice(0, 8) + "." + ({ glb: "glb", ply: "ply", draco: "drc" })[job.format];
    const viewsBox = $("views");
    for (let i = 0; i < job.links.views.length; i++) {
      const img = document.createElement("img");
      img.alt = "view " + i;
      img.src = await fetchBlob(job.links.views[i]);
      viewsBox.appendChild(img);
    }
    const body = $("evidence").tBodies[0];
    for (const view of ev.views || []) {
      const row = document.createElement("tr");
      cell(row, String(view.index));
      cell(row, fixed(view.clip_similarity, 3) + (view.rejected ? " (rejected)" : ""));
      cell(row, view.caption == null ? "–" : view.caption);
      cell(row, fixed(view.caption_similarity, 3));
      body.appendChild(row);
    }
    const cands = $("candidates").tBodies[0];
    for (const c of ev.candidates || []) {
      const row = document.createElement("tr");
      cell(row, String(c.uid) + (c.winner ? " ★" : ""));
      cell(row, c.status);
      cell(row, fixed(c.score, 3));
      cell(row, fixed(c.response_s, 1));
      cell(row, c.detail || "");
      cands.appendChild(row);
    }
  }

  async function follow(id, started) {
    clearTimeout(polling);
    show("progress", true);
    const response = await fetch("/v1/assets/" + encodeURIComponent(id), { headers: headers(false) });
    if (!response.ok) return fail(await detail(response));
    const job = await response.json();
    $("asked").textContent = "“" + job.prompt + "”";
    $("phase").textContent = phaseText(job);
    $("elapsed").textContent = Math.round((Date.now() - started) / 1000) + " s";
    if (job.status === "done") {
      $("bar").value = 1; $("bar").max = 1;
      try { await showResult(job); } catch (e) { return fail("could not load the result: " + e.message); }
      $("go").disabled = false;
      return;
    }
    if (job.status === "failed") return fail("The job failed: " + (job.reason || "no reason given"));
    polling = setTimeout(() => follow(id, started), 1000);
  }

  async function submit(event) {
    event.preventDefault();
    show("error", false);
    const key = $("key").value.trim();
    if (!key && !anonymous) return fail("Paste your API key first (ask the gateway's operator for one).");
    if (key) localStorage.setItem(KEY_STORE, key);
    const ask = { prompt: $("prompt").value, format: $("format").value };
    if ($("seed").value !== "") ask.seed = parseInt($("seed").value, 10);
    $("go").disabled = true;
    resetResult();
    const response = await fetch("/v1/assets", { method: "POST", headers: headers(true), body: JSON.stringify(ask) });
    if (response.status !== 202) {
      const retry = response.headers.get("Retry-After");
      return fail(await detail(response) + (retry ? " (try again in " + retry + " s)" : ""));
    }
    const job = await response.json();
    history.replaceState(null, "", "#" + job.id);
    follow(job.id, Date.now());
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("prompt").maxLength = maxPrompt;
    $("key").value = localStorage.getItem(KEY_STORE) || "";
    if (anonymous) $("key").placeholder = "optional: t3d_...";
    $("ask").addEventListener("submit", (e) => { submit(e).catch((err) => fail(String(err))); });
    // a link to a job (/#ID): follow it now, or as soon as a key is pasted
    const id = location.hash.slice(1);
    const resume = () => {
      if (/^[A-Za-z0-9_-]{8,64}$/.test(id) && ($("key").value.trim() || anonymous)) {
        if ($("key").value.trim()) localStorage.setItem(KEY_STORE, $("key").value.trim());
        follow(id, Date.now()).catch((err) => fail(String(err)));
        return true;
      }
      return false;
    };
    if (!resume()) $("key").addEventListener("change", resume, { once: true });
  });
})();
