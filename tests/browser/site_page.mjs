// Drives GET /live watching one site of the devices fleet in headless Chromium: registers devices
// through the page's form (its command types come from the OpenAPI document) and waits until the
// site-summary row shows them. Usage: node site_page.mjs <base url> <access token> <site> <device>...
// Prints one JSON line with what the page showed; exit code 0 on success.
import { drive } from "./harness.mjs";

const [base, token, site, ...devices] = process.argv.slice(2);
await drive(async (browser, result) => {
  const page = await browser.newPage();
  page.on("console", (m) => console.error(`[page] ${m.text()}`));
  const query = `context=devices&view=site-summary&key=${encodeURIComponent(site)}`;
  await page.goto(`${base}/live?access_token=${encodeURIComponent(token)}&${query}`);
  result.stage = "connect";
  await page.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: 30000 });
  result.stage = "command types";
  await page.waitForFunction(
    () => [...document.querySelectorAll("#command-type option")].some((o) => o.textContent === "RegisterDevice"),
    null, { timeout: 30000 });
  result.commandTypes = await page.$$eval("#command-type option", (els) => els.map((e) => e.textContent));
  result.stage = "commands";
  result.commands = [];
  for (const device of devices) {
    await page.selectOption("#command-type", "RegisterDevice");
    await page.fill("#aggregate-id", device);
    await page.fill("#command-data", JSON.stringify({ site, name: device }));
    await page.click("#send");
    await page.waitForFunction(
      () => /^\d{3} /.test(document.getElementById("command-result").textContent), null, { timeout: 30000 });
    result.commands.push(await page.textContent("#command-result"));
    await page.evaluate(() => { document.getElementById("command-result").textContent = ""; });
  }
  result.stage = "readmodel";
  await page.waitForFunction(
    ([s, n]) => {
      const row = document.getElementById(`rm-${s}`);
      return row && JSON.parse(row.querySelector(".state").textContent || "{}").total === n;
    }, [site, devices.length], { timeout: 60000 });
  result.readmodel = JSON.parse(await page.textContent(`[id="rm-${site}"] .state`));
  result.rows = await page.$$eval("tr.readmodel-row", (els) => els.map((e) => e.id));
  result.events = await page.$$eval("li.event", (els) => els.length);
});
