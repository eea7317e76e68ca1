// live2vod operator console. Plain JS, no dependencies; talks to the api it is served by.
// Every value from the api is inserted as text (never as HTML), links only for http(s) URLs.
"use strict";

const REFRESH_MS = 5000;
const results = new Map(); // video id -> {ok, text} of the last transcode request
let busy = 0; // requests of the operator in flight: no refresh meanwhile
let renderSeq = 0;
let autoRender = false; // the latest render was the timer's, not the operator's

// Whether render `seq` may replace the page: it is the latest one, and, when the timer started
// it, the operator is not typing into a form or waiting for an answer.
function mayReplace(seq) {
  return seq === renderSeq && !(autoRender && (busy || editing()));
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replaces the children of `el` (arrays flattened, null/false dropped).
function put(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
}

function safeUrl(u) {
  return typeof u === "string" && /^https?:\/\//i.test(u) ? u : null;
}

function link(u, text) {
  const s = safeUrl(u);
  return s ? h("a", { href: s, target: "_blank", rel: "noreferrer noopener" }, text || u) : (text || u || "");
}

// A link to a video card on the same page (scrolls; the route in the hash stays).
function jumpAttrs(id, attrs) {
  return Object.assign({
    href: "#v-" + id,
    onclick: (e) => { e.preventDefault(); const el = document.getElementById("v-" + id); if (el) el.scrollIntoView({ block: "center" }); },
  }, attrs || {});
}

function badge(s) {
  const v = s || "none";
  return h("span", { class: "status status-" + v }, v);
}

function fmtTime(t) {
  if (!t) return "–";
  return String(t).replace("T", " ").replace(/(\.\d+)?Z$/, " UTC");
}

function ago(t, nowIso) {
  if (!t) return "–";
  const now = nowIso ? Date.parse(nowIso) : Date.now();
  const s = Math.max(0, Math.round((now - Date.parse(t)) / 1000));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, opts || {}));
  if (r.status === 401 && !path.startsWith("/v1/videos/")) {
    location.reload(); // the login page
    throw new Error("login needed");
  }
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  return { status: r.status, body };
}

async function allVideos(stream) {
  const out = [];
  let cursor = "";
  for (let i = 0; i < 100; i++) {
    const q = "/v1/videos?limit=500&stream=" + encodeURIComponent(stream) + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    const r = await api(q);
    if (r.status !== 200) throw new Error((r.body && r.body.error) || ("HTTP " + r.status));
    out.push(...r.body.items);
    if (!r.body.next_cursor) break;
    cursor = r.body.next_cursor;
  }
  return out;
}

// ---- header: counters -------------------------------------------------------------------
async function renderStats() {
  const r = await api("/v1/console/stats");
  if (r.status !== 200 || !r.body) return;
  const s = r.body;
  const el = document.getElementById("stats");
  const n = (v) => (v === null || v === undefined ? "n/a" : String(Math.round(v)));
  put(el, 
    h("span", {}, h("b", {}, s.streams), " streams"),
    h("span", {}, h("b", {}, s.videos), " videos"),
    h("span", { id: "stat-ready" }, h("b", {}, s.by_status.ready || 0), " ready"),
    h("span", { id: "stat-failed" }, h("b", {}, s.by_status.failed || 0), " failed"),
    h("span", { id: "stat-waiting" }, h("b", {}, s.waiting), " waiting on VOD"),
    h("span", { id: "stat-recovered", title: "live2vod_reconcile_recovered_total: callbacks VOD lost that reconciliation recovered" }, h("b", {}, n(s.recovered_by_reconciliation)), " recovered by reconciliation"),
    h("span", { id: "stat-dlq", title: "live2vod_dlq_records_total: records sent to the dead-letter topic" }, h("b", {}, n(s.dead_letters)), " dead letters"),
    s.caught_up ? null : h("span", {}, "loading aggregates…")
  );
  document.getElementById("logout").hidden = !s.token_required;
}

