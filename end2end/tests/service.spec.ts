import { expect, test } from "@playwright/test";
import { apiToken, signIn } from "./helpers";

// The service page: replica counts that change on screen as the cluster changes, and live logs
// with pause and filter.

test("a service's status goes live from not deployed to ready, and its logs stream", async ({ page }, info) => {
  test.setTimeout(180000);
  await signIn(page, `svc-${info.project.name}`);
  const headers = { authorization: `Bearer ${await apiToken(page)}` };
  const project = `svc-${info.project.name}`;
  expect((await page.request.post("/api/projects/create", { data: { slug: project }, headers })).status()).toBe(200);
  const spec = `apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: web\n  project: ${project}\nspec:\n  build:\n    type: auto\n  runtime:\n    port: 8080\n    replicas: 2\n`;
  expect((await page.request.post("/api/services/import", { data: { spec }, headers })).status()).toBe(200);

  await page.goto(`/projects/${project}`);
  await page.getByRole("link", { name: "web", exact: true }).click();
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
  await page.screenshot({ path: `screenshots/service-overview-${info.project.name}.png`, fullPage: true });

  // Tabs are links: the Logs tab (its panel subscribes as it opens).
  await page.getByRole("navigation", { name: "Service sections" }).getByRole("link", { name: "Logs" }).click();
  await expect(page).toHaveURL(new RegExp(`/projects/${project}/services/web/logs$`));
  await expect(page.getByRole("link", { name: "Logs", exact: true })).toHaveAttribute("aria-current", "page");
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
  await page.screenshot({ path: `screenshots/service-logs-${info.project.name}.png`, fullPage: true });

  // A secret: set from the Environment tab, listed masked, revealed after a confirmation.
  await page.getByRole("link", { name: "Environment", exact: true }).click();
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
  await page.screenshot({ path: `screenshots/service-environment-${info.project.name}.png`, fullPage: true });

  // A custom domain: added from the Domains tab, with the DNS record that proves control.
  await page.getByRole("link", { name: "Domains", exact: true }).click();
  await page.getByLabel("Hostname").fill(`${project}.example.com`);
  await page.getByRole("button", { name: "Add domain" }).click();
  const domains = page.getByTestId("domains");
  await expect(domains).toContainText(`_enclii-challenge.${project}.example.com  TXT  "enclii-verify=`);
  await expect(domains).toContainText("not verified");
  await page.screenshot({ path: `screenshots/service-domains-${info.project.name}.png`, fullPage: true });

  // The overview's charts come from Prometheus (scraping the simulated pods), drawn on the server
  // as SVG. A new service's first point comes with the first minute boundary after two scrapes:
  // reload until it is there.
  const charts = page.getByTestId("charts");
  await expect(async () => {
    await page.goto(`/projects/${project}/services/web`);
    await expect(charts.getByRole("img", { name: /Requests over the last hour: now \d/ })).toBeVisible({ timeout: 2000 });
  }).toPass({ timeout: 100000, intervals: [5000] });
  await expect(charts.getByRole("img", { name: /Latency p95 over the last hour/ })).toBeVisible();
});

test("a spec is edited in the Spec tab: errors shown at their line, then imported with a diff", async ({ page }, info) => {
  test.setTimeout(60000);
  const project = `spec-${info.project.name}`;
  await signIn(page, project);
  const headers = { authorization: `Bearer ${await apiToken(page)}` };
  expect((await page.request.post("/api/projects/create", { data: { slug: project }, headers })).status()).toBe(200);
  const spec = `apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: api\n  project: ${project}\nspec:\n  build:\n    type: auto\n  runtime:\n    port: 8080\n    replicas: 1\n`;
  expect((await page.request.post("/api/services/import", { data: { spec }, headers })).status()).toBe(200);

  await page.goto(`/projects/${project}/services/api/spec`);
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByTestId("current-spec")).toContainText("replicas: 1");
  const editor = page.getByLabel("Spec YAML");
  await expect(editor).toHaveValue(spec);

  // A mistake on line 10, column 11: shown under that line, nothing imported.
  await editor.fill(spec.replace("port: 8080", "port: lots"));
  await page.getByRole("button", { name: "Validate" }).click();
  const problem = page.getByTestId("checked-spec").getByTestId("diagnostic");
  await expect(problem).toHaveAttribute("data-line", "10");
  await expect(problem).toHaveAttribute("data-col", "11");
  await expect(problem).toContainText("must be a whole number, found `lots`");
  await page.getByRole("button", { name: "Import as a new revision" }).click();
  await expect(page.getByTestId("spec-message")).toContainText("Not imported");
  await page.screenshot({ path: `screenshots/service-spec-error-${info.project.name}.png`, fullPage: true });

  // Fixed and changed: imported as revision 2, whose diff is in the history.
  await editor.fill(spec.replace("replicas: 1", "replicas: 3"));
  await page.getByRole("button", { name: "Validate" }).click();
  await expect(page.getByTestId("spec-message")).toHaveText("The spec is valid.");
  await page.getByRole("button", { name: "Import as a new revision" }).click();
  await expect(page.getByTestId("spec-message")).toHaveText("Imported as revision 2.");
  await expect(page.getByTestId("current-spec")).toContainText("replicas: 3");
  const history = page.getByTestId("revisions");
  await history.getByText(/^Revision 2/).click();
  await expect(history).toContainText("-    replicas: 1");
  await expect(history).toContainText("+    replicas: 3");
  await page.screenshot({ path: `screenshots/service-spec-${info.project.name}.png`, fullPage: true });

  // The other tabs render too (screenshots for the record).
  const tabs = page.getByRole("navigation", { name: "Service sections" });
  for (const tab of ["Deployments", "Builds", "Settings"]) {
    await tabs.getByRole("link", { name: tab, exact: true }).click();
    await expect(tabs.getByRole("link", { name: tab, exact: true })).toHaveAttribute("aria-current", "page");
    await page.screenshot({ path: `screenshots/service-${tab.toLowerCase()}-${info.project.name}.png`, fullPage: true });
  }

  // Members: a teammate who has signed in once is added with a role, on the page the project
  // page links to.
  await page.goto(`/projects/${project}`);
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await page.getByRole("link", { name: /Manage who may deploy/ }).click();
  await expect(page).toHaveURL(new RegExp(`/projects/${project}/members$`));
  const members = page.getByTestId("members");
  await expect(members).toContainText("owner");
  await page.getByLabel("Email").fill("nobody@example.com");
  await page.getByRole("button", { name: "Add member" }).click();
  await expect(page.getByRole("alert")).toContainText("nobody@example.com");
  await page.screenshot({ path: `screenshots/project-members-${info.project.name}.png`, fullPage: true });
});
