import { test, expect } from "@playwright/test";
import { apiToken, signIn } from "./helpers";

test("a visitor is sent to sign in and brought back to the page they wanted", async ({ page }, info) => {
  await page.goto("/settings");
  // The provider's real login page.
  await expect(page.locator('input[name="login"]')).toBeVisible();
  await page.screenshot({ path: `screenshots/plinto-login-${info.project.name}.png` });
  await page.locator('input[name="login"]').fill("returner");
  await page.locator('input[name="password"]').fill("secret");
  await page.locator('button[type="submit"]').click();
  await expect(page).toHaveURL(/\/settings$/);
  await expect(page.getByRole("heading", { level: 1, name: "Settings" })).toBeVisible();
});

test("sign in, see your name, sign out, and be refused afterwards", async ({ page, context }) => {
  await signIn(page, "alice");
  await expect(page.getByTestId("user-menu")).toContainText("Test alice");
  // The run and test servers deploy to the local cluster of simulated nodes, and the dashboard says so plainly.
  await expect(page.getByTestId("cluster-badge")).toHaveText("Local cluster (simulated nodes)");
  // No token ever reaches the browser: not in the URL, not in storage, not in readable cookies.
  expect(page.url()).not.toContain("token");
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  expect(storage).toBe("{}{}");
  expect(await page.evaluate(() => document.cookie)).not.toContain("enclii_session");
  const session = (await context.cookies()).find((c) => c.name === "enclii_session");
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe("Lax");

  await page.getByRole("button", { name: "Sign out" }).click();
  // The provider asks to end its own session too.
  const yes = page.getByRole("button", { name: /yes/i });
  if (await yes.isVisible().catch(() => false)) await yes.click();
  await page.goto("/");
  await expect(page.getByTestId("user-menu")).toHaveText("Sign in");
  const response = await page.request.post("/api/whoami", { data: {} });
  expect(response.status()).toBe(401);
});

test("an API token is shown once, listed by prefix, and can be revoked", async ({ page }, info) => {
  await signIn(page, `tokens-${info.project.name}`, "/");
  await page.goto("/settings");
  await expect(page.getByRole("heading", { level: 1, name: "Settings" })).toBeVisible();
  // The page's own chunk has hydrated (not only the frame): its form is live.
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await page.getByLabel("Name").fill("laptop");
  await page.getByRole("button", { name: "Create token" }).click();
  const secret = await page.getByTestId("new-token").textContent();
  expect(secret).toMatch(/^ency_[A-Za-z0-9_-]{43}$/);
  // The token works as a bearer…
  const ok = await page.request.post("/api/whoami", { data: {}, headers: { authorization: `Bearer ${secret}` } });
  expect(ok.status()).toBe(200);
  await page.screenshot({ path: `screenshots/settings-${info.project.name}.png`, fullPage: true });
  // …until it is revoked.
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Revoke laptop" }).click();
  await expect(page.getByRole("cell", { name: "revoked" })).toBeVisible();
  const refused = await page.request.post("/api/whoami", { data: {}, headers: { authorization: `Bearer ${secret}` } });
  expect(refused.status()).toBe(401);
});

test("a deployment made with an API token shows on the Deployments page", async ({ page }, info) => {
  const login = `deployer-${info.project.name}`;
  await signIn(page, login);
  const token = await apiToken(page);
  const headers = { authorization: `Bearer ${token}` };
  const slug = `e2e-${info.project.name}`;
  expect((await page.request.post("/api/projects/create", { data: { slug }, headers })).status()).toBe(200);
  const spec = `apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: web\n  project: ${slug}\nspec:\n  build:\n    type: auto\n  runtime:\n    port: 8080\n`;
  expect((await page.request.post("/api/services/import", { data: { spec }, headers })).status()).toBe(200);
  const deploy = await page.request.post("/api/deployments/create", {
    data: { project: slug, service: "web", environment: "production", image: "ghcr.io/example/web:1" },
    headers,
  });
  expect(deploy.status()).toBe(200);
  await page.goto("/deployments");
  const row = page.getByTestId("deployments").getByRole("row").filter({ hasText: `${slug}/web` });
  await expect(row).toContainText("ghcr.io/example/web:1");
  // The sandbox rolls it out: the page shows the truth once it is done.
  await expect(async () => {
    await page.reload();
    await expect(page.getByTestId("deployments").getByRole("row").filter({ hasText: `${slug}/web` })).toContainText("succeeded", { timeout: 1000 });
  }).toPass({ timeout: 20000 });
  await page.screenshot({ path: `screenshots/deployments-${info.project.name}.png`, fullPage: true });
});