// ---- streams list ------------------------------------------------------------------------
let streamPrefix = "";
async function renderStreams(view, seq) {
  const search = h("input", {
    type: "search", id: "stream-search", value: streamPrefix,
    placeholder: "domain/app/stream prefix, e.g. live.example.com/record/store-",
    oninput: (e) => { streamPrefix = e.target.value; clearTimeout(renderStreams.t); renderStreams.t = setTimeout(render, 250); },
  });
  const rows = [];
  let cursor = "";
  let more = false;
  for (let page = 0; page < 20; page++) {
    const r = await api("/v1/streams?limit=200&prefix=" + encodeURIComponent(streamPrefix) + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    if (r.status !== 200) { rows.push(h("tr", {}, h("td", { colspan: 7 }, (r.body && r.body.error) || ("HTTP " + r.status)))); break; }
    rows.push(...r.body.items.map(streamRow));
    cursor = r.body.next_cursor;
    if (!cursor) break;
    more = page === 19;
  }
  if (!mayReplace(seq)) return;
  const hadFocus = document.activeElement && document.activeElement.id === "stream-search";
  put(view, 
    h("h2", {}, "Streams"),
    h("div", { class: "toolbar" }, search, h("span", { class: "muted" }, rows.length + " shown" + (more ? " (narrow the search for more)" : ""))),
    rows.length
      ? h("table", { id: "streams" },
          h("thead", {}, h("tr", {}, ["Stream", "Sessions", "Segments", "Videos", "Last session", "Compose", "Attention"].map((t) => h("th", {}, t)))),
          h("tbody", {}, rows))
      : h("p", { class: "empty" }, "No stream matches.")
  );
  if (hadFocus) { search.focus(); search.setSelectionRange(search.value.length, search.value.length); }
}

function streamRow(s) {
  const counts = Object.entries(s.by_status || {}).map(([k, v]) => h("span", {}, badge(k), " ", v));
  return h("tr", { "data-stream": s.name },
    h("td", {}, h("a", { href: "#/stream/" + s.name, class: "stream-link" }, s.name)),
    h("td", {}, s.sessions),
    h("td", {}, s.segments),
    h("td", { class: "counts" }, counts.length ? counts : "–"),
    h("td", {}, s.last_session_end ? fmtTime(s.last_session_start) + " → " + fmtTime(s.last_session_end) : "–"),
    h("td", {}, s.last_compose_status ? badge(s.last_compose_status) : "–"),
    h("td", {}, s.problems ? h("span", { class: "reason" }, s.problems + " failed") : null, s.waiting ? " " + s.waiting + " waiting" : null));
}

// ---- one stream: sessions as a timeline ---------------------------------------------------
async function renderStream(view, name, seq) {
  const parts = name.split("/");
  const [sr, videos] = await Promise.all([
    api("/v1/streams/" + parts.map(encodeURIComponent).join("/")),
    allVideos(name).catch(() => []),
  ]);
  if (!mayReplace(seq)) return;
  if (sr.status !== 200) {
    put(view, h("h2", {}, name), h("p", { class: "empty" }, (sr.body && sr.body.error) || ("HTTP " + sr.status)));
    return;
  }
  const byId = new Map(videos.map((v) => [v.video_id, v]));
  const sessions = (sr.body.sessions || []).slice().reverse(); // newest first
  const shown = new Set();
  const blocks = sessions.map((s, i) => {
    const segs = s.segments.map((id) => byId.get(id) || { video_id: id, status: "unknown" });
    const composed = s.composed_video_id ? (byId.get(s.composed_video_id) || { video_id: s.composed_video_id, status: "unknown" }) : null;
    segs.forEach((v) => shown.add(v.video_id));
    if (composed) shown.add(composed.video_id);
    return h("section", { class: "session", "data-session": i },
      h("h3", {}, "Session ", fmtTime(s.start), " → ", fmtTime(s.end), "  ",
        h("span", { class: "muted" }, s.segments.length + " segment" + (s.segments.length === 1 ? "" : "s") + ", compose "), badge(s.compose_status)),
      timeline(s, segs, composed),
      composed ? h("p", {}, "Composed video: ", h("a", jumpAttrs(composed.video_id, { class: "composed-link" }), composed.video_id), " ", badge(composed.status), " from the segments above") : null,
      h("div", { class: "videos" }, composed ? videoCard(composed, true) : null, segs.map((v) => videoCard(v, false))));
  });
  const others = videos.filter((v) => !shown.has(v.video_id));
  put(view, 
    h("h2", {}, h("a", { href: "#/" }, "Streams"), " / ", name),
    h("p", { class: "muted" }, sessions.length + " session(s), " + videos.length + " video(s). Sessions newest first; segments placed by their record window."),
    blocks.length ? blocks : h("p", { class: "empty" }, "No session yet."),
    others.length ? h("section", { class: "session" }, h("h3", {}, "Videos not (yet) in a session"), h("div", { class: "videos" }, others.map((v) => videoCard(v, false)))) : null
  );
  const anchor = location.hash.split("#v-")[1];
  if (anchor && !renderStream.scrolled) {
    renderStream.scrolled = true; // once per visit, not on every refresh
    const el = document.getElementById("v-" + anchor);
    if (el) el.scrollIntoView({ block: "center" });
  }
}

function timeline(s, segs, composed) {
  const t0 = Date.parse(s.start);
  const t1 = Date.parse(s.end);
  const span = Math.max(1, t1 - t0);
  const bar = h("div", { class: "timeline" });
  if (composed) {
    bar.append(h("a", jumpAttrs(composed.video_id, { class: "seg composed st-" + composed.status, style: "left:0;width:100%", title: "composed " + composed.video_id })));
  }
  for (const v of segs) {
    const o = v.origin || {};
    const a = o.record_start ? Date.parse(o.record_start) : t0;
    const b = o.record_end ? Date.parse(o.record_end) : a;
    const left = Math.min(100, Math.max(0, ((a - t0) / span) * 100));
    const width = Math.max(0.4, Math.min(100 - left, ((b - a) / span) * 100));
    bar.append(h("a", jumpAttrs(v.video_id, {
      class: "seg st-" + v.status,
      style: "left:" + left.toFixed(2) + "%;width:" + width.toFixed(2) + "%",
      title: v.video_id + " " + v.status + " " + fmtTime(o.record_start) + " → " + fmtTime(o.record_end),
    }), v.video_id.slice(0, 8)));
  }
  return h("div", {}, bar, h("div", { class: "axis" }, h("span", {}, fmtTime(s.start)), h("span", {}, fmtTime(s.end))));
}

function videoCard(v, composed) {
  const o = v.origin || {};
  const tc = v.transcode || {};
  const rend = (v.renditions || []).map((r) =>
    h("tr", {}, h("td", {}, r.definition), h("td", {}, r.format), h("td", {}, badge(r.status)),
      h("td", {}, r.width && r.height ? r.width + "×" + r.height : "–"), h("td", {}, r.file_url ? link(r.file_url, "file") : (r.error_code || "–"))));
  const plays = (v.play_urls || []).map((p) => h("li", {}, p.definition + "/" + p.format + " ", link(p.url, "play")));
  return h("article", { class: "video" + (composed ? " composed-video" : ""), id: "v-" + v.video_id, "data-video": v.video_id, "data-status": v.status },
    h("div", { class: "head" }, h("span", { class: "id" }, v.video_id), badge(v.status), h("span", { class: "muted" }, composed ? "composed" : (o.kind === "composed" ? "composed" : "segment"))),
    h("dl", {},
      h("dt", {}, "Recorded"), h("dd", {}, o.record_start ? fmtTime(o.record_start) + " → " + fmtTime(o.record_end) : (o.compose_started_at ? "compose started " + fmtTime(o.compose_started_at) : "–")),
      h("dt", {}, "Source"), h("dd", {}, v.source ? badge(v.source.status) : "–"),
      h("dt", {}, "Transcode"), h("dd", { class: "tc-status" }, badge(tc.status), tc.template_group_id ? " " + tc.template_group_id : "", tc.reason ? h("span", { class: "reason" }, " " + tc.reason) : null),
      h("dt", {}, "Last event"), h("dd", {}, fmtTime(v.last_event_time)),
      v.cover_url ? [h("dt", {}, "Cover"), h("dd", {}, safeUrl(v.cover_url) ? h("a", { href: safeUrl(v.cover_url), target: "_blank", rel: "noreferrer noopener" }, h("img", { class: "cover", src: safeUrl(v.cover_url), alt: "cover", onerror: (e) => { e.target.replaceWith(document.createTextNode("cover")); } })) : "–")] : null,
      plays.length ? [h("dt", {}, "Play"), h("dd", {}, h("ul", { class: "plays" }, plays))] : null),
    rend.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Def.", "Format", "Status", "Size", "File"].map((t) => h("th", {}, t)))), h("tbody", {}, rend)) : null,
    transcodeForm(v));
}

function transcodeForm(v) {
  const m = v.manual_transcode || { allowed: true };
  const tc = v.transcode || {};
  const group = h("input", { class: "tg", placeholder: "template group id", value: m.template_group || tc.template_group_id || "", "aria-label": "template group id" });
  const prio = h("select", { class: "priority", "aria-label": "priority" }, h("option", { value: "" }, "priority"), [...Array(10).keys()].map((i) => h("option", { value: i + 1, selected: String(i + 1) === String(m.priority) }, i + 1)));
  const out = h("span", { class: "result" });
  const prev = results.get(v.video_id);
  if (prev) { out.textContent = prev.text; out.className = "result " + (prev.ok ? "ok" : "err"); }
  const btn = h("button", {
    class: "primary transcode-btn", type: "button", disabled: !m.allowed, title: m.allowed ? "POST /v1/videos/" + v.video_id + "/transcode" : m.reason,
    onclick: async () => {
      const body = { template_group_id: group.value.trim() };
      if (prio.value) body.priority = prio.value;
      btn.disabled = true;
      busy++;
      try {
        const r = await api("/v1/videos/" + encodeURIComponent(v.video_id) + "/transcode", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-Live2vod-Console": "1" },
          body: JSON.stringify(body),
        });
        const res = r.status === 202
          ? { ok: true, text: "202 accepted, command " + r.body.command_id }
          : { ok: false, text: r.status + " " + ((r.body && r.body.error) || "") };
        results.set(v.video_id, res);
        out.textContent = res.text;
        out.className = "result " + (res.ok ? "ok" : "err");
      } catch (e) {
        out.textContent = String(e);
        out.className = "result err";
      } finally {
        busy--;
        btn.disabled = false;
      }
    },
  }, "Transcode");
  return h("div", { class: "transcode" }, group, prio, btn,
    m.allowed ? null : h("span", { class: "reason policy-reason" }, m.reason), out);
}

