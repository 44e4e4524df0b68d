import { test, expect } from "@playwright/test";
import { signIn } from "./helpers";

test("the dashboard shell renders on the server and hydrates", async ({ page }, info) => {
  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  await expect(page).toHaveTitle("Overview · Enclii");
  await expect(page.getByRole("heading", { level: 1, name: "Overview" })).toBeVisible();
  // Set by an effect, which only runs in the browser once the wasm has hydrated the page.
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await page.screenshot({ path: `screenshots/overview-${info.project.name}.png`, fullPage: true });
});

test("navigation reaches every section and marks the current one", async ({ page, isMobile }, info) => {
  await signIn(page, "navigator");
  for (const name of ["Projects", "Deployments", "Activity", "Status", "Settings"]) {
    if (isMobile) {
      await page.getByRole("button", { name: "Menu" }).click();
      await expect(page.getByRole("button", { name: "Menu" })).toHaveAttribute("aria-expanded", "true");
    }
    await page.getByRole("navigation", { name: "Primary" }).getByRole("link", { name }).click();
    await expect(page.getByRole("heading", { level: 1, name })).toBeVisible();
    // Checked in the DOM: on a phone the menu has closed again after the click.
    await expect(page.locator('#primary-nav a[aria-current="page"]')).toHaveText(name);
    await page.screenshot({ path: `screenshots/nav-${name.toLowerCase()}-${info.project.name}.png`, fullPage: true });
  }
});

test("dark mode toggles in the browser and survives a reload", async ({ page }) => {
  await page.goto("/");
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  const html = page.locator("html");
  const toggle = page.getByRole("button", { name: "Dark mode" });
  const wasDark = (await html.getAttribute("class"))?.includes("dark") ?? false;
  await toggle.click();
  await expect(toggle).toHaveAttribute("aria-pressed", String(!wasDark));
  if (wasDark) await expect(html).not.toHaveClass(/dark/);
  else await expect(html).toHaveClass(/dark/);
  await page.reload();
  // The server rendered the saved choice: no script needed to get it right.
  if (wasDark) await expect(html).not.toHaveClass(/dark/);
  else await expect(html).toHaveClass(/dark/);
});

test("an unknown page answers 404 with a way back", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  await page.getByRole("link", { name: "Back to the overview" }).click();
  await expect(page).toHaveURL(/\/$/);
});

test("the dashboard health alias reports the database", async ({ request }) => {
  const response = await request.get("/api/health");
  expect(response.status()).toBe(200);
  expect(await response.json()).toMatchObject({ status: "ok", checks: { database: "ok" } });
});

test("a deep landing fetches its page's wasm modules in one pack, later pages one by one", async ({ page, isMobile }) => {
  await signIn(page, "lander");
  const fetched: string[] = [];
  page.on("response", (r) => fetched.push(`${r.status()} ${new URL(r.url()).pathname}`));
  const modules = () => fetched.filter((f) => /\/pkg\/(chunk|split)_/.test(f));

  // A new document on a lazily loaded page: one pack (server/src/http/landing_packs.rs) instead of
  // a request per module, and the page hydrates from it.
  await page.goto("/activity");
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByRole("heading", { level: 1, name: "Activity" })).toBeVisible();
  expect(fetched.filter((f) => f.includes("/landing/"))).toEqual([
    expect.stringMatching(/^200 \/landing\/[^/]+\/__activity_route_view_\d+$/),
  ]);
  expect(modules()).toEqual([]);
  // The main module once: its preload (components/landing.rs) is the request the page uses.
  expect(fetched.filter((f) => /\/pkg\/switchyard\.[^/]*\.wasm$/.test(f))).toEqual([
    expect.stringMatching(/^200 /),
  ]);

  // Following a link to another lazily loaded page fetches that page's modules from the network.
  if (isMobile) await page.getByRole("button", { name: "Menu" }).click();
  await page.getByRole("navigation", { name: "Primary" }).getByRole("link", { name: "Settings" }).click();
  await expect(page.getByRole("button", { name: "Create token" })).toBeVisible();
  await expect.poll(() => modules().some((f) => /^200 \/pkg\/split___settings_route_view_/.test(f))).toBe(true);
  expect(modules().filter((f) => !f.startsWith("200 "))).toEqual([]);
});
