// usage_page.mjs - drives the Usage page (reportd's /ui) in Debian's headless
// Chromium through playwright-core, for tests/e2e/test_usage_page.py, which
// made the ledger and computed the figures the page must show.
//
// Usage: node usage_page.mjs CONFIG.json
//   CONFIG: {url, master_key, internal_key, wrong_key, artifacts, month: {start, end},
//            expected: {...}, quarter: null | {start, end}}   (see the Python test)
// Checks, in one browser: a wrong key shows the API's error; sign-in with the
// master key shows this month (UTC); the totals and the top team; the load times
// (measured, not judged); the chart's datasets per grouping; the log table's
// paging and a filter; each CSV download equals the CSV the Python test computed
// from spend_logs (expected.csv); screenshots at 1280 px and 375 px; (a quarter's
// load time); sign-out; an internal user's key sees only its own spend. No page
// error and no CSP violation along the way.
// cfg.month is the ledger's month: when a month has ended since the test made
// the ledger, the page's default range is the new month, and the script goes to
// cfg.month by the URL after checking that default.
// Prints one JSON line of what it measured; exits 1 at the first failed check.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const E = cfg.expected;
const out = { checks: [] };
const problems = []; // page errors and CSP violations, checked at the end

function check(cond, what, detail) {
  if (!cond) throw new Error("check failed: " + what + (detail !== undefined ? ": " + JSON.stringify(detail) : ""));
  out.checks.push(what);
}

function checkEqual(got, want, what) {
  check(JSON.stringify(got) === JSON.stringify(want), what, { got, want });
}

const text = (page, sel) => page.locator(sel).innerText();
const attr = (page, sel, name) => page.getAttribute(sel, name);

/* Waits until the usage of (start, end, group) is rendered. */
async function usageShown(page, start, end, group) {
  await page.waitForSelector(`#usage[data-loaded="${start}/${end}/${group}"]`, { timeout: 15000 });
}

async function logsShown(page, page_no) {
  await page.waitForSelector(`#logs-page[data-page="${page_no}"]`, { timeout: 15000 });
  await page.waitForFunction(() => !document.getElementById("logs").classList.contains("busy"));
}

async function signIn(page, key) {
  await page.fill("#signin-key", key);
  await page.click("#signin-submit");
}

async function chartLabels(page) {
  const loaded = await page.getAttribute("#usage", "data-loaded");
  await page.waitForSelector(`#chart[data-drawn="${loaded}"]`);
  return page.evaluate(() => window.Chart.getChart(document.getElementById("chart"))
    .data.datasets.map((d) => d.label));
}

/* Milliseconds from navigating to /ui (key in sessionStorage) to the totals of
 * the range on screen: the test's wall clock, and the page's own mark. */
async function timedLoad(page, hash, start, end, group) {
  await page.goto("about:blank");
  const t0 = Date.now();
  await page.goto(cfg.url + "/ui" + hash);
  await usageShown(page, start, end, group);
  await page.locator("#total-spend").waitFor({ state: "visible" });
  const wall = Date.now() - t0;
  const mark = await page.evaluate(() => {
    const m = performance.getEntriesByName("tollgate:usage-rendered");
    return m.length ? m[0].startTime : null;
  });
  await logsShown(page, 1);
  const all = Date.now() - t0;
  // where the time went: the document, each file and API call (start-end, ms)
  const parts = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const out = { html: [0, Math.round(nav.responseEnd)],
                  dom_ready: Math.round(nav.domContentLoadedEventEnd) };
    for (const r of performance.getEntriesByType("resource")) {
      const name = new URL(r.name).pathname.replace(/^\/ui\/(api\/)?/, "");
      out[name] = [Math.round(r.startTime), Math.round(r.responseEnd)];
    }
    return out;
  });
  return { wall_ms: wall, page_ms: mark === null ? null : Math.round(mark), with_logs_ms: all, parts };
}

/* This script's own reckoning of the current month in UTC: [first day, last day]. */
function monthNow() {
  const now = new Date(), y = now.getUTCFullYear(), m = now.getUTCMonth();
  const day = (ms) => new Date(ms).toISOString().slice(0, 10);
  return [day(Date.UTC(y, m, 1)), day(Date.UTC(y, m + 1, 0))];
}

