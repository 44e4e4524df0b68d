import { expect, test } from "@playwright/test";
import { apiToken, signIn } from "./helpers";

// The service page: replica counts that change on screen as the cluster changes, and live logs
// with pause and filter.

test("a service's status goes live from not deployed to ready, and its logs stream", async ({ page }, info) => {
  test.setTimeout(90000);
  await signIn(page, `svc-${info.project.name}`);
  const headers = { authorization: `Bearer ${await apiToken(page)}` };
  const project = `svc-${info.project.name}`;
  expect((await page.request.post("/api/projects/create", { data: { slug: project }, headers })).status()).toBe(200);
  const spec = `apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: web\n  project: ${project}\nspec:\n  build:\n    type: auto\n  runtime:\n    port: 8080\n    replicas: 2\n`;
  expect((await page.request.post("/api/services/import", { data: { spec }, headers })).status()).toBe(200);

  await page.goto(`/projects/${project}`);
  await page.getByRole("link", { name: "web" }).click();
  await expect(page).toHaveURL(new RegExp(`/projects/${project}/services/web$`));
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByTestId("status-production").getByTestId("replicas")).toHaveText("not deployed");

  const res = await page.request.post("/api/deployments/create", {
    data: { project, service: "web", environment: "production", image: "ghcr.io/example/web:1" },
    headers,
  });
  expect(res.status()).toBe(200);
  // No reload: the count arrives by server-sent events as the sandbox's pods become ready.
  await expect(page.getByTestId("status-production").getByTestId("replicas")).toHaveText("2/2 ready", { timeout: 30000 });

  // Logs: the panel opened before any pod ran and was told to come back; the lines arrive.
  await expect(page.getByTestId("logs")).toContainText("web GET /health 200", { timeout: 20000 });
  // Switching environments reconnects (staging has no pods), and back.
  await page.getByLabel("Logs of environment").selectOption("staging");
  await expect(page.getByTestId("logs")).toHaveText("Waiting for log lines…");
  await page.getByLabel("Logs of environment").selectOption("production");
  await expect(page.getByTestId("logs")).toContainText("web GET /health 200", { timeout: 20000 });
  await page.getByRole("button", { name: "Pause" }).click();
  const frozen = await page.getByTestId("logs").textContent();
  await page.waitForTimeout(1500);
  expect(await page.getByTestId("logs").textContent()).toBe(frozen);
  await page.getByRole("button", { name: "Follow" }).click();
  await page.getByLabel("Filter logs").fill("no line has this");
  await expect(page.getByTestId("logs")).toHaveText("Waiting for log lines…");
  await page.getByLabel("Filter logs").fill("GET /health");
  await expect(page.getByTestId("logs")).toContainText("GET /health");

  // A secret: set from the page, listed masked, revealed after a confirmation.
  await page.getByLabel("Name", { exact: true }).fill("API_KEY");
  await page.getByLabel("Value").fill("t0ps3cret");
  await page.getByRole("button", { name: "Set variable" }).click();
  const env = page.getByTestId("env");
  await expect(env).toContainText("API_KEY");
  await expect(env).toContainText("••••••••");
  await expect(env).not.toContainText("t0ps3cret");
  page.once("dialog", (d) => d.accept());
  await env.getByRole("button", { name: "Reveal" }).click();
  await expect(env).toContainText("t0ps3cret");
  expect(await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage))).not.toContain("t0ps3cret");

  // A custom domain: added from the page, with the DNS record that proves control.
  await page.getByLabel("Hostname").fill(`${project}.example.com`);
  await page.getByRole("button", { name: "Add domain" }).click();
  const domains = page.getByTestId("domains");
  await expect(domains).toContainText(`_enclii-challenge.${project}.example.com  TXT  "enclii-verify=`);
  await expect(domains).toContainText("not verified");
  await page.screenshot({ path: `screenshots/service-${info.project.name}.png`, fullPage: true });
});
