/* app.js - the Usage page's logic (issue 8): sign-in with a key kept in
 * sessionStorage, then the spend of a date range from reportd's /ui/api/usage,
 * /ui/api/budgets and /ui/api/logs, and the view's report as CSV (/ui/api/usage's
 * format=csv).
 *
 * Every figure shown is the API's (sums and shares come from reportd); the page
 * only formats them. Money arrives as exact decimal strings and is formatted
 * from the string (no float rounding); the exact value is in each title. Every
 * failed call shows its message in the banner. Plain ES2020, no framework, no
 * inline script or style (the page is served with a strict CSP).
 */
"use strict";

(() => {
  const KEY_STORE = "tollgate.usage.key"; // sessionStorage only: gone with the tab
  const LOG_PAGE_SIZE = 50;
  const BUDGET_THRESHOLD = "0.8";
  const GROUP_LABELS = { team: "team", model: "model", api_key: "key", customer: "customer",
                         tag: "tag" };
  const TOP_KINDS = ["team", "api_key", "customer", "model", "tag"];
  // log filter field (the API's parameter) that a top list's row fills in
  const TOP_FILTER = { team: "team_id", api_key: "api_key", customer: "end_user",
                       model: "model", tag: "tag" };
  const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4",
                   "#ec4899", "#84cc16", "#f97316", "#64748b", "#a3a3a3"];

  const $ = (id) => document.getElementById(id);

  // chart.umd.js is deferred so that app.js starts its calls first; deferred
  // scripts have run by DOMContentLoaded
  const chartLoaded = new Promise((resolve) => {
    if (document.readyState !== "loading") resolve();
    else document.addEventListener("DOMContentLoaded", resolve, { once: true });
  });

  const state = {
    key: null,
    start: "",
    end: "",
    groupBy: "team",
    usage: null,
    chart: null,
    logs: { page: 1, filters: {} },
    seq: { usage: 0, budgets: 0, logs: 0 }, // answers to older requests are dropped
  };

  /* ------------------------------------------------------------ formatting */

  const intFormat = new Intl.NumberFormat("en-US");

  /* A decimal string (or number) as {neg, int, frac} digit strings, or null. */
  function parseDecimal(v) {
    let s = typeof v === "number" ? v.toFixed(12) : String(v ?? "").trim();
    const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(s);
    if (m === null || (m[2] === "" && (m[3] ?? "") === "")) return null;
    const int = m[2].replace(/^0+(?=\d)/, "") || "0";
    return { neg: m[1] === "-", int, frac: (m[3] ?? "").replace(/0+$/, "") };
  }

  /* The exact amount, normalized ("1.50000" -> "1.5"). */
  function exactMoney(v) {
    const d = parseDecimal(v);
    if (d === null) return String(v);
    const zero = d.int === "0" && d.frac === "";
    return (d.neg && !zero ? "-" : "") + d.int + (d.frac ? "." + d.frac : "");
  }

  /* Adds 1 to the last digit of a digit string (carry included). */
  function incrementDigits(digits) {
    return (BigInt(digits) + 1n).toString().padStart(digits.length, "0");
  }

  function groupThousands(int) {
    return int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  /* Money: $ and 2 decimals from $0.01 up (rounded half up), else 3
   * significant digits so that a non-zero amount never shows as $0.00. */
  function fmtMoney(v) {
    const d = parseDecimal(v);
    if (d === null) return String(v);
    const sign = d.neg ? "-" : "";
    if (d.int === "0" && d.frac === "") return "$0.00";
    const frac = d.frac.padEnd(3, "0");
    if (d.int !== "0" || frac.slice(0, 2) !== "00") {
      let cents = d.int + frac.slice(0, 2);
      if (frac[2] >= "5") cents = incrementDigits(cents);
      cents = cents.padStart(3, "0");
      return sign + "$" + groupThousands(cents.slice(0, -2).replace(/^0+(?=\d)/, "")) + "." +
        cents.slice(-2);
    }
    const first = d.frac.search(/[1-9]/);
    let digits = d.frac.slice(0, first + 3).padEnd(first + 3, "0");
    if ((d.frac[first + 3] ?? "0") >= "5") digits = incrementDigits(digits);
    return sign + "$0." + digits.replace(/0+$/, "");
  }

  /* Sets an element's text to the formatted amount, the exact one as its title. */
  function setMoney(node, v) {
    node.textContent = fmtMoney(v);
    node.title = "$" + exactMoney(v);
    node.dataset.value = exactMoney(v);
    return node;
  }

  function fmtInt(v) {
    const n = Number(v);
    return Number.isFinite(n) ? intFormat.format(n) : String(v ?? "–");
  }

  /* A share "0.4521" as "45.21%" (the API rounds it to 4 places). */
  function fmtShare(v) {
    const n = Number(v);
    return Number.isFinite(n) ? (n * 100).toFixed(2) + "%" : String(v);
  }

  /* An RFC 3339 time as "YYYY-MM-DD HH:MM:SS" (the API's times are UTC). */
  function fmtTime(v) {
    return typeof v === "string" && v.length >= 19 ? v.slice(0, 19).replace("T", " ") : v ?? "";
  }

  function shortHash(h) {
    return typeof h === "string" && h.length > 12 ? h.slice(0, 8) + "…" : h ?? "";
  }

  /* ------------------------------------------------------------ DOM helpers */

  /* el("td", {class: "num", title: "x"}, child, "text", ...) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs ?? {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function moneyCell(tag, v, cls) {
    return setMoney(el(tag, { class: cls ?? "num money" }), v);
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  /* ------------------------------------------------------------ errors */

  function showError(message) {
    $("error-text").textContent = message;
    show($("error"), true);
  }

  function clearError() {
    $("error-text").textContent = "";
    show($("error"), false);
  }

  /* A failed call's message: the API's own (OpenAI's error shape), else the status. */
  function report(err) {
    console.error(err);
    showError(err instanceof ApiError ? err.message
              : "Request failed: " + (err && err.message ? err.message : String(err)));
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /* ------------------------------------------------------------ API */

  function url(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params ?? {})) {
      if (v !== null && v !== undefined && v !== "") q.set(k, v);
    }
    const qs = q.toString();
    return path + (qs ? "?" + qs : "");
  }

  async function errorOf(resp) {
    let text = "";
    try {
      text = await resp.text();
      const body = JSON.parse(text);
      const msg = body && body.error ? body.error.message ?? body.error : body.detail;
      if (msg) return new ApiError(resp.status, typeof msg === "string" ? msg : JSON.stringify(msg));
    } catch (_) {
      /* not JSON: the status line and the text say what happened */
    }
    return new ApiError(resp.status, "HTTP " + resp.status + " " + resp.statusText +
                        (text ? ": " + text.slice(0, 200) : ""));
  }

  /* GET path?params with the key; resolves to the Response (ok) or throws ApiError. */
  async function fetchWithKey(path, params, key) {
    const resp = await fetch(url(path, params), {
      headers: { Authorization: "Bearer " + (key ?? state.key) },
      cache: "no-store",
      credentials: "omit",
    });
    if (!resp.ok) throw await errorOf(resp);
    return resp;
  }

  async function getJson(path, params, key) {
    return (await fetchWithKey(path, params, key)).json();
  }

  /* ------------------------------------------------------------ the range */

  function isoDay(d) {
    return d.toISOString().slice(0, 10);
  }

  /* The current month in UTC, first to last day. */
  function currentMonth() {
    const now = new Date();
    const y = now.getUTCFullYear(), m = now.getUTCMonth();
    return [isoDay(new Date(Date.UTC(y, m, 1))), isoDay(new Date(Date.UTC(y, m + 1, 0)))];
  }

  const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

  /* The view from the URL's fragment (#start=..&end=..&group=..), else the defaults. */
  function readView() {
    const h = new URLSearchParams(location.hash.slice(1));
    const [start, end] = currentMonth();
    state.start = DAY_RE.test(h.get("start") ?? "") ? h.get("start") : start;
    state.end = DAY_RE.test(h.get("end") ?? "") ? h.get("end") : end;
    state.groupBy = GROUP_LABELS[h.get("group")] ? h.get("group") : "team";
    if (state.start > state.end) [state.start, state.end] = [start, end];
    $("start-date").value = state.start;
    $("end-date").value = state.end;
    $("group-by").value = state.groupBy;
    updateCsvButton();
  }

  /* The CSV button names what it saves: the view's grouping. */
  function updateCsvButton() {
    $("csv-download").disabled = false;
    $("csv-download").title = "The spend of each " + GROUP_LABELS[state.groupBy] +
      " on each day of this range, as CSV";
  }

  function writeView() {
    const h = new URLSearchParams({ start: state.start, end: state.end, group: state.groupBy });
    history.replaceState(null, "", "#" + h.toString());
  }

  function usageParams() {
    return { start_date: state.start, end_date: state.end, group_by: state.groupBy };
  }

  /* ------------------------------------------------------------ sign-in */

  function signedInView(on) {
    show($("signin"), !on);
    show($("usage"), on);
    show($("who"), on);
    if (on) {
      $("who-label").textContent = "Signed in with sk-…" + state.key.slice(-4);
    } else {
      $("signin-key").value = "";
      $("signin-key").focus();
    }
  }

  async function signIn(ev) {
    ev.preventDefault();
    const key = $("signin-key").value.trim();
    clearError();
    if (key === "") {
      showError("Enter an API key");
      return;
    }
    const button = $("signin-submit");
    button.disabled = true;
    try {
      readView();
      // the usage of the view checks the key and is the first thing shown
      let usage = null;
      try {
        usage = await getJson("/ui/api/usage", usageParams(), key);
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 400)) throw err;
        report(err); // the key passed (keys are checked first); the view's range did not
      }
      state.key = key;
      sessionStorage.setItem(KEY_STORE, key);
      signedInView(true);
      writeView();
      if (usage !== null) renderUsage(usage);
      else $("usage").classList.add("stale");
      loadBudgets();
      loadLogs(1);
    } catch (err) {
      report(err);
    } finally {
      button.disabled = false;
    }
  }

  function signOut() {
    sessionStorage.removeItem(KEY_STORE);
    state.key = null;
    state.usage = null;
    for (const k of Object.keys(state.seq)) state.seq[k]++; // drop answers in flight
    if (state.chart) {
      state.chart.destroy();
      state.chart = null;
    }
    for (const id of ["logs-body", "budgets-body"]) $(id).replaceChildren();
    for (const name of FILTERS) $("filter-" + name).value = "";
    state.logs = { page: 1, filters: {} };
    for (const kind of TOP_KINDS) clearTop(kind);
    clearError();
    signedInView(false);
  }

  /* A call refused for the key (revoked, expired): back to the sign-in form. */
  function handleAuthError(err) {
    if (err instanceof ApiError && err.status === 401 && state.key !== null) {
      signOut();
      report(err);
      return true;
    }
    return false;
  }

  /* ------------------------------------------------------------ usage */

  async function loadUsage() {
    const seq = ++state.seq.usage;
    show($("loading"), true);
    try {
      const usage = await getJson("/ui/api/usage", usageParams());
      if (seq === state.seq.usage) renderUsage(usage);
    } catch (err) {
      if (seq !== state.seq.usage || handleAuthError(err)) return;
      $("usage").classList.add("stale"); // the figures shown are not the range's
      delete $("usage").dataset.loaded;
      report(err);
    } finally {
      if (seq === state.seq.usage) show($("loading"), false);
    }
  }

  function renderUsage(u) {
    state.usage = u;
    $("usage").classList.remove("stale");
    const t = u.totals ?? {};
    setMoney($("total-spend"), t.spend ?? "0");
    $("total-requests").textContent = fmtInt(t.requests ?? 0);
    $("total-requests").dataset.value = String(t.requests ?? 0);
    $("total-tokens").textContent = fmtInt(t.total_tokens ?? 0);
    $("total-tokens").dataset.value = String(t.total_tokens ?? 0);
    $("total-tokens-detail").textContent = fmtInt(t.prompt_tokens ?? 0) + " prompt · " +
      fmtInt(t.completion_tokens ?? 0) + " completion";
    const empty = Number(t.requests ?? 0) === 0 && exactMoney(t.spend ?? "0") === "0";
    show($("empty"), empty);
    $("usage").classList.toggle("is-empty", empty);
    $("chart-group").textContent = GROUP_LABELS[u.group_by] ?? u.group_by ?? state.groupBy;
    chartLoaded.then(() => renderChart(u));
    for (const kind of TOP_KINDS) renderTop(kind, (u.top ?? {})[kind] ?? []);
    $("usage").dataset.loaded = u.start_date + "/" + u.end_date + "/" + u.group_by;
    performance.mark("tollgate:usage-rendered"); // the load time the browser test reads
  }

  function seriesName(s) {
    if (s.id === null && s.name === "others") return "Others";
    return s.name ?? s.key_name ?? s.id ?? "–";
  }

  function renderChart(u) {
    if (state.usage !== u) return; // a newer answer came while the library loaded
    if (typeof window.Chart !== "function") {
      showError("The chart library (/ui/chart.umd.js) did not load: the chart cannot be drawn");
      return;
    }
    const datasets = (u.series ?? []).map((s, i) => ({
      label: seriesName(s),
      data: (s.spend_by_day ?? []).map(Number), // drawn as floats; tooltips use the strings
      exact: s.spend_by_day ?? [],
      backgroundColor: PALETTE[i % PALETTE.length],
      stack: "spend",
    }));
    const labels = u.days ?? [];
    $("chart").dataset.drawn = u.start_date + "/" + u.end_date + "/" + u.group_by;
    if (state.chart) {
      state.chart.data.labels = labels;
      state.chart.data.datasets = datasets;
      state.chart.update();
      return;
    }
    state.chart = new window.Chart($("chart"), {
      type: "bar",
      data: { labels, datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true, ticks: { callback(v) { return String(this.getLabelForValue(v)).slice(5); } } },
          y: { stacked: true, beginAtZero: true,
               ticks: { callback: (v) => fmtMoney(Number(v).toFixed(10)) } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: {
            filter: (item) => item.parsed.y !== 0,
            callbacks: {
              label: (c) => c.dataset.label + ": " + fmtMoney(c.dataset.exact[c.dataIndex]),
            },
          },
        },
      },
    });
  }

  function clearTop(kind) {
    const box = $("top-" + kind);
    box.replaceChildren(box.querySelector("h2"));
  }

  /* The name cell of a top entry: a button that filters the logs by it. */
  function topName(kind, e) {
    const name = kind === "api_key" ? e.name ?? e.key_name ?? shortHash(e.id)
      : e.name ?? e.id ?? "–";
    const label = el("span", { class: "name-text" }, name);
    const extra = kind === "api_key" && e.name && e.key_name
      ? el("span", { class: "muted small" }, " " + e.key_name) : null;
    if (e.id === null || e.id === undefined) return el("td", { class: "name" }, label, extra);
    const b = el("button", { type: "button", class: "link", title: "Show these requests in the logs",
                             dataset: { filter: TOP_FILTER[kind], id: e.id } }, label, extra);
    return el("td", { class: "name" }, b);
  }

  function renderTop(kind, entries) {
    clearTop(kind);
    const box = $("top-" + kind);
    if (entries.length === 0) {
      box.append(el("p", { class: "muted" }, "No spend"));
      fillDatalist(kind, entries);
      return;
    }
    const body = el("tbody");
    for (const e of entries) {
      const share = el("td", { class: "num share" }, fmtShare(e.share),
                       el("meter", { min: "0", max: "1", value: String(Number(e.share) || 0),
                                     "aria-hidden": "true" }));
      body.append(el("tr", { dataset: { id: e.id ?? "" } }, topName(kind, e),
                     moneyCell("td", e.spend), el("td", { class: "num requests" }, fmtInt(e.requests)),
                     share));
    }
    const head = el("thead", null, el("tr", null, el("th", null, "Name"),
                                      el("th", { class: "num" }, "Spend"),
                                      el("th", { class: "num requests" }, "Requests"),
                                      el("th", { class: "num" }, "Share")));
    box.append(el("div", { class: "table-wrap" }, el("table", { class: "data" }, head, body)));
    fillDatalist(kind, entries);
  }

  /* The log filters suggest the ids of the top lists. */
  function fillDatalist(kind, entries) {
    const list = $("list-" + kind);
    list.replaceChildren(...entries.filter((e) => e.id !== null && e.id !== undefined)
      .map((e) => el("option", { value: e.id, label: e.name ?? e.key_name ?? e.id })));
  }

  /* ------------------------------------------------------------ budgets */

  async function loadBudgets() {
    const seq = ++state.seq.budgets;
    try {
      const b = await getJson("/ui/api/budgets", { threshold: BUDGET_THRESHOLD });
      if (seq === state.seq.budgets) renderBudgets(b.budgets ?? []);
    } catch (err) {
      if (seq === state.seq.budgets && !handleAuthError(err)) report(err);
    }
  }

  function fmtReset(v) {
    if (!v) return "never";
    return fmtTime(v).slice(0, 16) + " UTC";
  }

  function renderBudgets(list) {
    const box = $("budgets-body");
    if (list.length === 0) {
      box.replaceChildren(el("p", { class: "muted", "data-testid": "budgets-empty" },
                             "No budget is at " + fmtShare(BUDGET_THRESHOLD).replace(".00", "") +
                             " of its limit or more"));
      return;
    }
    const body = el("tbody");
    for (const b of list) {
      const over = Number(b.ratio) >= 1;
      const spend = el("td", { class: "num" }, moneyCell("span", b.spend, "money"), " / ",
                       moneyCell("span", b.max_budget, "money"));
      body.append(el("tr", { class: over ? "over" : "near", dataset: { kind: b.kind, id: b.id } },
                     el("td", { class: "name" }, b.name ?? b.id, el("span", { class: "kind" }, b.kind)),
                     spend,
                     el("td", { class: "num" }, el("span", { class: over ? "badge over" : "badge near" },
                                                   fmtShare(b.ratio))),
                     el("td", null, fmtReset(b.budget_reset_at))));
    }
    const head = el("thead", null, el("tr", null, el("th", null, "Name"),
                                      el("th", { class: "num" }, "Spend / max budget"),
                                      el("th", { class: "num" }, "Used"),
                                      el("th", null, "Resets")));
    box.replaceChildren(el("div", { class: "table-wrap" },
                           el("table", { class: "data", "data-testid": "budgets-table" }, head, body)));
  }

  /* ------------------------------------------------------------ logs */

  const FILTERS = ["api_key", "team_id", "end_user", "tag", "model"];
  const LOG_COLUMNS = ["Time (UTC)", "Key", "Team", "Customer", "Model", "Tags", "Prompt",
                       "Completion", "Tokens", "Cost", "Status"];

  function readFilters() {
    const f = {};
    for (const name of FILTERS) {
      const v = $("filter-" + name).value.trim();
      if (v !== "") f[name] = v;
    }
    return f;
  }

  async function loadLogs(page) {
    const seq = ++state.seq.logs;
    const params = Object.assign({ start_date: state.start, end_date: state.end, page,
                                   page_size: LOG_PAGE_SIZE }, state.logs.filters);
    $("logs").classList.add("busy");
    try {
      const r = await getJson("/ui/api/logs", params);
      if (seq === state.seq.logs) renderLogs(r);
    } catch (err) {
      if (seq !== state.seq.logs || handleAuthError(err)) return;
      $("logs-body").replaceChildren(); // rows of another range or filter would mislead
      $("logs-page").textContent = "";
      report(err);
    } finally {
      if (seq === state.seq.logs) $("logs").classList.remove("busy");
    }
  }

  /* One request of /ui/api/logs (the names of /spend/logs' rows are read too). */
  function logRow(r) {
    const keyName = r.key_alias ?? r.key_name ?? shortHash(r.api_key);
    const tagList = r.tags ?? r.request_tags;
    const tags = Array.isArray(tagList) ? tagList.join(", ") : "";
    const model = r.model_group && r.model_group !== r.model ? r.model_group : r.model;
    const cells = [
      el("td", { class: "nowrap" }, fmtTime(r.start_time ?? r.startTime)),
      el("td", { title: r.key_name ?? "" }, keyName || "–"),
      el("td", { title: r.team_id ?? "" }, r.team_name ?? r.team_alias ?? r.team_id ?? "–"),
      el("td", null, r.end_user ?? "–"),
      el("td", { title: r.model ?? "" }, model ?? "–"),
      el("td", null, tags || "–"),
      el("td", { class: "num" }, fmtInt(r.prompt_tokens)),
      el("td", { class: "num" }, fmtInt(r.completion_tokens)),
      el("td", { class: "num" }, fmtInt(r.total_tokens)),
      moneyCell("td", r.spend),
      el("td", null, r.status ?? ""),
    ];
    cells.forEach((td, i) => { td.dataset.label = LOG_COLUMNS[i]; }); // a phone shows rows as cards
    return el("tr", { dataset: { requestId: r.request_id } }, ...cells);
  }

  /* The page of rows and the pager: "total" may be null (no rollup counts that
   * filter), then has_more alone says whether an older page exists. */
  function renderLogs(r) {
    const rows = r.rows ?? [];
    const page = Number(r.page ?? 1), size = Number(r.page_size ?? LOG_PAGE_SIZE);
    const total = r.total === null || r.total === undefined ? null : Number(r.total);
    state.logs.page = page;
    const body = $("logs-body");
    if (rows.length === 0) {
      body.replaceChildren(el("tr", null, el("td", { colspan: "11", class: "muted empty-row" },
                                              "No requests match")));
    } else {
      body.replaceChildren(...rows.map(logRow));
    }
    const pages = total === null ? null : Math.max(1, Math.ceil(total / size));
    const more = typeof r.has_more === "boolean" ? r.has_more : pages !== null && page < pages;
    $("logs-page").textContent = "Page " + page + (pages === null ? "" : " of " + pages + " · " +
      fmtInt(total) + (total === 1 ? " request" : " requests"));
    $("logs-page").dataset.page = String(page);
    $("logs-page").dataset.total = total === null ? "" : String(total);
    $("logs-prev").disabled = page <= 1;
    $("logs-next").disabled = !more;
  }

  function applyFilters(ev) {
    if (ev) ev.preventDefault();
    state.logs.filters = readFilters();
    loadLogs(1);
  }

  function clearFilters() {
    for (const name of FILTERS) $("filter-" + name).value = "";
    applyFilters();
  }

  /* A top list's name button: filter the logs by that entry. */
  function onTopClick(ev) {
    const b = ev.target.closest("button[data-filter]");
    if (b === null) return;
    for (const name of FILTERS) $("filter-" + name).value = "";
    $("filter-" + b.dataset.filter).value = b.dataset.id;
    applyFilters();
    $("logs").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  /* ------------------------------------------------------------ CSV */

  /* The report the view shows (each group of its grouping on each day; an
   * internal user's key: its own), as reportd's CSV; fetched with the key (a
   * plain link could not send it) and saved from a Blob. */
  async function downloadCsv() {
    const button = $("csv-download");
    button.disabled = true;
    clearError();
    try {
      const resp = await fetchWithKey("/ui/api/usage",
                                      Object.assign(usageParams(), { format: "csv" }));
      const blob = await resp.blob();
      const name = "tollgate-spend-by-" + state.groupBy + "-" + state.start + // as reportd names it
        "-to-" + state.end + ".csv";
      const a = el("a", { href: URL.createObjectURL(blob), download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    } catch (err) {
      if (!handleAuthError(err)) report(err);
    } finally {
      updateCsvButton();
    }
  }

  /* ------------------------------------------------------------ wiring */

  function onRangeChange() {
    const start = $("start-date").value, end = $("end-date").value;
    if (!DAY_RE.test(start) || !DAY_RE.test(end)) return; // mid-edit
    if (start > end) {
      showError("The start date is after the end date");
      return;
    }
    clearError();
    state.start = start;
    state.end = end;
    writeView();
    loadUsage();
    loadLogs(1);
  }

  function onGroupChange() {
    state.groupBy = $("group-by").value;
    updateCsvButton();
    writeView();
    loadUsage();
  }

  function refresh() {
    clearError();
    loadUsage();
    loadBudgets();
    loadLogs(state.logs.page);
  }

  function init() {
    $("signin-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    $("error-close").addEventListener("click", clearError);
    $("start-date").addEventListener("change", onRangeChange);
    $("end-date").addEventListener("change", onRangeChange);
    $("group-by").addEventListener("change", onGroupChange);
    $("refresh").addEventListener("click", refresh);
    $("csv-download").addEventListener("click", downloadCsv);
    $("logs-filters").addEventListener("submit", applyFilters);
    $("filter-clear").addEventListener("click", clearFilters);
    $("logs-prev").addEventListener("click", () => loadLogs(state.logs.page - 1));
    $("logs-next").addEventListener("click", () => loadLogs(state.logs.page + 1));
    document.querySelector(".tops").addEventListener("click", onTopClick);

    readView();
    state.key = sessionStorage.getItem(KEY_STORE);
    if (state.key === null) {
      signedInView(false);
      return;
    }
    signedInView(true);
    loadUsage();
    loadBudgets();
    loadLogs(1);
  }

  // for the browser test and the curious: the formatter the page uses
  window.tollgateUsage = Object.freeze({ fmtMoney });

  init();
})();