/* Signs in with key on /ui without a view in the URL: the range must default to
 * the current month (this script's clock before and after: either, when a month
 * ends in between). Then shows the ledger's month, by the URL when the default
 * is another one. */
async function signInToMonth(page, key) {
  const { start, end } = cfg.month;
  const before = monthNow();
  await signIn(page, key);
  await page.waitForSelector("#usage[data-loaded]", { timeout: 15000 });
  const after = monthNow();
  const shown = [await page.inputValue("#start-date"), await page.inputValue("#end-date")];
  check([before.join(), after.join()].includes(shown.join()),
        "the range defaults to the current month", { shown, before, after });
  (out.default_ranges ??= []).push(shown.join("/"));
  if (shown.join() !== [start, end].join()) {
    await page.goto("about:blank");
    await page.goto(`${cfg.url}/ui#start=${start}&end=${end}&group=team`);
  }
  await usageShown(page, start, end, "team");
}

async function logIds(page) {
  return page.$$eval("#logs-body tr[data-request-id]", (rows) => rows.map((r) => r.dataset.requestId));
}

/* Clicks "Download CSV", saves the file as name and checks it equals want, the
 * CSV the Python test computed from spend_logs for the same view. */
async function downloadCsv(page, start, end, g, want, name) {
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv-download")]);
  const file = path.join(cfg.artifacts, name);
  await download.saveAs(file);
  const got = fs.readFileSync(file, "utf8");
  checkEqual(download.suggestedFilename(), `tollgate-spend-by-${g}-${start}-to-${end}.csv`, "CSV file name");
  const a = got.split("\r\n"), b = want.split("\r\n");
  let i = 0; // the first line that differs
  while (i < Math.max(a.length, b.length) && a[i] === b[i]) i++;
  check(got === want, "the downloaded CSV (" + name + ") equals the one from spend_logs",
        { line: i + 1, got: a[i], want: b[i], got_file: got.slice(0, 2000), want_file: want.slice(0, 2000) });
  check(got.split("\r\n").length > 2, "the CSV has rows");
  return { file, bytes: got.length, lines: got.split("\r\n").length - 2 };
}

// Under tests/e2e/at_date.py (libfaketime preloaded, FAKETIME set) Chromium
// hangs when only the wall clock is faked, so its processes get libfaketime
// with the monotonic clock faked too (the same offset): the page sees the
// test's date, and the time flows there as here.
function browserEnv() {
  const env = { ...process.env };
  if (env.FAKETIME) {
    delete env.FAKETIME_DONT_FAKE_MONOTONIC;
    env.LD_PRELOAD = (env.LD_PRELOAD ?? "").split(/[ :]+/)
      .filter((lib) => /\/libfaketime\.so/.test(lib)).join(" ");
  }
  return env;
}

async function main() {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "tg-chromium-"));
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
    env: browserEnv(),
  });
  try {
    const page = ctx.pages()[0] ?? await ctx.newPage();
    page.setDefaultTimeout(15000);
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy|Refused to/.test(m.text()))
        problems.push("CSP: " + m.text());
    });
    await run(page);
  } finally {
    await ctx.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
  check(problems.length === 0, "no page error and no CSP violation", problems);
}

