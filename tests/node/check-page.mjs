// node check-page.mjs PAGE.html SCREENSHOT.png RESULT.json
// Opens a local HTML file in Debian's Chromium (headless, through playwright-core), with the
// network cut off: records console errors, page errors, any request that is not a file: URL,
// the ids of the page's sections and the plots in each, and takes a full-page screenshot.
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const [page_path, screenshot, result_path] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"],
});
const result = { console_errors: [], page_errors: [], external_requests: [], sections: {}, title: null };
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") result.console_errors.push(m.text()); });
  page.on("pageerror", (e) => result.page_errors.push(String(e)));
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:") || url.startsWith("data:")) return route.continue();
    result.external_requests.push(url);
    return route.abort();
  });
  await page.goto(pathToFileURL(page_path).href, { waitUntil: "load" });
  result.title = await page.title();
  result.sections = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("section")].map(
    (s) => [s.id, { svgs: s.querySelectorAll("svg").length, tables: s.querySelectorAll("table").length,
                    text: s.innerText.length }])));
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
writeFileSync(result_path, JSON.stringify(result, null, 2));
