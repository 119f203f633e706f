// Drives GET /live in headless Chromium: sends commands through the page's form and waits
// until the page shows the resulting events and the read-model row.
// Usage: node live_page.mjs <base url> <access token> <view> <aggregate id>
// Prints one JSON line with what the page showed; exit code 0 on success.
import { drive } from "./harness.mjs";

const [base, token, view, aggregate] = process.argv.slice(2);
await drive(async (browser, result) => {
  const page = await browser.newPage();
  page.on("console", (m) => console.error(`[page] ${m.text()}`));
  await page.goto(`${base}/live?access_token=${encodeURIComponent(token)}&view=${encodeURIComponent(view)}`);
  result.stage = "connect";
  await page.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: 30000 });

  async function send(type, data) {
    await page.selectOption("#command-type", type);
    await page.fill("#aggregate-id", aggregate);
    await page.fill("#command-data", JSON.stringify(data));
    await page.click("#send");
    await page.waitForFunction(
      () => /^\d{3} /.test(document.getElementById("command-result").textContent), null, { timeout: 30000 });
    const text = await page.textContent("#command-result");
    await page.evaluate(() => { document.getElementById("command-result").textContent = ""; });
    return text;
  }
  result.stage = "commands";
  result.commands = [
    await send("PlaceOrder", { customer_id: "browser", currency: "EUR" }),
    await send("AddItem", { sku: "book", quantity: 2, unit_price_cents: 1500 }),
  ];
  result.stage = "events";
  const eventsSel = `li.event[data-aggregate="${aggregate}"]`;
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length >= 2, eventsSel, { timeout: 30000 });
  result.events = await page.$$eval(eventsSel, (els) => els.map((e) => e.textContent).reverse());
  result.stage = "readmodel";
  await page.waitForFunction(
    (id) => document.querySelector(`#rm-${id} .version`)?.textContent === "2", aggregate, { timeout: 30000 });
  result.readmodel = {
    version: await page.textContent(`#rm-${aggregate} .version`),
    state: JSON.parse(await page.textContent(`#rm-${aggregate} .state`)),
  };
});
