// What a first visit downloads, measured in Chromium: for each landing page, a fresh browser
// context (empty cache) opens it, waits until the page has hydrated, and sums the compressed bytes
// of every JS, WASM and CSS response (and landing pack) it received, as the network delivered them.
//
// Usage: node scripts/first-visit.mjs BASE_URL TOKEN PATH...   (TOKEN: an API token, sent as a
// bearer header so that signed-in pages render; "" for none). Exits 1 if a page does not hydrate,
// logs an error, or fetches a file that is not there: the figures would not be a real visit's.
import { createRequire } from "node:module";
const require = createRequire(new URL("../package.json", import.meta.url));
const { chromium } = require("playwright");

const BUDGET = 300_000;
const [base, token, ...paths] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
let failed = 0, over = 0;
for (const path of paths) {
  const context = await browser.newContext(token ? { extraHTTPHeaders: { Authorization: `Bearer ${token}` } } : {});
  const page = await context.newPage();
  const problems = [];
  const sizes = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  page.on("response", (r) => {
    const url = new URL(r.url());
    if (r.status() >= 400) problems.push(`${r.status()} ${url.pathname}`);
    if (/\.(js|wasm|css)$/.test(url.pathname) || url.pathname.startsWith("/landing/")) {
      sizes.push(r.request().sizes().then((s) => [url.pathname, s.responseBodySize]));
    }
  });
  await page.goto(base + path);
  try {
    await page.waitForSelector("#app[data-hydrated=true]", { timeout: 20_000 });
  } catch {
    problems.push("did not hydrate");
  }
  // Modules the hydrated page fetches after the fact (none expected) still count.
  await page.waitForTimeout(500);
  const files = await Promise.all(sizes);
  const total = files.reduce((sum, [, bytes]) => sum + Math.max(0, bytes), 0);
  const kinds = { js: 0, wasm: 0, css: 0, pack: 0 };
  for (const [name, bytes] of files) kinds[name.startsWith("/landing/") ? "pack" : name.split(".").pop()] += Math.max(0, bytes);
  const verdict = problems.length ? "FAILED" : total <= BUDGET ? "ok" : "OVER 300 KB";
  failed += problems.length > 0;
  over += total > BUDGET;
  console.log(
    `  ${path.padEnd(48)} ${String(total).padStart(7)} B  (${(total / 1024).toFixed(0)} KiB; js ${kinds.js}, wasm ${kinds.wasm}, pack ${kinds.pack}, css ${kinds.css}; ${files.length} files)  ${verdict}`,
  );
  for (const p of problems.slice(0, 5)) console.log(`      ${p}`);
  await context.close();
}
console.log(`${over} of ${paths.length} landings over ${BUDGET} B`);

// A later landing in the same browser on a lazily loaded page, after a lazily loaded page and after
// `/`: the main module comes from what the first page load kept (Cache Storage,
// app/src/components/landing.js), the JS and CSS from the HTTP cache, so only the page's pack
// (without the main module) is downloaded.
const lazy = paths.filter((p) => p !== "/");
const pairs = lazy.length >= 2 ? [[lazy[0], lazy[1]]] : [];
if (paths.includes("/") && lazy.length) pairs.push(["/", lazy[lazy.length - 1]]);
for (const [first, later] of pairs) {
  const context = await browser.newContext(token ? { extraHTTPHeaders: { Authorization: `Bearer ${token}` } } : {});
  const page = await context.newPage();
  await page.goto(base + first);
  await page.waitForSelector("#app[data-hydrated=true]", { timeout: 20_000 });
  await page.waitForTimeout(500); // the main module is kept after it is instantiated
  const again = [];
  page.on("response", (r) => again.push(r.request().sizes().then((s) => [new URL(r.url()).pathname, s.responseBodySize])));
  await page.goto(base + later);
  let hydrated = true;
  try {
    await page.waitForSelector("#app[data-hydrated=true]", { timeout: 20_000 });
  } catch {
    hydrated = false;
  }
  const files = (await Promise.all(again)).filter(([name]) => /\.(js|wasm|css)$/.test(name) || name.startsWith("/landing/"));
  const bytes = files.reduce((sum, [, b]) => sum + Math.max(0, b), 0); // a cache hit reports no body (a negative size)
  const main = files.filter(([name, b]) => (name.endsWith(".wasm") && b > 0) || name.endsWith("/with-main"));
  console.log(`later landing on ${later} after ${first}: ${bytes} B over the network (${files.filter(([, b]) => b > 0).map(([n, b]) => `${n} ${b}`).join(", ")})`);
  if (!hydrated || main.length) {
    console.log(`      ${hydrated ? "downloaded the main module again" : "did not hydrate"}`);
    failed++;
  }
  await context.close();
}
await browser.close();
process.exit(failed ? 1 : 0);
