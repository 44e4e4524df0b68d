import { expect, test } from "@playwright/test";
import { apiToken, signIn } from "./helpers";

// The public status page: a status spec's monitoring targets and a deployed service's health check,
// probed by the server and shown to a visitor who is not signed in.

test("the status page shows probed targets and uptime bars to a signed-out visitor", async ({ page, browser, baseURL }, info) => {
  test.setTimeout(90000);
  const project = `status-${info.project.name}`;
  await signIn(page, project);
  const headers = { authorization: `Bearer ${await apiToken(page)}` };
  expect((await page.request.post("/api/projects/create", { data: { slug: project }, headers })).status()).toBe(200);
  // A project's targets reach the public page only when it opts in (its admin's choice).
  const published = await page.request.post("/api/status/publish", { data: { project, public: true }, headers });
  expect(published.status(), await published.text()).toBe(200);
  const spec =
    `apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: status-page\n  project: ${project}\nspec:\n` +
    `  build:\n    type: auto\n  runtime:\n    port: 3000\n    healthCheck: /health\n` +
    `  rollout:\n    strategy: rolling\n` +
    `  monitoring:\n    targets:\n` +
    `      - name: ${project} dashboard\n        url: ${baseURL}/health/live\n        interval: 5s\n` +
    `      - name: ${project} missing page\n        url: ${baseURL}/no-such-page\n        interval: 5s\n`;
  const imported = await page.request.post("/api/services/import", { data: { spec }, headers });
  expect(imported.status(), await imported.text()).toBe(200);
  const deployed = await page.request.post("/api/deployments/create", {
    data: { project, service: "status-page", environment: "production", image: "ghcr.io/example/status:1" },
    headers,
  });
  expect(deployed.status()).toBe(200);

  // A visitor: a fresh browser context without the session cookie.
  const visitor = await browser.newContext({ baseURL, viewport: page.viewportSize() ?? undefined });
  const anon = await visitor.newPage();
  const row = (name: string) => anon.getByTestId("target").filter({ hasText: name });
  await expect(async () => {
    await anon.goto("/status");
    await expect(row(`${project} dashboard`)).toHaveAttribute("data-state", "up", { timeout: 1000 });
    await expect(row(`${project}/status-page (production)`)).toHaveAttribute("data-state", "up", { timeout: 1000 });
  }).toPass({ timeout: 45000 });
  await expect(row(`${project} missing page`)).toHaveAttribute("data-state", "down");
  await expect(row(`${project} missing page`)).toContainText("answered 404");
  await expect(row(`${project} dashboard`)).toContainText("100.00% uptime");
  await expect(row(`${project} dashboard`).getByRole("img")).toHaveAttribute("aria-label", /100.00% uptime over 90 days/);
  await expect(anon.getByTestId("overall")).toHaveText("Some systems are down");
  // Nothing about the targets' addresses is shown.
  expect(await anon.content()).not.toContain("/no-such-page");
  await anon.screenshot({ path: `screenshots/status-${info.project.name}.png`, fullPage: true });
  await visitor.close();

  // Signed in, the overview shows the same at a glance, and the deployment among the recent ones.
  await page.goto("/");
  await expect(page.getByTestId("health")).toContainText(/\d+ of \d+ checks failing/);
  await expect(page.getByTestId("recent-deployments")).toContainText(`${project}/status-page → production`);
  await page.screenshot({ path: `screenshots/overview-signed-in-${info.project.name}.png`, fullPage: true });
});
