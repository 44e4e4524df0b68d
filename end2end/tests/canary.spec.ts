import { expect, test, type APIRequestContext } from "@playwright/test";
import { apiToken, signIn } from "./helpers";

// Canary rollouts on the local cluster (traffic from the simulated pods, measured by Prometheus), watched live: the page is loaded once while the canary runs and
// every later state arrives by server-sent events (no reloads).

async function deploy(request: APIRequestContext, headers: Record<string, string>, project: string, image: string) {
  const res = await request.post("/api/deployments/create", {
    data: { project, service: "web", environment: "production", image },
    headers,
  });
  expect(res.status()).toBe(200);
  return (await res.json()).id as number;
}

async function waitEnded(request: APIRequestContext, headers: Record<string, string>, project: string, id: number) {
  await expect(async () => {
    const res = await request.post("/api/deployments/get", { data: { project, id }, headers });
    const d = await res.json();
    expect(["pending", "in_progress"]).not.toContain(d.deployment.state);
  }).toPass({ timeout: 30000 });
}

test("a canary progresses 10 → 50 → 100 live, and a failing one rolls back", async ({ page }, info) => {
  test.setTimeout(120000);
  await signIn(page, `canary-${info.project.name}`);
  const headers = { authorization: `Bearer ${await apiToken(page)}` };
  const project = `canary-${info.project.name}`;
  expect((await page.request.post("/api/projects/create", { data: { slug: project }, headers })).status()).toBe(200);
  const spec =
    `apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: web\n  project: ${project}\nspec:\n` +
    `  build:\n    type: auto\n  runtime:\n    port: 8080\n    replicas: 2\n` +
    `  rollout:\n    minRequests: 20\n    steps:\n      - weight: 10\n        pause: 2s\n      - weight: 50\n        pause: 2s\n      - weight: 100\n`;
  const imported = await page.request.post("/api/services/import", { data: { spec }, headers });
  expect(imported.status(), await imported.text()).toBe(200);
  await waitEnded(page.request, headers, project, await deploy(page.request, headers, project, "ghcr.io/example/web:1"));

  // A healthy release: watched from the start to 100%.
  const good = await deploy(page.request, headers, project, "ghcr.io/example/web:2");
  await page.goto(`/projects/${project}/deployments/${good}`);
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByTestId("deployment-state")).toHaveText(/pending|in_progress/);
  await expect(page.getByRole("button", { name: "Abort canary" })).toBeVisible();
  await expect(page.getByTestId("stage-10")).toHaveAttribute("data-state", "succeeded", { timeout: 30000 });
  await expect(page.getByTestId("stage-10")).toContainText("% errors in");
  await expect(page.getByTestId("stage-50")).toHaveAttribute("data-state", /running|succeeded/, { timeout: 30000 });
  await expect(page.getByTestId("deployment-state")).toHaveText("succeeded", { timeout: 30000 });
  await expect(page.getByTestId("stage-100")).toHaveAttribute("data-state", "succeeded");
  await expect(page.getByRole("button", { name: "Abort canary" })).toBeHidden();
  await page.screenshot({ path: `screenshots/canary-promoted-${info.project.name}.png`, fullPage: true });

  // A release that fails 8% of requests: rolled back at 10%, with the measurement on screen. Held
  // at 10% until a breach ends it: its first few requests may all have succeeded.
  const held = spec.replace("pause: 2s", "pause: 1h");
  expect((await page.request.post("/api/services/import", { data: { spec: held }, headers })).status()).toBe(200);
  const bad = await deploy(page.request, headers, project, "ghcr.io/example/web:errors");
  await page.goto(`/projects/${project}/deployments/${bad}`);
  await expect(page.getByTestId("deployment-state")).toHaveText("rolled_back", { timeout: 30000 });
  await expect(page.getByTestId("stage-10")).toHaveAttribute("data-state", "failed");
  await expect(page.getByTestId("stage-100")).toHaveAttribute("data-state", "skipped");
  await expect(page.getByTestId("deployment-reason")).toContainText("exceeded 2% at 10% of traffic");
  await expect(page.getByTestId("analyses")).toContainText("breach");
  await page.screenshot({ path: `screenshots/canary-rolled-back-${info.project.name}.png`, fullPage: true });

  // The history links to each deployment.
  await page.goto("/deployments");
  await page.getByRole("link", { name: `#${bad}` }).click();
  await expect(page).toHaveURL(new RegExp(`/projects/${project}/deployments/${bad}$`));
});

test("a canary can be aborted from the dashboard, after a confirmation", async ({ page }, info) => {
  test.setTimeout(90000);
  await signIn(page, `abort-${info.project.name}`);
  const headers = { authorization: `Bearer ${await apiToken(page)}` };
  const project = `abort-${info.project.name}`;
  expect((await page.request.post("/api/projects/create", { data: { slug: project }, headers })).status()).toBe(200);
  const spec =
    `apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: web\n  project: ${project}\nspec:\n` +
    `  build:\n    type: auto\n  runtime:\n    port: 8080\n` +
    `  rollout:\n    steps:\n      - weight: 10\n        pause: 1h\n      - weight: 100\n`;
  expect((await page.request.post("/api/services/import", { data: { spec }, headers })).status()).toBe(200);
  await waitEnded(page.request, headers, project, await deploy(page.request, headers, project, "ghcr.io/example/web:1"));
  const id = await deploy(page.request, headers, project, "ghcr.io/example/web:2");
  await page.goto(`/projects/${project}/deployments/${id}`);
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByTestId("stage-10")).toHaveAttribute("data-state", "running", { timeout: 30000 });
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Abort canary" }).click();
  await expect(page.getByTestId("deployment-state")).toHaveText("aborted", { timeout: 30000 });
  await expect(page.getByTestId("deployment-reason")).toContainText("aborted by hand");
});