// ---- stuck and failed ---------------------------------------------------------------------
let stuckSecs = 600;
async function renderStuck(view, seq) {
  const rows = [];
  let cursor = "";
  let now = null;
  for (let page = 0; page < 10; page++) {
    const r = await api("/v1/videos?limit=500&stuck_for_secs=" + stuckSecs + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    if (r.status !== 200) { rows.push(h("tr", {}, h("td", { colspan: 6 }, (r.body && r.body.error) || ("HTTP " + r.status)))); break; }
    now = r.body.now;
    for (const v of r.body.items) {
      const o = v.origin || {};
      const name = o.domain ? o.domain + "/" + o.app + "/" + o.stream : null;
      const tc = v.transcode || {};
      rows.push(h("tr", { "data-stuck-video": v.video_id },
        h("td", { class: "id" }, name ? h("a", { href: "#/stream/" + name + "#v-" + v.video_id }, v.video_id) : v.video_id),
        h("td", {}, name || "–"),
        h("td", {}, badge(v.status), " ", o.kind === "composed" ? "composed" : "segment"),
        h("td", {}, badge(tc.status), tc.reason ? h("span", { class: "reason" }, " " + tc.reason) : null),
        h("td", {}, fmtTime(v.last_event_time)),
        h("td", {}, ago(v.last_event_time, now))));
    }
    cursor = r.body.next_cursor;
    if (!cursor) break;
  }
  if (!mayReplace(seq)) return;
  const secs = h("input", { type: "number", id: "stuck-secs", min: 0, value: stuckSecs, style: "width:7rem",
    onchange: (e) => { stuckSecs = Math.max(0, parseInt(e.target.value, 10) || 0); render(); } });
  put(view, 
    h("h2", {}, "Stuck and failed"),
    h("div", { class: "toolbar" }, "Waiting on VOD for more than", secs, "seconds (by last event), and everything failed or rejected. ", h("span", { class: "muted" }, rows.length + " video(s)")),
    rows.length
      ? h("table", { id: "stuck" }, h("thead", {}, h("tr", {}, ["Video", "Stream", "Status", "Transcode", "Last event", "For"].map((t) => h("th", {}, t)))), h("tbody", {}, rows))
      : h("p", { class: "empty" }, "Nothing stuck or failed.")
  );
}

// ---- routing and refresh ------------------------------------------------------------------
async function render(auto) {
  const seq = ++renderSeq;
  autoRender = auto === true;
  const view = document.getElementById("view");
  const hash = decodeURIComponent(location.hash.replace(/^#/, ""));
  document.getElementById("nav-streams").classList.toggle("active", !hash.startsWith("/stuck"));
  document.getElementById("nav-stuck").classList.toggle("active", hash.startsWith("/stuck"));
  try {
    if (hash.startsWith("/stream/")) {
      await renderStream(view, hash.slice("/stream/".length).split("#")[0], seq);
    } else if (hash.startsWith("/stuck")) {
      await renderStuck(view, seq);
    } else {
      await renderStreams(view, seq);
    }
    renderStats().catch(() => {});
    document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
  } catch (e) {
    if (seq === renderSeq) document.getElementById("updated").textContent = "Update failed: " + e.message;
  }
}

function editing() {
  const a = document.activeElement;
  return a && a.id !== "stream-search" && (a.tagName === "INPUT" || a.tagName === "SELECT");
}

window.addEventListener("hashchange", () => { renderStream.scrolled = false; render(); });
setInterval(() => { if (!busy && !editing()) render(true); }, REFRESH_MS);
render();