async function run(page) {
  const { start, end } = cfg.month;

  // -- a wrong key: the API's message in the banner, no usage, nothing stored
  await page.goto(cfg.url + "/ui");
  await page.locator("#signin").waitFor({ state: "visible" });
  await signIn(page, cfg.wrong_key);
  await page.locator("#error").waitFor({ state: "visible" });
  checkEqual(await text(page, "#error-text"), E.wrong_key_error, "a wrong key shows the API's error");
  check(await page.locator("#usage").isHidden(), "no usage shown for a wrong key");
  checkEqual(await page.evaluate(() => sessionStorage.length), 0, "a wrong key is not stored");

  // -- the master key: the default range is the current month (UTC)
  await signInToMonth(page, cfg.master_key);
  check(await page.locator("#error").isHidden(), "sign-in clears the error");
  checkEqual(await attr(page, "#total-spend", "data-value"), E.totals.spend, "total spend");
  checkEqual(await text(page, "#total-spend"), E.totals.spend_text, "total spend as shown");
  checkEqual(await attr(page, "#total-spend", "title"), "$" + E.totals.spend, "exact spend in the title");
  checkEqual(await attr(page, "#total-requests", "data-value"), String(E.totals.requests), "requests");
  checkEqual(await attr(page, "#total-tokens", "data-value"), String(E.totals.total_tokens), "tokens");
  check(await page.locator("#empty").isHidden(), "a range with spend is not called empty");
  const top = page.locator("#top-team tbody tr").first();
  checkEqual(await top.locator(".name-text").innerText(), E.top_team.name, "top team's name");
  checkEqual(await top.locator("td.money").getAttribute("data-value"), E.top_team.spend, "top team's spend");
  checkEqual(await top.locator("td.money").innerText(), E.top_team.spend_text, "top team's spend as shown");
  const smallest = page.locator(`#top-api_key td.money[data-value="${E.smallest_key.spend}"]`);
  checkEqual(await smallest.innerText(), E.smallest_key.spend_text, "a sub-cent amount is not $0.00");
  for (const b of E.budgets) {
    const row = page.locator(`#budgets tr[data-kind="${b.kind}"][data-id="${b.id}"]`);
    checkEqual(await row.getAttribute("class"), b.over ? "over" : "near", "budget " + b.id + " shown");
  }
  await logsShown(page, 1);

  // -- load time on this ledger: cold (no HTTP cache) once, then warm (the month
  //    in the URL: the default range may be another month by now)
  const month = `#start=${start}&end=${end}&group=team`;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  const cold = await timedLoad(page, month, start, end, "team");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: false });
  const warm = [];
  for (let i = 0; i < 3; i++) warm.push(await timedLoad(page, month, start, end, "team"));
  out.load = { cold, warm };

  // -- a range the API refuses (too long): its message in the banner, the old
  //    figures dimmed; then an empty range says so
  await page.fill("#start-date", E.too_long.start);
  await page.locator("#error").waitFor({ state: "visible" });
  checkEqual(await text(page, "#error-text"), E.too_long.error, "an API error is shown");
  check(await page.locator("#usage.stale").count() === 1, "figures of another range are dimmed");
  await page.fill("#end-date", E.empty.end);
  await usageShown(page, E.too_long.start, E.empty.end, "team");
  check(await page.locator("#error").isHidden(), "a good range clears the error");
  checkEqual(await text(page, "#empty"), "No spend in this range", "an empty range says so");
  check(await page.locator("#chart-card").isHidden(), "no chart for an empty range");
  checkEqual(await text(page, "#total-spend"), "$0.00", "an empty range's spend");
  await page.waitForSelector("#logs-body .empty-row");
  await page.fill("#end-date", end);
  await page.fill("#start-date", start);
  await usageShown(page, start, end, "team");
  await logsShown(page, 1);
  check(await page.locator("#error").isHidden() && await page.locator("#empty").isHidden(),
        "back to the month");

  // -- grouping: each choice draws the chart's datasets of that grouping
  out.labels = { team: await chartLabels(page) };
  for (const g of ["model", "api_key", "customer", "tag"]) {
    await page.selectOption("#group-by", g);
    await usageShown(page, start, end, g);
    out.labels[g] = await chartLabels(page);
    check(!(await page.locator("#csv-download").isDisabled()), "the CSV button is offered for the " + g + " grouping");
  }
  check(out.labels.model.join() !== out.labels.team.join(), "switching to model changes the datasets",
        out.labels);
  checkEqual(await page.evaluate(() => location.hash), `#start=${start}&end=${end}&group=tag`,
             "the view is kept in the URL");

  // -- the CSV of the view (grouped by tag now, then by key and team) equals the
  //    one computed from spend_logs
  out.csv = {};
  for (const g of ["tag", "api_key", "team"]) {
    if (g !== "tag") {
      await page.selectOption("#group-by", g);
      await usageShown(page, start, end, g);
    }
    out.csv[g] = await downloadCsv(page, start, end, g, E.csv[g], `usage-${g}.csv`);
  }

  // -- the log table: page 1, 2 and back; then a filter
  await logsShown(page, 1);
  checkEqual(await attr(page, "#logs-page", "data-total"), String(E.logs.total), "log rows in the range");
  const first = await logIds(page);
  checkEqual(first.length, Math.min(E.logs.page_size, E.logs.total), "rows on page 1");
  check(await page.locator("#logs-prev").isDisabled(), "no newer page before page 1");
  await page.click("#logs-next");
  await logsShown(page, 2);
  const second = await logIds(page);
  checkEqual(second.length, Math.min(E.logs.page_size, E.logs.total - E.logs.page_size), "rows on page 2");
  check(second.every((id) => !first.includes(id)), "page 2 holds other requests");
  checkEqual([...first, ...second].sort(), [...E.logs.request_ids].sort(),
             "pages 1 and 2 hold the ledger's requests");
  await page.click("#logs-prev");
  await logsShown(page, 1);
  checkEqual(await logIds(page), first, "back to page 1");
  await page.fill("#filter-team_id", E.logs.filter_team.id);
  await page.click("#filter-apply");
  await page.waitForSelector(`#logs-page[data-total="${E.logs.filter_team.total}"]`);
  const teamCells = await page.$$eval("#logs-body tr td:nth-child(3)", (c) => c.map((x) => x.innerText));
  check(teamCells.length > 0 && teamCells.every((t) => E.logs.filter_team.shown.includes(t)),
        "the team filter keeps that team's requests", teamCells);
  await page.click("#filter-clear");
  await page.waitForSelector(`#logs-page[data-total="${E.logs.total}"]`);

  // -- screenshots: laptop and phone (no sideways scrolling of the page at 375 px)
  await page.evaluate(() => window.scrollTo(0, 0));
  const desktop = path.join(cfg.artifacts, "usage-desktop.png");
  await page.screenshot({ path: desktop, fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForFunction(() => document.documentElement.clientWidth === 375);
  await page.waitForTimeout(200); // the chart redraws on resize
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  check(overflow <= 375, "the page fits 375 px (tables scroll in their cards)", overflow);
  const phone = path.join(cfg.artifacts, "usage-phone.png");
  await page.screenshot({ path: phone, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  out.screenshots = [desktop, phone];

  // -- a quarter of rollups: its load time and totals
  if (cfg.quarter) {
    const q = cfg.quarter;
    out.quarter = await timedLoad(page, `#start=${q.start}&end=${q.end}&group=team`, q.start, q.end, "team");
    out.quarter.spend = await attr(page, "#total-spend", "data-value");
    out.quarter.requests = await attr(page, "#total-requests", "data-value");
    out.quarter.datasets = (await chartLabels(page)).length;
    const shot = path.join(cfg.artifacts, "usage-quarter.png");
    await page.screenshot({ path: shot });
    out.screenshots.push(shot);
  }

  // -- sign-out forgets the key
  await page.click("#signout");
  await page.locator("#signin").waitFor({ state: "visible" });
  checkEqual(await page.evaluate(() => sessionStorage.length), 0, "sign-out forgets the key");
  await page.goto(cfg.url + "/ui");
  await page.locator("#signin").waitFor({ state: "visible" });
  check(await page.locator("#usage").isHidden(), "after sign-out a reload asks for a key");

  // -- an internal user's key: its own spend only
  await signInToMonth(page, cfg.internal_key);
  checkEqual(await attr(page, "#total-spend", "data-value"), E.internal.spend, "internal user's spend");
  checkEqual(await attr(page, "#total-requests", "data-value"), String(E.internal.requests),
             "internal user's requests");
  checkEqual(await page.$$eval("#top-team tbody .name-text", (c) => c.map((x) => x.innerText)),
             E.internal.teams, "internal user's teams");
  await page.waitForSelector(`#logs-page[data-total="${E.internal.requests}"]`);
  check(await page.locator("#error").isHidden(), "no error for the internal user's view");
  await page.selectOption("#group-by", "api_key");
  await usageShown(page, start, end, "api_key");
  out.csv.internal = await downloadCsv(page, start, end, "api_key", E.csv.internal,
                                       "usage-internal-api_key.csv");
  checkEqual(out.csv.internal.lines, E.internal.key_days, "the internal user's CSV: its key's days");
  check(await page.locator("#error").isHidden(), "no error for the internal user's CSV");
  await page.click("#signout");
}

try {
  await main();
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify(out));
  console.error(e.stack ?? String(e));
  process.exit(1);
}
