// The browser tests' one harness: Debian's headless Chromium through playwright-core (nothing
// downloaded), a page script's `result` printed as one JSON line, exit code 0 when the script ran
// to its end. Usage: `await drive(async (browser, result) => { ... })`.
import { chromium } from "playwright-core";

export async function drive(script) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const result = { ok: false };
  try {
    await script(browser, result);
    result.ok = true;
  } catch (err) {
    result.error = String(err);
  } finally {
    await browser.close();
    console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
  }
}
