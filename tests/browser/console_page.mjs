// Loads Prometheus' console page ops/prometheus/consoles/streams.html in headless Chromium and
// waits until the panels whose series the stand-in worker serves have drawn their charts; prints
// the panels' titles, which drew a chart, their legends, and any request that failed.
// Usage: node console_page.mjs <console page url> <title of a panel that must draw> ...
import { drive } from "./harness.mjs";

const [url, ...wanted] = process.argv.slice(2);
await drive(async (browser, result) => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const failed = [];
  page.on("console", (m) => console.error(`[page] ${m.text()}`));
  page.on("requestfailed", (r) => failed.push(r.url()));
  page.on("response", (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
  await page.goto(url);
  result.stage = "charts";
  await page.waitForFunction(
    (titles) => titles.every((t) => [...document.querySelectorAll("#panels .panel")].some(
      (p) => p.querySelector("h3").textContent === t && p.querySelector("svg path"))),
    wanted, { timeout: 90000, polling: 500 });
  result.panels = await page.$$eval("#panels .panel", (els) => els.map((p) => ({
    title: p.querySelector("h3").textContent,
    drawn: p.querySelector("svg path") !== null,
    legend: [...p.querySelectorAll(".rickshaw_legend .label")].map((l) => l.textContent),
  })));
  result.failed = failed;
});
