(() => {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const $ = (id) => document.getElementById(id);
  let classes = [];
  let total = 0;
  let want = 0; // position asked for last (moves at once, so fast key presses add up)
  let item = null;
  let busy = false;
  let loadSeq = 0;

  async function api(path, opts = {}) {
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (token) headers["X-Labeltrace-Token"] = token;
    const r = await fetch(path, Object.assign({}, opts, { headers, cache: "no-store" }));
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const d = body && body.detail;
      throw new Error(typeof d === "string" ? d : `HTTP ${r.status}`);
    }
    return body;
  }

  const imageUrl = (id) => `/api/image/${id}` + (token ? `?token=${encodeURIComponent(token)}` : "");
  const fmt = (x, d = 3) => (x === null || x === undefined ? "—" : Number(x).toPrecision(d));

  function setStatus(text, cls) {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + (cls || "");
  }

  function describe(d) {
    if (!d) return "";
    return d.kind === "label" ? d.decision : d.kind;
  }

  function showProgress(p) {
    total = p.total;
    $("bar-fill").style.width = (p.total ? (100 * p.reviewed) / p.total : 0) + "%";
    let t = `${p.reviewed} / ${p.total} reviewed · ${p.changed} label${p.changed === 1 ? "" : "s"} changed`;
    if (p.skipped) t += ` · ${p.skipped} skipped`;
    $("progress-text").textContent = t;
    $("done").hidden = p.resume < p.total;
    $("resume").dataset.pos = String(Math.min(p.resume, Math.max(p.total - 1, 0)));
  }

  function buildButtons() {
    const box = $("classes");
    box.textContent = "";
    classes.forEach((c, j) => {
      const b = document.createElement("button");
      b.className = "cls";
      b.dataset.index = String(j);
      b.title = c;
      if (j < 9) {
        const k = document.createElement("kbd");
        k.textContent = String(j + 1);
        b.appendChild(k);
      }
      const name = document.createElement("span");
      name.textContent = c;
      b.appendChild(name);
      const tag = document.createElement("span");
      tag.className = "tag";
      b.appendChild(tag);
      b.addEventListener("click", () => decide("label", c));
      box.appendChild(b);
    });
  }

  function render() {
    if (!item) return;
    $("image").src = imageUrl(item.id);
    $("image").alt = `sample ${item.id}`;
    $("caption").textContent =
      `id ${item.id} · rank ${item.rank} · score ${fmt(item.score)} · ${item.external_id}`;
    $("given").textContent = item.given_label;
    $("given").classList.toggle("differs", item.given_label !== item.suggested_label);
    $("suggested").textContent = item.suggested_label;
    $("sprob").textContent = `p = ${fmt(item.suggested_prob, 2)}`;
    const cur = item.decision;
    document.querySelectorAll(".cls").forEach((b) => {
      const c = classes[Number(b.dataset.index)];
      b.classList.toggle("is-given", c === item.given_label);
      b.classList.toggle("is-suggested", c === item.suggested_label);
      b.classList.toggle("chosen", !!cur && cur.kind === "label" && cur.decision === c);
      const tags = [];
      if (c === item.given_label) tags.push("given");
      if (c === item.suggested_label) tags.push("suggested");
      b.querySelector(".tag").textContent = tags.join(" · ");
    });
    $("unsure").classList.toggle("chosen", !!cur && cur.kind === "unsure");
    $("skip").classList.toggle("chosen", !!cur && cur.kind === "skip");
    $("current").textContent = cur
      ? `Current decision: ${describe(cur)} — ${cur.reviewer}, ${cur.decided_at.replace("T", " ").slice(0, 19)} UTC` +
        (item.history > 1 ? ` (${item.history} entries kept)` : "")
      : "No decision yet.";
    $("position").textContent = `${item.position + 1} / ${item.total}`;
    $("prev").disabled = item.position <= 0;
    $("next").disabled = item.position >= item.total - 1;
  }

  async function load(p) {
    if (p < 0 || p >= total) return;
    want = p;
    const mine = ++loadSeq;
    try {
      const it = await api(`/api/item/${p}`);
      if (mine !== loadSeq) return;
      item = it;
      render();
      if (p + 1 < total) api(`/api/item/${p + 1}`).then((n) => { new Image().src = imageUrl(n.id); }).catch(() => {});
    } catch (e) {
      setStatus(`could not load item: ${e.message}`, "error");
    }
  }

  async function decide(kind, label) {
    if (!item || busy) return;
    busy = true;
    const id = item.id;
    setStatus("saving…", "saving");
    try {
      const r = await api("/api/decision", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          sample_id: id,
          decision: kind === "label" ? label : kind,
          kind: kind,
          reviewer: $("reviewer").value.trim(),
        }),
      });
      showProgress(r);
      setStatus(`saved: ${describe(r.decision)} for sample ${id}`, "saved");
      if (item && item.id === id) {
        item.decision = r.decision;
        item.history += 1;
        render();
      }
      // move on only if the reviewer is still on the decided item (no navigation meanwhile)
      if (item && item.id === id && want === item.position && want + 1 < total) await load(want + 1);
    } catch (e) {
      setStatus(`NOT saved: ${e.message}`, "error");
    } finally {
      busy = false;
    }
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target && (ev.target.tagName === "INPUT" || ev.target.tagName === "TEXTAREA")) {
      if (ev.key === "Escape" || ev.key === "Enter") ev.target.blur();
      return;
    }
    if (/^[1-9]$/.test(ev.key)) {
      const j = Number(ev.key) - 1;
      if (j < classes.length) { ev.preventDefault(); decide("label", classes[j]); }
    } else if (ev.key === "u" || ev.key === "U") {
      ev.preventDefault(); decide("unsure");
    } else if (ev.key === "s" || ev.key === "S") {
      ev.preventDefault(); decide("skip");
    } else if (ev.key === "ArrowLeft") {
      ev.preventDefault(); load(want - 1);
    } else if (ev.key === "ArrowRight") {
      ev.preventDefault(); load(want + 1);
    }
  });

  $("unsure").addEventListener("click", () => decide("unsure"));
  $("skip").addEventListener("click", () => decide("skip"));
  $("prev").addEventListener("click", () => load(want - 1));
  $("next").addEventListener("click", () => load(want + 1));
  $("resume").addEventListener("click", () => load(Number($("resume").dataset.pos || 0)));
  $("reviewer").addEventListener("change", () => {
    try { localStorage.setItem("labeltrace.reviewer", $("reviewer").value.trim()); } catch (e) { /* private mode */ }
  });

  async function init() {
    try {
      const s = await api("/api/state");
      classes = s.classes;
      $("run").textContent = s.run;
      document.title = `labeltrace review — ${s.run}`;
      let who = params.get("reviewer");
      if (!who) { try { who = localStorage.getItem("labeltrace.reviewer"); } catch (e) { who = null; } }
      $("reviewer").value = who || s.reviewer || "";
      buildButtons();
      showProgress(s);
      if (total === 0) { setStatus("The review queue is empty.", ""); return; }
      const start = params.has("pos") ? Number(params.get("pos")) : Math.min(s.resume, total - 1);
      await load(Number.isInteger(start) && start >= 0 && start < total ? start : 0);
    } catch (e) {
      setStatus(`could not start: ${e.message}`, "error");
    }
  }
  init();
})();
