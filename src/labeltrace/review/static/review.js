(() => {
  "use strict";
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  let classes = [];
  let total = 0;
  let want = 0; // position asked for last (moves at once, so fast key presses add up)
  let item = null;
  let busy = false; // a decision is being sent
  let pendingId = null; // the sample just saved, while the page moves on from it
  let dropped = false; // a decision key pressed meanwhile, and not saved
  let loadSeq = 0;
  let named = false; // one vote cannot settle a sample (agree above 1, or the given label counts): every decision needs a name
  let keyOf = []; // each class's key ("" for none): its own name when every name is one character, else 1-9, 0
  let keyIndex = new Map(); // key (lower case) -> class index
  let excludeKey = "x"; // the key of "Exclude (not any class)": "" when a class has "x" as its own key
  let jumpKey = "g"; // the key that focuses the "go to" box: "" when a class has "g" as its own key
  let defaultReviewer = ""; // the server's --reviewer: the name of a page that gives none
  let view = null; // what the page was opened on (run, scan, blind mode): sent with every request after the first
  let blind = null; // "model" / "all": the server sends neither the model's view nor the others' votes (nor the given label)
  let statusAbout = null; // the sample an error message is about: marked as earlier once another one shows
  let lastDecided = null; // {position, id} of this page's latest saved decision: Backspace goes back to it
  let resumedAt = null; // the position the page opened at by the resume (no ?pos=): a name typed there resumes theirs
  let heldAs = null; // the name the sample shown is held under (the box's when it was asked for)

  // the API lies beside the page: behind a reverse proxy that serves it under a path
  // (https://host/labeltrace/) every request keeps that path; "/labeltrace" opened without its
  // slash (a proxy that does not redirect) is the same folder
  const HERE = location.pathname.endsWith("/") ? location.pathname : `${location.pathname}/`;
  const at = (path) => HERE + path;

  // the access token goes in a header, never in a URL the page requests (a proxy's access log,
  // the browser's history, a Referer would keep it). The printed link carries it in the fragment
  // (#token=..., which a browser never sends), a link printed before in ?token=: either is taken
  // out of the address bar at once and kept for this tab's reloads (sessionStorage, one per
  // folder: two review servers behind one proxy keep theirs apart)
  const TOKEN_KEY = `labeltrace.token:${HERE}`;
  const token = (() => {
    const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    const given = hash.get("token") || params.get("token") || "";
    if (hash.has("token") || params.has("token")) {
      hash.delete("token");
      params.delete("token");
      const q = params.toString(), h = hash.toString();
      try {
        history.replaceState(history.state, "", location.pathname + (q ? `?${q}` : "") + (h ? `#${h}` : ""));
      } catch (e) { /* the address bar keeps it; no request carries it */ }
    }
    try {
      if (given) sessionStorage.setItem(TOKEN_KEY, given);
      return given || sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (e) { return given; } // private mode: the token of this load only
  })();
  // the printed link opened in a tab already on the page (told to open it: no token, or a server
  // restarted with another one) differs from the address bar only in its fragment: the browser
  // does not load the page again, it only fires hashchange. Load it again: the load reads it
  addEventListener("hashchange", () => {
    if (new URLSearchParams(location.hash.replace(/^#/, "")).has("token")) location.reload();
  });
  const NO_TOKEN = "this review server needs its access token: open the link `labeltrace review` printed " +
    "(it ends in #token=...)";
  const BAD_TOKEN = "the review server refused this page's access token (restarted with another one?): open " +
    "the link `labeltrace review` printed now";

  async function api(path, opts = {}) {
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (token) headers["X-Labeltrace-Token"] = token;
    if (view) headers["X-Labeltrace-View"] = view; // a server restarted on another run or mode refuses it
    let r;
    try {
      r = await fetch(at(path), Object.assign({}, opts, { headers, cache: "no-store" }));
    } catch (e) { // the browser's own words ("Failed to fetch") say nothing to a reviewer
      throw new Error("the review server cannot be reached (stopped, or the network is down); once it is back, " +
        "press the key again");
    }
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (r.status === 401) throw new Error(token ? BAD_TOKEN : NO_TOKEN);
    if (!r.ok) {
      const d = body && body.detail;
      const field = (x) => (Array.isArray(x.loc) && x.loc.length ? `${x.loc[x.loc.length - 1]}: ` : "");
      const words = Array.isArray(d) ? d.filter((x) => x && x.msg).map((x) => field(x) + x.msg).join("; ") : "";
      throw new Error(typeof d === "string" ? d : words || `HTTP ${r.status}`);
    }
    return body;
  }

  // the view in the URL: the browser keeps an image an hour, and after a restart on another run, scan or
  // blind mode the same id names another image (the old one was shown, with the new run's labels)
  const imagePath = (id, thumb, full) => at(`api/image/${id}`) +
    `?${thumb ? "thumb=true&" : full ? "full=true&" : ""}view=${encodeURIComponent(view || "")}`;
  // images: an <img src> cannot send the token's header, so each is fetched with it and shown
  // from an object URL, revoked as soon as its <img> shows another one or leaves the page (a
  // long session would otherwise keep every image it showed in memory)
  async function imageBlob(path) {
    let r;
    try {
      r = await fetch(path, { headers: Object.assign(token ? { "X-Labeltrace-Token": token } : {},
        view ? { "X-Labeltrace-View": view } : {}) });
    } catch (e) {
      throw new Error("the review server cannot be reached (stopped, or the network is down)");
    }
    if (r.status === 401) throw new Error(token ? BAD_TOKEN : NO_TOKEN);
    if (!r.ok) {
      let d = null;
      try { d = (await r.json()).detail; } catch (e) { d = null; }
      throw new Error(typeof d === "string" ? d : `HTTP ${r.status}`);
    }
    return r.blob();
  }
  const shownUrl = new WeakMap(); // <img> -> the object URL it shows
  function setImage(im, blob) {
    const old = shownUrl.get(im);
    if (blob) {
      const u = URL.createObjectURL(blob);
      shownUrl.set(im, u);
      im.src = u;
    } else {
      shownUrl.delete(im);
      im.removeAttribute("src");
    }
    if (old) URL.revokeObjectURL(old);
  }
  const dropImages = (box) => box.querySelectorAll("img").forEach((im) => setImage(im, null));
  let ahead = null; // {path, blob: a promise}: the next item's image, fetched while this one is decided
  function prefetch(path) {
    const blob = imageBlob(path);
    blob.catch(() => {}); // said when it is shown, if ever
    ahead = { path, blob };
  }
  // the main image: another sample's picture is never left under this one's caption meanwhile;
  // a failure says why (the server's reason: changed since the scan, unreadable)
  let imageSeq = 0;
  async function showImage(id, full) {
    const im = $("image"), path = imagePath(id, false, full);
    if (im.dataset.src === path) return;
    const mine = ++imageSeq;
    if (im.dataset.id !== String(id)) setImage(im, null);
    im.dataset.id = String(id);
    im.dataset.src = path; // what it shows (or will): the API path, without any token
    const blob = ahead && ahead.path === path ? ahead.blob : imageBlob(path);
    if (ahead && ahead.path === path) ahead = null;
    try {
      const b = await blob;
      if (mine === imageSeq) setImage(im, b);
    } catch (e) {
      if (mine !== imageSeq) return;
      setImage(im, null);
      delete im.dataset.src; // asked again on the next zoom
      const why = e.message.includes(`sample ${id} `) ? e.message : `image of sample ${id}: ${e.message}`; // the server's names it
      if (item && item.id === id) setStatus(`${why} — decide without it, or skip`, "error", item);
    }
  }
  const who = () => $("reviewer").value.trim();
  // the name a decision of this page is stored under, spelled as the store spells names
  const me = () => ((who() || defaultReviewer).split(/\s+/).filter(Boolean).join(" ") || "anonymous").normalize("NFC");
  const withWho = (path) => (who() ? `${path}?reviewer=${encodeURIComponent(who())}` : path);
  // this tab's id: the sample it shows is held for it, and its place steers a live re-ranking,
  // apart from the reviewer's other tabs; kept for the tab (sessionStorage), so a reload is the
  // same page, not a new one whose old hold and place would linger. "Duplicate tab" (or a link
  // this page opens) copies sessionStorage, id and all, while this tab is still open: an "open"
  // mark, set while the page shows and cleared when it goes (pagehide, which a reload fires first),
  // tells such a copy (mark set: a new id) from a reload (mark cleared: the same id)
  const PAGE = (() => {
    const made = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Math.random()).slice(2);
    const OPEN = "labeltrace.page.open";
    try {
      const kept = sessionStorage.getItem("labeltrace.page");
      const id = kept && sessionStorage.getItem(OPEN) !== "1" ? kept : made;
      sessionStorage.setItem("labeltrace.page", id);
      sessionStorage.setItem(OPEN, "1");
      const mark = (on) => { try { if (on) sessionStorage.setItem(OPEN, "1"); else sessionStorage.removeItem(OPEN); } catch (e) { /* gone */ } };
      addEventListener("pagehide", () => mark(false));
      addEventListener("pageshow", (ev) => { if (ev.persisted) mark(true); }); // back from the back/forward cache
      return id;
    } catch (e) { /* private mode: a page id per load */ }
    return made;
  })();
  const onPage = (path) => `${path}${path.includes("?") ? "&" : "?"}page=${PAGE}`;
  // the number of each request that shows this tab a sample: quick arrow keys send several at once,
  // which the server may answer out of order, and it keeps the hold where the latest one put it.
  // Counted from the clock (in microseconds), so a reload's numbers come after the last page's
  let shownSeq = Date.now() * 1000;
  const nextSeq = () => ++shownSeq;
  // a decision button gives up the focus when used (to the item's heading, where a screen reader
  // reads the next sample): Enter or Space would click it again on the next sample
  const leaveDecisionButton = () => {
    const a = document.activeElement;
    if (a && a.closest && a.closest(".classes, .actions")) $("item-head").focus({ preventScroll: true });
  };
  const onDecide = (el, fn) => el.addEventListener("click", () => { leaveDecisionButton(); fn(); });
  const press = (el, on) => { el.classList.toggle("chosen", on); el.setAttribute("aria-pressed", String(on)); };
  const SVG = "http://www.w3.org/2000/svg";
  const fmt = (x, d = 3) => (x === null || x === undefined ? "—" : Number(x).toPrecision(d));

  // `about`: the item an error is about; once another item shows, the message says it was earlier
  function setStatus(text, cls, about = null) {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + (cls || "");
    delete s.dataset.earlier;
    statusAbout = cls === "error" ? about : null;
  }
  const where = (it) => `sample ${it.id} (position ${it.position + 1})`;
  // a name that holds a bidi control or a right-to-left letter, isolated (U+2068 ... U+2069) in a
  // line of text: a class name with U+202E showed the reviewer's name and the date after it backwards
  const BIDI = /[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069\u{10800}-\u{10fff}\u{1e800}-\u{1efff}]/u;
  // the explicit controls (embeddings, overrides, isolates) shown by their code points: a name's own
  // U+2069 closed the isolation around it, and a U+202E after it turned the rest of the line around
  const CONTROLS = /[\u202a-\u202e\u2066-\u2069]/gu;
  const visible = (s) => s.replace(CONTROLS, (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase()}⟩`);
  const iso = (s) => (typeof s === "string" && BIDI.test(s) ? `\u2068${visible(s)}\u2069` : s);

  // an action shows in parentheses, a class named like one with "class": never mistaken
  const ACTION_TEXT = { skip: "skipped", exclude: "excluded: not any class" };
  function describe(d) {
    if (!d) return "";
    if (d.kind !== "label") return `(${ACTION_TEXT[d.kind] || d.kind})`;
    return ["unsure", "skip", "exclude"].includes(d.decision) ? `class ${d.decision}` : iso(d.decision);
  }

  let progressSeq = 0; // progress shown so far: an answer asked for before the latest one shown is older
  function showProgress(p) {
    progressSeq += 1;
    total = p.total;
    if (p.rule) {
      named = Boolean(p.rule.names);
      $("reviewer").required = named;
      $("reviewer").setAttribute("aria-required", String(named));
      $("req").hidden = !named;
    }
    $("bar-fill").style.width = (p.total ? (100 * p.reviewed) / p.total : 0) + "%";
    let t = `${p.reviewed} / ${p.total} reviewed`;
    if (p.changed !== undefined) t += ` · ${p.changed} label${p.changed === 1 ? "" : "s"} changed`; // not when blind
    if (p.skipped) t += ` · ${p.skipped} skipped`;
    if (p.excluded) t += ` · ${p.excluded} excluded`; // not when blind: an exclude is a vote
    if (p.rule && p.resolved !== undefined && (p.rule.agree > 1 || p.disputed || p.unresolved)) {
      // label votes short of the rule that no one disputes: they wait for another reviewer
      const waiting = p.unresolved !== undefined ? p.unresolved - p.disputed : 0;
      t += ` · ${p.resolved} resolved · ${p.disputed} disputed` +
        (waiting > 0 ? ` · ${waiting} waiting for votes` : "") + ` (${p.rule.text})`;
    }
    $("progress-text").textContent = t;
    const live = $("live");
    if (p.live) {
      live.hidden = false;
      live.textContent = `live order · re-ranked ${p.live.version}×` +
        (p.live.refreshing ? " · re-ranking…" : ` · next after ${p.live.until_next} more`);
      live.dataset.version = String(p.live.version);
      if (p.live.error) live.title = p.live.error;
    } else {
      live.hidden = true;
    }
    $("done").hidden = p.resume < p.total;
    const open = p.without_consensus || 0; // unsure, disputed, or short of votes: the given label stays
    $("done-open").textContent = open ? ` ${open} ${open === 1 ? "sample has" : "samples have"} decisions without ` +
      "a consensus (unsure, disputed, or short of votes): the export keeps their given labels and lists them in " +
      "its .unresolved.csv." : "";
    $("resume").dataset.pos = String(Math.min(p.resume, Math.max(p.total - 1, 0)));
  }

  // classes named by one character each (digits 0-9, letters) are chosen by that character: key
  // "5" is class "5", not the fifth class ("4"); so is a class named by a number 0-9 among longer
  // names (0..10, folders 1, 10, 11, 12, 2, ..., or 000..199: by position key 2 chose "1", "10" or
  // "001"), a digit two names claim ("1", "01") by neither, other numbers without a key, other names
  // a digit left; otherwise 1-9 and 0 choose the first ten
  function buildKeys() {
    const lower = classes.map((c) => c.toLowerCase());
    const own = classes.every((c) => [...c].length === 1 && c.trim() !== "") && new Set(lower).size === classes.length &&
      !lower.some((c) => c === "u" || c === "s");
    const digitOf = classes.map((c) => { const m = /^0*([0-9])$/.exec(c); return m ? m[1] : ""; });
    const digits = !own && digitOf.some((d) => d !== "");
    const once = (d) => d !== "" && digitOf.filter((e) => e === d).length === 1;
    keyOf = classes.map((c, j) => (own ? c : digits ? (once(digitOf[j]) ? digitOf[j] : "") :
      j < 9 ? String(j + 1) : j === 9 ? "0" : ""));
    // beside number classes, a class named otherwise (grades 0-4 and "ungradable") takes a digit no
    // number claims, in order: it had none; a number (10, 011) takes none (typed "10" must not choose twice)
    const number = (c) => /^[0-9]+$/.test(c);
    if (digits) {
      const spare = [..."1234567890"].filter((d) => !keyOf.includes(d));
      keyOf = keyOf.map((k, j) => (k || number(classes[j]) ? k : spare.shift() ?? ""));
    }
    const spared = digits && keyOf.some((k, j) => k !== "" && !number(classes[j]));
    keyIndex = new Map(keyOf.map((k, j) => [k.toLowerCase(), j]).filter(([k]) => k !== ""));
    // x excludes (the image is of no class) unless a class named "x" has its own key ("u" and "s"
    // class names give up own keys altogether, as they always did)
    excludeKey = own && keyIndex.has("x") ? "" : "x";
    $("exclude").querySelector("kbd").hidden = !excludeKey;
    $("exclude-key").hidden = !excludeKey;
    // g puts the focus in the "go to" box, unless a class named "g" has its own key
    jumpKey = keyIndex.has("g") ? "" : "g";
    $("jump-key").hidden = !jumpKey;
    $("keys").textContent = own ? "a class's own name" : digits ? (spared ? "a number's own digit, the others a digit left"
      : "a class's own digit") : classes.length > 9 ? "1–9, 0" : `1–${classes.length}`;
  }

  // the buttons say which single keys decide, while those keys are on
  function shortcutKeys() {
    const on = $("shortcuts").checked;
    document.querySelectorAll(".cls").forEach((b) => {
      const k = keyOf[Number(b.dataset.index)];
      if (on && k) b.setAttribute("aria-keyshortcuts", k); else b.removeAttribute("aria-keyshortcuts");
    });
    ["unsure", "skip"].forEach((id) => (on ? $(id).setAttribute("aria-keyshortcuts", id[0]) : $(id).removeAttribute("aria-keyshortcuts")));
    if (on && excludeKey) $("exclude").setAttribute("aria-keyshortcuts", excludeKey); else $("exclude").removeAttribute("aria-keyshortcuts");
    if (on && jumpKey) $("jump").setAttribute("aria-keyshortcuts", jumpKey); else $("jump").removeAttribute("aria-keyshortcuts");
  }

  // many classes: a box that keeps the buttons whose names hold what is typed (Enter chooses the
  // one left); cleared for each new sample
  const FILTER_FROM = 13;
  function filterClasses() {
    const q = $("class-filter").value.trim().normalize("NFC").toLowerCase();
    const shown = [];
    document.querySelectorAll(".cls").forEach((b) => {
      const j = Number(b.dataset.index);
      b.hidden = q !== "" && !classes[j].normalize("NFC").toLowerCase().includes(q);
      if (!b.hidden) shown.push(j);
    });
    return shown;
  }

  function buildButtons() {
    buildKeys();
    $("class-filter").hidden = classes.length < FILTER_FROM;
    const box = $("classes");
    box.textContent = "";
    classes.forEach((c, j) => {
      const b = document.createElement("button");
      b.className = "cls";
      b.dataset.index = String(j);
      b.title = c;
      b.setAttribute("aria-pressed", "false");
      if (keyOf[j]) {
        const k = document.createElement("kbd");
        k.textContent = keyOf[j];
        b.appendChild(k);
      }
      const name = document.createElement("span");
      name.textContent = c;
      b.appendChild(name);
      const tag = document.createElement("span");
      tag.className = "tag";
      b.appendChild(tag);
      onDecide(b, () => decide("label", c));
      box.appendChild(b);
    });
  }

  // zoom (fit, 2×, 4×: a large image is fetched at its own resolution) and window / level (a linear
  // map of grey values, as radiology viewers apply it, kept from one sample to the next)
  let zoom = 1;
  let shownId = null;
  function setZoom(z) {
    zoom = z;
    const f = $("frame"), im = $("image");
    document.querySelectorAll("[data-zoom]").forEach((b) => press(b, Number(b.dataset.zoom) === z));
    f.classList.toggle("zoomed", z > 1);
    if (z > 1) { // the keyboard moves a zoomed image
      f.tabIndex = 0; f.setAttribute("role", "group");
      f.setAttribute("aria-label", "zoomed image: the arrow keys move it, Escape leaves it");
    } else {
      ["tabindex", "role", "aria-label"].forEach((a) => f.removeAttribute(a));
    }
    im.style.width = im.style.height = z > 1 ? `${512 * z}px` : "";
    if (item) showImage(item.id, z > 1);
    centre();
    // an image not yet arrived is laid out as its alt text, which the zoom does not size: it is
    // centred when it comes (else a zoom chosen early showed its top-left corner)
    centreOnLoad = z > 1 && f.scrollWidth <= f.clientWidth;
  }
  let centreOnLoad = false;
  function centre() {
    const f = $("frame");
    f.scrollLeft = (f.scrollWidth - f.clientWidth) / 2;
    f.scrollTop = (f.scrollHeight - f.clientHeight) / 2;
  }
  $("image").addEventListener("load", () => {
    if (centreOnLoad && zoom > 1) centre();
    centreOnLoad = false;
  });
  function applyWindow() {
    const w = Number($("win").value), l = Number($("lev").value);
    document.querySelectorAll("#wl feFuncR, #wl feFuncG, #wl feFuncB").forEach((fn) => {
      fn.setAttribute("slope", String(255 / w));
      fn.setAttribute("intercept", String(-(l - w / 2) / w));
    });
    const full = w === 255 && l === 127.5;
    $("image").style.filter = full ? "" : "url(#wl)";
    $("wl-text").textContent = full ? "" : `grey ${Math.max(0, l - w / 2).toFixed(0)}–${Math.min(255, l + w / 2).toFixed(0)} ` +
      "spread over black–white";
  }

  function render() {
    if (!item) return;
    if (item.id !== shownId) { // each sample starts whole in the frame, with every class button
      shownId = item.id; setZoom(1);
      // the box is emptied unless the reviewer is typing in it for this sample (chosen by Enter)
      if (document.activeElement !== $("class-filter")) $("class-filter").value = "";
      filterClasses();
    }
    $("image").alt = `sample ${item.id}`;
    $("item-head").textContent = `Sample ${item.id}, ${item.position + 1} of ${item.total}` +
      (blind === "all" ? "" : `, given label ${iso(item.given_label)}`) +
      (blind || item.suggested_label === null || item.suggested_label === item.given_label ? ""
        : `, suggested ${iso(item.suggested_label)}`);
    if (statusAbout && statusAbout.id !== item.id && !$("status").dataset.earlier) {
      $("status").dataset.earlier = "1"; // the error stays, said to be about another sample
      $("status").textContent = `Earlier, on ${where(statusAbout)}: ${$("status").textContent}`;
    }
    // blind: no rank or score (the model's view), and under --blind-all no external id (a folder
    // dataset's is class/file)
    // the external id (a file to look up, copied from here) in a <bdi>: isolated without characters added to it
    const ext = item.external_id === null ? null : Object.assign(document.createElement("bdi"), { textContent: visible(item.external_id) });
    $("caption").replaceChildren(...[`id ${item.id}`, item.rank === null ? null : `rank ${item.rank}`,
      blind ? null : `score ${fmt(item.score)}`, ext].filter((x) => x !== null).flatMap((x, j) => (j ? [" · ", x] : [x])));
    $("given").textContent = item.given_label;
    $("given").classList.toggle("differs", item.suggested_label !== null && item.given_label !== item.suggested_label);
    $("suggested").textContent = item.suggested_label;
    $("sprob").textContent = `p = ${fmt(item.suggested_prob, 2)}`;
    const cur = item.decision;
    // a page shows another reviewer's decision (no name, or one vote settles) as theirs, not its own
    const own = !!cur && cur.reviewer.normalize("NFC") === me();
    document.querySelectorAll(".cls").forEach((b) => {
      const c = classes[Number(b.dataset.index)];
      b.classList.toggle("is-given", c === item.given_label);
      b.classList.toggle("is-suggested", c === item.suggested_label);
      press(b, own && cur.kind === "label" && cur.decision === c);
      const tags = [];
      if (c === item.given_label) tags.push("given");
      if (c === item.suggested_label) tags.push("suggested");
      b.querySelector(".tag").textContent = tags.join(" · ");
    });
    press($("unsure"), own && cur.kind === "unsure");
    press($("skip"), own && cur.kind === "skip");
    press($("exclude"), own && cur.kind === "exclude");
    $("current").textContent = cur
      ? `${own ? "Current decision" : `Latest decision, by ${iso(cur.reviewer)} (not yours)`}: ${describe(cur)} — ` +
        `${iso(cur.reviewer)}, ${cur.decided_at.replace("T", " ").slice(0, 19)} UTC` +
        (item.history > 1 ? ` (${item.history} entries kept${blind ? "" : ", by all reviewers"})` : "")
      : "No decision yet.";
    $("position").textContent = `${item.position + 1} / ${item.total}`;
    $("prev").disabled = item.position <= 0;
    $("next").disabled = item.position >= item.total - 1;
    renderVotes();
    renderCopies();
    renderTop();
  }

  // its exact copies (the same pixels; not under --blind-all): under another label, one label is wrong
  function renderCopies() {
    const box = $("copies"), c = item.copies, many = c && c.count > 1;
    box.hidden = !c;
    box.replaceChildren();
    if (!c) return;
    box.classList.toggle("differ", c.differ);
    box.append(c.differ ? `⚠ Exact cop${many ? "ies" : "y"} of this image (the same pixels) under another label — ` +
      "at least one label is wrong: " : `Exact cop${many ? "ies" : "y"} of this image (the same pixels, the same given label): `);
    c.samples.forEach((s, j) => {
      const b = Object.assign(document.createElement("button"), { className: "link", textContent: `sample ${s.id}` });
      b.addEventListener("click", () => goTo(`id ${s.id}`));
      const now = blind || s.label === s.given_label ? "" : s.label === null ? ", now excluded" : `, now ${iso(s.label)}`;
      box.append(...(j ? [", "] : []), b, ` (given ${iso(s.given_label)}${now})`);
    });
    if (c.count > c.samples.length) box.append(` and ${c.count - c.samples.length} more`);
  }

  function renderVotes() {
    const box = $("votes");
    box.textContent = "";
    const labelled = item.views.filter((v) => v.kind === "label" || v.kind === "exclude"); // the votes
    if (blind || !item.views.length) return; // blind: only this page's own decision, shown above
    // a Map: a class named "constructor" or "__proto__" is a key like any other
    const by = new Map();
    item.views.forEach((v) => {
      const d = describe(v);
      if (!by.has(d)) by.set(d, []);
      by.get(d).push(iso(v.reviewer));
    });
    const parts = [...by.keys()].sort().map((d) => `${d}: ${by.get(d).join(", ")}`);
    const line = document.createElement("span");
    line.textContent = `Reviews: ${parts.join(" · ")} `;
    box.appendChild(line);
    const st = document.createElement("span");
    const c = item.consensus;
    if (c.status === "resolved") {
      st.className = "resolved";
      st.textContent = c.excluded ? "— consensus: excluded (not any class)" : `— consensus: ${iso(c.label)}`;
    } else if (c.status === "disputed") {
      st.className = "disputed";
      st.textContent = `— reviewers disagree; no consensus yet (${c.text})`;
    } else if (labelled.length) {
      st.textContent = `— awaiting more reviews (${c.text})`;
    }
    box.appendChild(st);
  }

  function renderTop() {
    const box = $("top");
    box.textContent = "";
    (item.top || []).forEach((t) => {
      const row = document.createElement("div");
      row.className = "topbar";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = t.label;
      name.title = t.label;
      const bar = document.createElement("span");
      bar.className = "bar2";
      const fill = document.createElement("div");
      fill.style.width = `${Math.round(100 * t.p)}%`;
      bar.appendChild(fill);
      const num = document.createElement("span");
      num.className = "num";
      num.textContent = fmt(t.p, 2);
      row.append(name, bar, num);
      box.appendChild(row);
    });
  }

  function sparkline(traj) {
    const box = $("trajectory");
    box.textContent = "";
    $("traj-view").textContent = traj ? `(${traj.view})` : "(not recorded per epoch)";
    if (!traj) return;
    const w = 300, h = 56, n = traj.p_given.length;
    const svg = document.createElementNS(SVG, "svg");
    const ends = (vals) => { const v = vals.filter((x) => x !== null); return v.length ? `${fmt(v[0], 2)} to ${fmt(v[v.length - 1], 2)}` : "not recorded"; };
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `trajectory over ${n} epoch${n === 1 ? "" : "s"}: p(given) from ` +
      `${ends(traj.p_given)}, signed entropy from ${ends(traj.signed_entropy)}`);
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const x = (t) => (n > 1 ? (t * (w - 8)) / (n - 1) + 4 : w / 2);
    const line = (vals, lo, hi, color, dash) => {
      const pts = vals.map((v, t) => (v === null ? null : `${x(t).toFixed(1)},${(h - 4 - ((v - lo) / (hi - lo)) * (h - 8)).toFixed(1)}`))
        .filter((p) => p !== null);
      if (!pts.length) return;
      const pl = document.createElementNS(SVG, "polyline");
      pl.setAttribute("points", pts.join(" "));
      pl.setAttribute("fill", "none");
      pl.setAttribute("stroke", color);
      pl.setAttribute("stroke-width", "2");
      pl.setAttribute("vector-effect", "non-scaling-stroke");
      if (dash) pl.setAttribute("stroke-dasharray", dash); // told apart without colour
      svg.appendChild(pl);
    };
    const mid = document.createElementNS(SVG, "line");
    mid.setAttribute("x1", "0"); mid.setAttribute("x2", String(w));
    mid.setAttribute("y1", String(h / 2)); mid.setAttribute("y2", String(h / 2));
    mid.setAttribute("stroke", "#dde1e6");
    svg.appendChild(mid);
    line(traj.p_given, 0, 1, "#1f5fa8");
    line(traj.signed_entropy, -1, 1, "#d17a00", "4 2");
    svg.setAttribute("data-epochs", String(n));
    box.appendChild(svg);
  }

  function renderNeighbours(ctx) {
    const box = $("neighbours");
    dropImages(box);
    box.textContent = "";
    ctx.neighbours.forEach((grp) => {
      const row = document.createElement("div");
      row.className = "nrow";
      row.dataset.role = grp.role;
      const k = document.createElement("div");
      k.className = "k";
      k.textContent = `Nearest ${grp.role === "given" ? "given" : "suggested"} class: ${iso(grp.label)}`;
      const thumbs = document.createElement("div");
      thumbs.className = "thumbs";
      grp.ids.forEach((id) => {
        const im = document.createElement("img");
        // shown once fetched, unless another sample's context replaced it meanwhile
        imageBlob(imagePath(id, true)).then((b) => { if (im.isConnected) setImage(im, b); }).catch(() => {
          if (im.isConnected) im.alt = `${im.alt}: image unavailable`;
        });
        im.alt = `sample ${id} (${iso(grp.label)})`;
        im.title = `sample ${id}`;
        im.dataset.id = String(id);
        thumbs.appendChild(im);
      });
      row.append(k, thumbs);
      box.appendChild(row);
    });
  }

  async function loadContext(id) {
    try {
      const ctx = await api(`api/context/${id}`);
      if (!item || item.id !== id) return;
      sparkline(ctx.trajectory);
      renderNeighbours(ctx);
    } catch (e) {
      if (item && item.id === id) {
        dropImages($("neighbours"));
        $("neighbours").textContent = `no context: ${e.message}`;
        sparkline(null);
      }
    }
  }

  // true when the item at p is shown (or a later navigation superseded it), false when it failed;
  // `moving`: the page moving on after a save (any other item shown ends the refusal of keys);
  // `resume`: the page opens at this reviewer's resume, which the server finds as it holds it (p is
  // where it read that to be: a colleague opening at the same moment is sent to another sample)
  async function load(p, moving = false, resume = false) {
    if (p < 0 || p >= total) return false;
    want = p;
    const mine = ++loadSeq, as = who();
    try {
      const it = await api(`${onPage(withWho(`api/item/${p}`))}&seq=${nextSeq()}${resume ? "&resume=true" : ""}`);
      if (mine !== loadSeq) return true;
      if (resume) want = resumedAt = it.position;
      item = it;
      heldAs = as;
      if (!moving || it.id !== pendingId) pendingId = null;
      render();
      if (!blind) loadContext(it.id);
      const ahead = it.position + 1; // a resume shows another position than p
      if (ahead < total) api(`api/item/${ahead}?peek=true`).then((n) => prefetch(imagePath(n.id))).catch(() => {});
      return true;
    } catch (e) {
      if (mine === loadSeq) {
        pendingId = null; // the sample shown stays, with the error: keys are for it
        if (item) want = item.position; // and arrows move from it, not from the item that failed
      }
      setStatus(`could not load item: ${e.message}`, "error");
      return false;
    }
  }

  async function decide(kind, label) {
    if (!item) return;
    leaveDecisionButton(); // a key pressed on a focused decision button: Enter must not decide the next sample
    // a key while a decision is sent, or while the sample just saved is still shown (the page is
    // moving on): never a second decision on that sample by accident
    if (busy || (pendingId !== null && item.id === pendingId)) {
      dropped = true;
      setStatus(busy ? "NOT saved: the previous decision is still being saved — press the key again once it reads saved"
        : `NOT saved: sample ${pendingId} is decided and the page is moving on — press the key again once ` +
          "another sample shows",
      "error", busy ? null : item);
      return;
    }
    if (named && !who()) {
      // the box is not focused for the reviewer: the next decision keys would be typed into the name
      setStatus(`NOT saved: type your name in the Reviewer box (top) first, then press Enter — one vote cannot ` +
        "settle a sample here, so every vote needs a name", "error");
      $("reviewer").classList.add("needed");
      $("reviewer").setAttribute("aria-invalid", "true");
      return;
    }
    busy = true;
    dropped = false;
    const id = item.id, at = item;
    setStatus("saving…", "saving");
    let r;
    try {
      r = await api("api/decision", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          sample_id: id,
          decision: kind === "label" ? label : kind,
          kind: kind,
          reviewer: who(),
          page: PAGE,
          seq: nextSeq(),
        }),
      });
    } catch (e) {
      busy = false;
      setStatus(`NOT saved (${where(at)}): ${e.message}`, "error", at);
      return;
    }
    // stored: from here on, a failure of the page is never reported as a decision not saved
    busy = false;
    const saved = `saved: ${describe(r.decision)} for sample ${id} (position ${at.position + 1})`;
    setStatus(saved, "saved");
    lastDecided = { position: at.position, id };
    $("back").hidden = false;
    let moved = true;
    try {
      showProgress(r);
      if (item && item.id === id) {
        item.decision = r.decision;
        item.history += 1;
        render();
      }
      // move on only if the reviewer is still on the decided item (no navigation meanwhile),
      // to the next item this reviewer has not decided (the server knows the live order)
      const next = typeof r.next === "number" ? r.next : want + 1;
      if (item && item.id === id && want === item.position && next < total) {
        pendingId = id; // until another item shows: a key now would decide this sample again
        moved = await load(next, true);
      }
    } catch (e) {
      pendingId = null;
      setStatus(`${saved}, but the page could not show it: ${e.message}; reload the page`, "error");
      return;
    }
    if (!moved && !dropped) {
      setStatus(`${saved}; the next sample could not be shown — reload the page`, "error");
    } else if (dropped && moved) {
      setStatus(`${saved} — a key pressed meanwhile was NOT saved` + (item && item.id !== id
        ? `; press it again for sample ${item.id}, shown now` : ""), "error");
    } else if (dropped) {
      setStatus(`${saved}; a key pressed meanwhile was NOT saved, and the next sample could not be shown ` +
        "(reload the page)", "error");
    }
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.isComposing || ev.keyCode === 229) return; // an input method's keys: its Enter commits the text typed
    if (ev.repeat && !ev.key.startsWith("Arrow")) return; // a held key decides one sample, not a run of them
    // a text box takes its keys; a slider (window / level) does not: a class key still decides
    const t = ev.target;
    const typed = t && ((t.tagName === "INPUT" && !["range", "checkbox", "radio", "button"].includes(t.type)) ||
      t.tagName === "TEXTAREA");
    if (typed) {
      if (t.id === "jump" && ev.key === "Enter") { ev.preventDefault(); if (!ev.repeat) goTo(); return; }
      if (t.id === "class-filter" && ev.key === "Enter" && !ev.repeat) {
        const shown = filterClasses();
        // the box keeps the focus: the next letters typed are the next sample's name, not shortcuts
        // ("species" would skip two samples, a digit choose a class)
        if (shown.length === 1) { ev.preventDefault(); t.value = ""; filterClasses(); decide("label", classes[shown[0]]); }
        return;
      }
      // Escape empties a search box (Chromium's own action, without an input event): every button again
      if (t.id === "class-filter" && ev.key === "Escape") { ev.preventDefault(); t.value = ""; filterClasses(); }
      if (ev.key === "Escape" || ev.key === "Enter") t.blur();
      return;
    }
    // a focused slider and a focused zoomed image keep their arrow keys (a value, a pan); Escape leaves them
    const own = t && ((t.tagName === "INPUT" && t.type === "range") || t.id === "frame");
    if (own && ev.key.startsWith("Arrow")) return;
    if (own && ev.key === "Escape") { t.blur(); return; }
    if (ev.key === "Backspace") {
      if (lastDecided) { ev.preventDefault(); load(lastDecided.position); }
      return;
    }
    if (!$("shortcuts").checked) { // single-character shortcuts off: arrows and Backspace only
      if (ev.key === "ArrowLeft") { ev.preventDefault(); load(want - 1); }
      if (ev.key === "ArrowRight") { ev.preventDefault(); load(want + 1); }
      return;
    }
    let j = keyIndex.get(ev.key.toLowerCase());
    const digit = /^(?:Digit|Numpad)(\d)$/.exec(ev.code || ""); // AZERTY: the digit row types & é " ...
    if (j === undefined && digit && !/^[usx]$/i.test(ev.key)) j = keyIndex.get(digit[1]);
    if (j !== undefined) {
      ev.preventDefault(); decide("label", classes[j]);
    } else if (ev.key === "u" || ev.key === "U") {
      ev.preventDefault(); decide("unsure");
    } else if (ev.key === "s" || ev.key === "S") {
      ev.preventDefault(); decide("skip");
    } else if (excludeKey && ev.key.toLowerCase() === excludeKey) {
      ev.preventDefault(); decide("exclude");
    } else if (jumpKey && ev.key.toLowerCase() === jumpKey) { // prevented: the g is not typed into the box
      ev.preventDefault(); $("jump").focus(); $("jump").select();
    } else if (ev.key === "ArrowLeft") {
      ev.preventDefault(); load(want - 1);
    } else if (ev.key === "ArrowRight") {
      ev.preventDefault(); load(want + 1);
    }
  });

  $("class-filter").addEventListener("input", filterClasses);
  $("class-filter").addEventListener("search", filterClasses); // its clear button, Escape
  onDecide($("unsure"), () => decide("unsure"));
  onDecide($("skip"), () => decide("skip"));
  onDecide($("exclude"), () => decide("exclude"));
  $("back").addEventListener("click", () => { if (lastDecided) load(lastDecided.position); });
  $("shortcuts").addEventListener("change", () => {
    shortcutKeys();
    try { localStorage.setItem("labeltrace.shortcuts", $("shortcuts").checked ? "on" : "off"); } catch (e) { /* private mode */ }
  });
  $("prev").addEventListener("click", () => load(want - 1));
  $("next").addEventListener("click", () => load(want + 1));
  // found and held as it is asked for (resume): the position read with the progress may be a colleague's since
  $("resume").addEventListener("click", () => load(Number($("resume").dataset.pos || 0), false, true));
  // "go to" a queue position (pos 12), a sample id or a file name, matched exactly: shown, and held,
  // as by any move. Answered with a position; should a live re-ranking move the sample before it is
  // asked for, the look-up runs once more. The box leaves the focus once there: keys decide again
  async function goTo(text) { // text: a copy's link; else the box's
    const box = $("jump"), typed = (typeof text === "string" ? text : box.value).trim();
    if (!typed) return;
    try {
      const find = () => api(`api/jump?to=${encodeURIComponent(typed)}`);
      // shown, and no other move asked for since (a failed load said why)
      const show = async (r) => r.position !== null && (await load(r.position)) && want === r.position && !!item;
      const missed = (r) => {
        if (r.position === null) setStatus(`Go to “${iso(typed)}”: ${r.problem}.`, "error");
        return r.position === null;
      };
      let r = await find();
      if (missed(r) || !(await show(r))) return;
      if (item.id !== r.id) { // moved before it was asked for: looked up again, unless another move came since
        const at = want;
        r = await find();
        if (want !== at || missed(r) || (item.id !== r.id && !(await show(r)))) return;
      }
      // a key pressed while the sample loaded went into the box, not to the page: said, not dropped unsaid
      const typedMeanwhile = typeof text !== "string" && box.value.trim() !== typed;
      if (typeof text !== "string") { box.value = ""; box.blur(); }
      // a bare number read as a name though it is another sample's id, or as an id since the sample so named
      // is out of the queue: the answer says which reading it used
      setStatus(`Went to “${iso(typed)}”: sample ${item.id}, position ${item.position + 1}` +
        (r.note ? ` (${r.note}).` : ".") + (typedMeanwhile ? " A key pressed while it loaded went into the " +
        "Go to box and was NOT saved: press it again." : ""), typedMeanwhile ? "error" : "");
    } catch (e) {
      setStatus(`could not go to “${iso(typed)}”: ${e.message}`, "error");
    }
  }
  $("jump-go").addEventListener("click", () => goTo());
  // the next disputed / unsure / unresolved sample after the one shown (wrapping around): for the
  // reviewer who settles what the others left open
  const FOUND = { disputed: "disputed", unsure: "unsure", unresolved: "decided without a consensus" };
  document.querySelectorAll("#find [data-what]").forEach((b) => b.addEventListener("click", async () => {
    const what = b.dataset.what;
    try {
      const r = await api(onPage(`api/find?what=${what}&after=${want}` + (who() ? `&reviewer=${encodeURIComponent(who())}` : "")));
      if (r.position === null) { setStatus(`No sample in the queue is ${FOUND[what]}.`, ""); return; }
      if (await load(r.position)) {
        setStatus(`${r.count} sample${r.count === 1 ? " is" : "s are"} ${FOUND[what]}; this is the next.`, "");
      }
    } catch (e) {
      setStatus(`could not search: ${e.message}`, "error");
    }
  }));
  document.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => setZoom(Number(b.dataset.zoom))));
  ["win", "lev"].forEach((id) => {
    $(id).addEventListener("input", applyWindow);
    $(id).addEventListener("pointerup", () => $(id).blur()); // the arrow keys move between samples again
  });
  $("wl-reset").addEventListener("click", () => {
    $("win").value = "255"; $("lev").value = "127.5"; applyWindow(); setZoom(1);
  });
  let drag = null; // a zoomed image is moved by dragging it
  $("frame").addEventListener("mousedown", (ev) => {
    if (zoom === 1) return;
    const f = $("frame");
    drag = { x: ev.clientX, y: ev.clientY, left: f.scrollLeft, top: f.scrollTop };
    f.classList.add("dragging");
    ev.preventDefault();
  });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    $("frame").scrollLeft = drag.left - (ev.clientX - drag.x);
    $("frame").scrollTop = drag.top - (ev.clientY - drag.y);
  });
  window.addEventListener("mouseup", () => { drag = null; $("frame").classList.remove("dragging"); });
  $("reviewer").addEventListener("input", () => {
    $("reviewer").classList.remove("needed");
    $("reviewer").removeAttribute("aria-invalid");
  });
  $("reviewer").addEventListener("change", async () => {
    try { localStorage.setItem("labeltrace.reviewer", $("reviewer").value.trim()); } catch (e) { /* private mode */ }
    // another reviewer at this page: their progress, and the sample shown as they see it (their decision);
    // a page still where it opened (no move, no decision since) goes to this reviewer's own place
    if (!classes.length) return; // not started yet: init reads the name
    // a decision saved, or a move made, while this answer comes shows its own progress and sample
    // (asked for with this name): this older answer would put back the count from before it and
    // the sample just decided
    const shown = progressSeq, loads = loadSeq;
    try {
      const before = heldAs; // the name the sample shown is held under now (a move meanwhile may change it)
      // the leave numbered before any item asked for from here on: where both names are one to the
      // server (the box cleared of the server's --reviewer, spaces, an accent's other form), the later hold stands
      const leaveSeq = nextSeq();
      const s = await api(withWho("api/state"));
      if (shown === progressSeq) showProgress(s);
      if (item && loads === loadSeq) {
        const fresh = item.position === resumedAt && !lastDecided;
        await load(fresh ? Math.min(s.resume, total - 1) : item.position, false, fresh);
      }
      if (heldAs !== before) leave(before, false, leaveSeq); // the hold under the name it had, which no one has open now
    } catch (e) {
      setStatus(`could not read this reviewer's progress: ${e.message}`, "error");
    }
  });

  async function init() {
    try {
      let name = params.get("reviewer");
      if (!name) { try { name = localStorage.getItem("labeltrace.reviewer"); } catch (e) { name = null; } }
      $("reviewer").value = name || "";
      try { $("shortcuts").checked = localStorage.getItem("labeltrace.shortcuts") !== "off"; } catch (e) { /* private mode */ }
      const s = await api(withWho("api/state"));
      classes = s.classes;
      $("run").textContent = s.run;
      document.title = `labeltrace review — ${s.run}`;
      defaultReviewer = s.reviewer || "";
      blind = s.blind || null;
      view = s.view || null;
      if (blind) {
        $("find").hidden = true; // it would point at the others' votes
        $("context").hidden = true;
        $("suggested-box").hidden = true;
        $("given-box").hidden = blind === "all";
        const b = $("blind");
        b.hidden = false;
        b.textContent = blind === "all" ? "blind · given label, model and other reviewers hidden"
          : "blind · model and other reviewers hidden";
      }
      if (!$("reviewer").value) $("reviewer").value = s.reviewer || "";
      if (s.warnings && s.warnings.length) {  // text only: class names come from users
        const w = $("warnings");
        w.textContent = s.warnings.map((t) => `⚠ ${t}.`).join("\n");
        w.hidden = false;
      }
      buildButtons();
      shortcutKeys();
      showProgress(s);
      if (total === 0) { setStatus("The review queue is empty.", ""); return; }
      const start = params.has("pos") ? Number(params.get("pos")) : Math.min(s.resume, total - 1);
      const pos = Number.isInteger(start) && start >= 0 && start < total ? start : 0;
      await load(pos, false, !params.has("pos"));
    } catch (e) {
      setStatus(`could not start: ${e.message}`, "error");
    }
  }
  // a tab that goes (closed, reloaded, navigated away) says so: the sample it showed is no longer
  // held from the others, and its place no longer steers where a live re-ranking deals the most
  // suspect samples — they had outlived the tab by two and ten minutes. keepalive: the request
  // outlives the page; a reload's new page takes its place again at once
  function leave(name, keepalive, seq = nextSeq()) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers["X-Labeltrace-Token"] = token;
    if (view) headers["X-Labeltrace-View"] = view;
    // numbered: should it arrive after a reload's new page (the same id) has asked for its sample,
    // that later request's hold stands
    const body = JSON.stringify(Object.assign({ page: PAGE, seq }, name ? { reviewer: name } : {}));
    try { fetch(at("api/leave"), { method: "POST", headers, body, keepalive }).catch(() => {}); } catch (e) { /* gone */ }
  }
  addEventListener("pagehide", () => leave(heldAs === null ? who() : heldAs, true));
  // back from the back/forward cache: the sample shown is this tab's again
  addEventListener("pageshow", (ev) => { if (ev.persisted && item) load(item.position); });
  // the colleagues' votes reach this page's progress line (and its "done" note) without a decision of
  // its own: read again every REFRESH_MS while the tab is seen; an answer overtaken by a newer one
  // shown meanwhile (a decision's) is dropped, as the name box's is
  const REFRESH_MS = 15000;
  setInterval(async () => {
    if (!classes.length || document.visibilityState !== "visible") return;
    const shown = progressSeq;
    try {
      const s = await api(withWho("api/state"));
      if (shown === progressSeq) showProgress(s);
    } catch (e) { /* the next decision or refresh says what is wrong */ }
  }, REFRESH_MS);
  init();
})();
