// Drives GET /dashboard in headless Chromium while commands flow: waits until every chart has
// data (and at least <hold> seconds), saves a screenshot, prints {"stage": "ready"}, waits for a line on stdin (the test stops the traffic and lets
// the worker settle), waits for two more polls, then prints the page's totals and the charts'
// point counts as one JSON line.
// Usage: node dashboard_page.mjs <base url> <access token> <screenshot path> [hold seconds]
import { drive } from "./harness.mjs";
import { createInterface } from "node:readline";

const [base, token, screenshot, hold = "0"] = process.argv.slice(2);
const started = Date.now();
const external = [];
await drive(async (browser, result) => {
  // bypassCSP: playwright evaluates its wait predicates with eval, which the page's CSP forbids
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, bypassCSP: true });
  page.on("console", (m) => console.error(`[page] ${m.text()}`));
  page.on("request", (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  await page.goto(`${base}/dashboard?access_token=${encodeURIComponent(token)}&interval=1&window=120`);
  result.stage = "charts";
  result.address = page.url();
  await page.waitForFunction(
    () => [...document.querySelectorAll(".chart")].every((c) => Number(c.dataset.points) > 0),
    null, { timeout: 150000, polling: 500 });
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(hold) * 1000 - (Date.now() - started))));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ stage: "ready" }));
  await new Promise((resolve) => createInterface({ input: process.stdin }).once("line", resolve));
  result.stage = "totals";
  const seen = await page.evaluate(() => window.streamsDashboard.samples.length);
  await page.waitForFunction((n) => window.streamsDashboard.samples.length >= n + 2, seen, { timeout: 30000 });
  result.worker = await page.textContent("#worker");
  result.accepted = Number(await page.textContent("#total-accepted"));
  result.rejected = Number(await page.textContent("#total-rejected"));
  result.events = Number(await page.textContent("#total-events"));
  result.points = await page.$$eval(".chart", (els) => Object.fromEntries(els.map((e) => [e.id, Number(e.dataset.points)])));
  result.series = await page.$$eval(".chart", (els) => Object.fromEntries(
    els.map((e) => [e.id, [...e.querySelectorAll(".legend span")].map((s) => s.dataset.series)])));
  result.token_stored = await page.evaluate(() => sessionStorage.getItem("streams-dashboard-token") !== null);
  result.address_after = page.url();
  result.external = external;
});
