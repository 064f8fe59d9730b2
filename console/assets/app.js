// Kairos console: signs in with an API token kept in sessionStorage, reads
// the aggregator's JSON routes with it as a bearer token, and draws tables
// and SVG charts with DOM calls only (createElement and textContent: every
// value from the server is text, never markup). The server checks the token's role on every call; the
// role here only decides which tabs are shown.
"use strict";

(function () {
  const TOKEN_KEY = "kairos-console-token";
  const SVGNS = "http://www.w3.org/2000/svg";
  const POLL_MS = 2000;
  let session = null; // GET /v1/session
  let pollTimer = null;
  let auditNext = 0;
  let currentTab = "";
  let generation = 0; // bumped by every tab switch; a stale poll does not reschedule

  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers -------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function fillBody(table, rows) {
    const tb = table.tBodies[0];
    clear(tb);
    for (const r of rows) tb.append(r);
  }

  function td(text, cls) {
    return el("td", cls ? { class: cls } : {}, text);
  }

  function fmtTime(s) {
    if (!s || s.startsWith("0001-")) return "—";
    return s.replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function fmtEps(v) {
    return Number(v).toFixed(5);
  }

  function say(text, kind) {
    const m = $("message");
    m.textContent = text;
    m.className = "message" + (kind ? " " + kind : "");
  }

  // ---- API ---------------------------------------------------------------

  class APIError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = { Authorization: "Bearer " + token };
    const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (!res.ok) {
      let detail = res.status + " " + res.statusText;
      try {
        const p = await res.json();
        if (p && p.detail) detail = res.status + " " + (p.title || "") + ": " + p.detail;
      } catch (e) {
        // not a problem document: keep the status line
      }
      if (res.status === 401 && path !== "/v1/session") {
        signOut("The token was refused (401): sign in again.");
      }
      throw new APIError(res.status, detail);
    }
    return res;
  }

  async function getJSON(path) {
    return (await api("GET", path)).json();
  }

  // ---- session -----------------------------------------------------------

  async function signIn(token) {
    token = token.trim().replace(/^Bearer\s+/i, "");
    if (!token) {
      $("signin-error").textContent = "Paste a token first.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      session = await getJSON("/v1/session");
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      $("signin-error").textContent = "Sign-in refused: " + e.message;
      return;
    }
    $("token").value = "";
    $("signin-error").textContent = "";
    $("signin-panel").hidden = true;
    $("session").hidden = false;
    $("who").textContent = session.subject + " (" + session.role + "), token expires " + fmtTime(session.expires_at);
    $("who").dataset.role = session.role;
    for (const e of document.querySelectorAll("[data-roles]")) {
      e.hidden = !e.dataset.roles.split(" ").includes(session.role);
    }
    $("tabs").hidden = false;
    const first = document.querySelector("#tabs button:not([hidden])");
    if (first) show(first.dataset.tab);
  }

  function signOut(why) {
    sessionStorage.removeItem(TOKEN_KEY);
    session = null;
    stopPolling();
    for (const t of document.querySelectorAll(".tab")) t.hidden = true;
    $("tabs").hidden = true;
    $("session").hidden = true;
    $("signin-panel").hidden = false;
    say(why || "", why ? "error" : "");
  }

  function stopPolling() {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
  }

  // ---- tabs --------------------------------------------------------------

  const loaders = {
    overview: loadOverview,
    budgets: loadBudgets,
    models: loadModels,
    audit: loadAudit,
    tokens: async () => {},
  };

  function show(tab) {
    currentTab = tab;
    generation++;
    stopPolling();
    say("");
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
    for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== "tab-" + tab;
    run(loaders[tab]);
  }

  async function run(fn) {
    try {
      await fn();
    } catch (e) {
      if (session) say(e.message, "error");
    }
  }

  // ---- federation overview ----------------------------------------------

  // loadOverview refreshes the federation tab and polls it every POLL_MS
  // while the tab is shown, also after a failed read.
  async function loadOverview() {
    const gen = generation;
    let st;
    try {
      st = await getJSON("/v1/federation?rounds=50");
    } finally {
      if (gen === generation && session) pollTimer = setTimeout(() => run(loadOverview), POLL_MS);
    }
    if (gen !== generation) return;
    say("");
    drawLive(st.rounds[0]);
    drawRounds(st.rounds);
    fillBody($("rounds-table"), st.rounds.map((r) => {
      const tr = el("tr", { "data-seq": r.seq, "data-state": r.state });
      tr.append(td(r.seq, "num"), td(r.id), td(r.state, "state-" + r.state), td(r.accepted, "num"), td(r.selected, "num"),
        td(r.quorum, "num"), td(fmtTime(r.opened_at)), td(fmtTime(r.closed_at)), td(r.reason || ""));
      return tr;
    }));
    fillBody($("merchants-table"), st.merchants.map((m) => {
      const tr = el("tr", { "data-merchant": m.id, "data-state": m.state });
      tr.append(td(m.id), td(m.region || ""), td(m.stopped ? m.state + ": " + m.stopped : m.state), td(fmtEps(m.epsilon), "num"), td(m.epsilon_cap, "num"),
        td(m.releases, "num"), td(fmtTime(m.enrolled_at)));
      return tr;
    }));
  }

  function drawLive(r) {
    const box = $("live-round");
    const bar = $("live-progress");
    clear(box);
    clear(bar);
    if (!r) {
      box.append(el("p", { class: "muted" }, "No round yet."));
      return;
    }
    const live = !["published", "failed"].includes(r.state);
    for (const [k, v] of Object.entries({ round: r.id, seq: r.seq, state: r.state, accepted: r.accepted, selected: r.selected, quorum: r.quorum })) {
      box.dataset[k] = v;
    }
    box.append(el("p", {},
      el("strong", {}, r.id), " (seq " + r.seq + "): ", el("span", { class: "state-" + r.state, id: "live-state" }, r.state),
      " — " + r.accepted + " of " + r.selected + " selected merchants sent an update; quorum " + r.quorum +
      (live ? "; deadline " + fmtTime(r.deadline) : "; closed " + fmtTime(r.closed_at)) +
      (r.evaluation ? " (federated evaluation round)" : "") + (r.reason ? ". " + r.reason : "")));
    const W = 600, H = 36, pad = 4;
    const n = Math.max(r.selected, 1);
    const w = ((W - 2 * pad) * Math.min(r.accepted, n)) / n;
    bar.append(svg("rect", { class: "track", x: pad, y: 8, width: W - 2 * pad, height: 16 }));
    bar.append(svg("rect", { class: "fill", x: pad, y: 8, width: w, height: 16 }));
    const qx = pad + ((W - 2 * pad) * Math.min(r.quorum, n)) / n;
    bar.append(svg("line", { class: "quorum", x1: qx, x2: qx, y1: 2, y2: 30 }));
    const t = svg("title", {}, r.accepted + " of " + r.selected + " accepted, quorum " + r.quorum);
    bar.append(t);
  }

  function drawRounds(rounds) {
    const c = $("rounds-chart");
    clear(c);
    const W = 720, H = 200, L = 40, B = 30, T = 10, R = 10;
    const rs = rounds.slice().reverse(); // oldest first
    const maxY = Math.max(1, ...rs.map((r) => Math.max(r.accepted, r.quorum)));
    const y = (v) => H - B - ((H - B - T) * v) / maxY;
    c.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    c.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    for (let v = 0; v <= maxY; v++) {
      c.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v));
    }
    c.append(svg("text", { x: L, y: H - 4 }, "rounds, oldest to newest (bar: updates accepted; dash: quorum)"));
    if (rs.length === 0) return;
    const step = (W - L - R) / rs.length;
    rs.forEach((r, i) => {
      const x = L + i * step + step * 0.15;
      const cls = r.state === "published" ? "bar-published" : r.state === "failed" ? "bar-failed" : "bar-live";
      const rect = svg("rect", { class: cls, x, y: y(r.accepted), width: step * 0.7, height: H - B - y(r.accepted), "data-seq": r.seq });
      rect.append(svg("title", {}, r.id + ": " + r.state + ", " + r.accepted + " accepted of " + r.selected + ", quorum " + r.quorum));
      c.append(rect);
      c.append(svg("line", { class: "quorum", x1: x, x2: x + step * 0.7, y1: y(r.quorum), y2: y(r.quorum) }));
      if (rs.length <= 25) c.append(svg("text", { x: x + step * 0.35, y: H - B + 12, "text-anchor": "middle" }, r.seq));
    });
  }

  // ---- budgets -----------------------------------------------------------

  async function loadBudgets() {
    const d = await getJSON("/v1/compliance");
    if (currentTab !== "budgets") return;
    $("budgets-source").textContent = "Recomputed from the ledger by the RDP accountant at " + fmtTime(d.generated) +
      " (the compliance report's numbers). Policy " + d.policy_hash + ".";
    fillBody($("budgets-table"), d.budgets.map((b) => {
      const local = localCap(b);
      const tr = el("tr", { "data-merchant": b.merchant, "data-epsilon": b.epsilon, "data-cap": b.epsilon_cap });
      const used = b.in_policy && b.epsilon_cap > 0 ? ((100 * b.epsilon) / b.epsilon_cap).toFixed(2) + "%" : "—";
      tr.append(td(b.merchant), td(fmtEps(b.epsilon), "num"), td(b.in_policy ? b.epsilon_cap : "not in policy", "num"),
        td(local > 0 ? local : "—", "num"), td(used, "num" + (b.in_policy && b.epsilon > b.epsilon_cap ? " over" : "")),
        td(b.delta, "num"), td(b.releases, "num"), td(fmtTime(b.last_release)));
      return tr;
    }));
    const box = $("budget-charts");
    clear(box);
    for (const b of d.budgets) {
      box.append(el("div", { class: "budget", id: "budget-" + b.merchant }, el("h3", {}, b.merchant), budgetChart(b), el("p", {}, b.statement)));
    }
  }

  // localCap is the merchant's own (client-side) cap when the report knows it.
  function localCap(b) {
    return Number(b.local_epsilon_cap || b.local_cap || 0);
  }

  function budgetChart(b) {
    const W = 720, H = 220, L = 56, B = 34, T = 14, R = 110;
    const c = svg("svg", { class: "chart budget-chart", width: W, height: H, "data-merchant": b.merchant, role: "img",
      "aria-label": "ε spent by " + b.merchant + " against its caps" });
    const pts = b.points || [];
    const local = localCap(b);
    const maxY = Math.max(b.epsilon_cap || 0, local, ...pts.map((p) => p.epsilon), 1e-9) * 1.08;
    const t0 = pts.length ? Date.parse(pts[0].at) : 0;
    const t1 = pts.length ? Date.parse(pts[pts.length - 1].at) : 1;
    const x = (i, p) => {
      // by time when the releases span time, else by release number
      if (t1 > t0) return L + ((W - L - R) * (Date.parse(p.at) - t0)) / (t1 - t0);
      return L + ((W - L - R) * (i + 1)) / (pts.length + 1);
    };
    const y = (v) => H - B - ((H - B - T) * v) / maxY;
    c.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    c.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    for (let k = 0; k <= 4; k++) {
      const v = (maxY * k) / 4;
      c.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      c.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(3)));
    }
    c.append(svg("text", { x: L, y: H - 6 }, pts.length ? fmtTime(pts[0].at) + " → " + fmtTime(pts[pts.length - 1].at) + " (ε after each release)" : "no release yet"));
    if (b.in_policy && b.epsilon_cap > 0) {
      c.append(svg("line", { class: "cap", x1: L, x2: W - R, y1: y(b.epsilon_cap), y2: y(b.epsilon_cap), "data-cap": b.epsilon_cap }));
      c.append(svg("text", { x: W - R + 4, y: y(b.epsilon_cap) + 4 }, "federation cap " + b.epsilon_cap));
    }
    if (local > 0) {
      c.append(svg("line", { class: "local-cap", x1: L, x2: W - R, y1: y(local), y2: y(local), "data-cap": local }));
      c.append(svg("text", { x: W - R + 4, y: y(local) + 14 }, "local cap " + local));
    }
    if (pts.length) {
      const path = pts.map((p, i) => (i ? "L" : "M") + x(i, p).toFixed(1) + " " + y(p.epsilon).toFixed(1)).join(" ");
      c.append(svg("path", { class: "spent", d: path }));
      pts.forEach((p, i) => {
        const dot = svg("circle", { class: "point", cx: x(i, p), cy: y(p.epsilon), r: 3, "data-epsilon": p.epsilon, "data-seq": p.seq });
        dot.append(svg("title", {}, "ε " + fmtEps(p.epsilon) + " after release " + p.seq + (p.round ? " (" + p.round + ")" : "") + " at " + fmtTime(p.at)));
        c.append(dot);
      });
    }
    return c;
  }

  // ---- models ------------------------------------------------------------

  // listModels follows GET /v1/models's cursor: the registry is paged.
  async function listModels() {
    const ms = [];
    let after = 0;
    for (;;) {
      const d = await getJSON("/v1/models?limit=1000" + (after ? "&after=" + after : ""));
      ms.push(...d.models);
      if (!d.next || d.next <= after) return ms;
      after = d.next;
    }
  }

  async function loadModels() {
    const ms = await listModels();
    if (currentTab !== "models") return;
    drawLineage(ms);
    const admin = session.role === "admin";
    fillBody($("models-table"), ms.slice().reverse().map((m) => {
      const tr = el("tr", { "data-version": m.version, "data-active": m.active, "data-withdrawn": !!m.withdrawn });
      const contrib = el("td", { class: "contrib" });
      (m.contributions || []).forEach((c, i) => {
        if (i) contrib.append(el("br"));
        contrib.append(c.merchant + ": ε " + fmtEps(c.epsilon) + " at δ " + c.delta + ", weight " + Number(c.weight).toPrecision(3));
      });
      if (!(m.contributions || []).length) contrib.append("—");
      const action = el("td");
      if (admin && !m.active) {
        const b = el("button", { type: "button", class: "rollback", "data-version": m.version }, "Roll back to v" + m.version);
        b.addEventListener("click", () => run(() => rollback(m.version)));
        action.append(b);
      }
      tr.append(td(m.version, "num"), td(m.round ? m.parent : "— (initial)", "num"), td(m.round || "—"), td(fmtTime(m.published_at)),
        contrib, td(m.merge), td(evaluation(m.metrics)),
        td(m.active ? "active" : m.withdrawn ? "withdrawn " + fmtTime(m.withdrawn_at) + (m.withdrawn_seq ? " (audit seq " + m.withdrawn_seq + ")" : "") : ""), action);
      return tr;
    }));
  }

  function evaluation(e) {
    if (!e || e.auc_30 === undefined) return "—";
    const f = (k) => Number(e[k]).toFixed(3) + " ± " + Number(e[k + "_se"]).toFixed(3);
    return "AUC@30 " + f("auc_30") + ", AUC@7 " + f("auc_7") + ", PR-AUC@30 " + f("pr_auc_30") + " (" + e.merchants + " merchants, DP)";
  }

  function drawLineage(ms) {
    const c = $("lineage");
    clear(c);
    const step = 64, y = 45;
    const xs = {};
    ms.forEach((m, i) => { xs[m.version] = 30 + i * step; });
    c.setAttribute("width", Math.max(720, 60 + ms.length * step));
    for (const m of ms) {
      if (m.round && xs[m.parent] !== undefined) {
        const x1 = xs[m.parent], x2 = xs[m.version];
        const lift = x2 - x1 > step ? -28 : 0; // a child of an older version arcs over the ones between
        c.append(svg("path", { class: "edge", d: "M" + x1 + " " + y + " Q" + (x1 + x2) / 2 + " " + (y + lift * 1.4) + " " + x2 + " " + y }));
      }
    }
    for (const m of ms) {
      const g = svg("g", { "data-version": m.version });
      g.append(svg("circle", { class: m.active ? "node node-active" : "node", cx: xs[m.version], cy: y, r: 15 }));
      g.append(svg("text", { x: xs[m.version], y: y + 4, "text-anchor": "middle" }, "v" + m.version));
      g.append(svg("title", {}, "v" + m.version + (m.round ? " from v" + m.parent + " in " + m.round : " (initial)") + (m.active ? ", active" : "")));
      c.append(g);
    }
  }

  async function rollback(version) {
    const res = await api("POST", "/v1/models/" + encodeURIComponent(version) + ":rollback");
    const m = await res.json();
    await loadModels();
    say("Version " + m.version + " is now active.", "ok");
  }

  // ---- audit -------------------------------------------------------------

  async function loadAudit() {
    auditNext = 0;
    const [d] = await Promise.all([getJSON("/v1/compliance"), searchAudit(false)]);
    if (currentTab !== "audit") return;
    const v = $("audit-verification");
    v.textContent = d.audit.line;
    v.className = d.audit.ok ? "ok" : "fail";
    v.dataset.ok = d.audit.ok;
    const w = $("audit-witness");
    w.dataset.configured = d.witness.configured;
    if (!d.witness.configured) {
      w.textContent = "No witness is configured (audit.witness): the log is checked against the checkpoints in its own database only.";
    } else if (d.witness.error) {
      w.textContent = "Witness could not be read: " + d.witness.error;
    } else {
      w.textContent = "Witness: " + d.witness.checkpoints + " checkpoints kept outside the database, the last at entry " +
        d.witness.last_seq + " (" + fmtTime(d.witness.last_time) + "); the verification above covers them.";
    }
  }

  function utc(id) {
    const v = $(id).value;
    if (!v) return "";
    return (v.length === 16 ? v + ":00" : v) + "Z"; // datetime-local gives no zone: the fields are UTC
  }

  async function searchAudit(more) {
    const q = new URLSearchParams();
    q.set("limit", "1000");
    for (const [p, id] of [["action", "audit-action"], ["actor", "audit-actor"]]) {
      const v = $(id).value.trim();
      if (v) q.set(p, v);
    }
    if (utc("audit-since")) q.set("since", utc("audit-since"));
    if (utc("audit-until")) q.set("until", utc("audit-until"));
    // The log pages forward from a cursor; to show the newest first, read
    // every page and keep the last ones (a compliance log is read whole
    // by verification anyway).
    let after = 0, all = [];
    for (let guard = 0; guard < 100; guard++) {
      if (after) q.set("after", String(after));
      const p = await getJSON("/v1/audit?" + q.toString());
      all = all.concat(p.entries);
      if (!p.next) break;
      after = p.next;
    }
    all.reverse();
    const shown = more ? all.slice(0, auditNext + 50) : all.slice(0, 50);
    auditNext = shown.length;
    $("audit-next").hidden = shown.length >= all.length;
    fillBody($("audit-table"), shown.map((e) => {
      const tr = el("tr", { "data-seq": e.seq, "data-action": e.action });
      tr.append(td(e.seq, "num"), td(fmtTime(e.time)), td(e.actor), td(e.action), td(e.object), td(e.outcome), td(e.reason || ""));
      return tr;
    }));
    $("audit-table").dataset.count = all.length;
  }

  async function exportAudit() {
    const res = await api("GET", "/v1/audit/export");
    const blob = await res.blob();
    const a = $("audit-download");
    if (a.href) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(blob);
    a.hidden = false;
    a.dataset.bytes = blob.size;
    a.click();
    say("Exported " + blob.size + " bytes; check it with kairos compliance audit verify --file.", "ok");
  }

  // ---- tokens ------------------------------------------------------------

  async function issueToken() {
    let merchants = $("issue-merchants").value.split(",").map((s) => s.trim()).filter((s) => s);
    if ($("issue-role").value === "merchant" && merchants.length === 0) {
      merchants = [$("issue-subject").value.trim()]; // a merchant token is bound to its subject
    }
    const hours = Number($("issue-ttl").value);
    const it = await (await api("POST", "/v1/tokens", {
      subject: $("issue-subject").value.trim(),
      role: $("issue-role").value,
      merchants: merchants.length ? merchants : undefined,
      ttl_seconds: Math.round(hours * 3600),
    })).json();
    $("issued").hidden = false;
    $("issued-token").value = it.token;
    $("issued-jti").textContent = it.token_id;
    $("issued-expires").textContent = fmtTime(it.expires_at);
    $("revoke-jti").value = it.token_id;
    $("revoke-expires").value = it.expires_at.replace(/(\.\d+)?Z$/, "");
    say("Issued a " + it.role + " token for " + it.subject + " (recorded in the audit log).", "ok");
  }

  async function revokeToken() {
    const r = await (await api("POST", "/v1/tokens:revoke", { jti: $("revoke-jti").value.trim(), expires_at: utc("revoke-expires") })).json();
    say("Token " + r.jti + " is refused until " + fmtTime(r.expires_at) + ".", "ok");
  }

  // ---- wiring ------------------------------------------------------------

  function submit(id, fn) {
    $(id).addEventListener("submit", (ev) => {
      ev.preventDefault();
      run(fn);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    submit("signin-form", () => signIn($("token").value));
    $("signout").addEventListener("click", () => signOut());
    for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));
    submit("audit-form", () => searchAudit(false));
    $("audit-next").addEventListener("click", () => run(() => searchAudit(true)));
    $("audit-export").addEventListener("click", () => run(exportAudit));
    submit("issue-form", issueToken);
    submit("revoke-form", revokeToken);
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) run(() => signIn(saved));
  });
})();
