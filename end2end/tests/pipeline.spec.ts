import { createHmac } from "node:crypto";
import { expect, test } from "@playwright/test";
import { apiToken, signIn } from "./helpers";

// Push to deploy, seen from the dashboard: a signed GitHub delivery, its outcome on the project
// page, the build and its log on the service page.

test("a GitHub push shows as a delivery, builds with a live log, and deploys", async ({ page }, info) => {
  test.setTimeout(90000);
  await signIn(page, `push-${info.project.name}`);
  const headers = { authorization: `Bearer ${await apiToken(page)}` };
  const project = `push-${info.project.name}`;
  const repo = `https://github.com/example/${project}`;
  expect((await page.request.post("/api/projects/create", { data: { slug: project }, headers })).status()).toBe(200);
  const spec =
    `apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: web\n  project: ${project}\nspec:\n` +
    `  build:\n    type: dockerfile\n    source:\n      git:\n        repository: ${repo}\n        branch: main\n        autoDeploy: true\n` +
    `  runtime:\n    port: 8080\n`;
  expect((await page.request.post("/api/services/import", { data: { spec }, headers })).status()).toBe(200);
  const connected = await page.request.post("/api/repositories/connect", { data: { project, url: repo }, headers });
  expect(connected.status()).toBe(200);
  const secret = (await connected.json()).secret as string;

  const body = JSON.stringify({
    ref: "refs/heads/main", after: "feedface".repeat(5), deleted: false,
    repository: { html_url: repo },
    commits: [{ added: [], modified: ["src/main.rs"], removed: [] }],
  });
  const signature = "sha256=" + createHmac("sha256", secret).update(body).digest("hex");
  const hook = (id: string, sig: string) =>
    page.request.post("/webhooks/github", {
      data: body,
      headers: { "content-type": "application/json", "x-github-event": "push", "x-github-delivery": id, "x-hub-signature-256": sig },
    });
  expect((await hook(`${project}-1`, signature)).status()).toBe(202);
  expect((await hook(`${project}-2`, "sha256=" + "0".repeat(64))).status()).toBe(401);

  await page.goto(`/projects/${project}`);
  const deliveries = page.getByTestId("deliveries");
  await expect(deliveries).toContainText("accepted");
  await expect(deliveries).toContainText("rejected");
  await expect(deliveries).toContainText("does not match");
  // The build and then the deployment finish in the sandbox; the delivery says so.
  await expect(async () => {
    await page.reload();
    await expect(page.getByTestId("deliveries")).toContainText("build succeeded, deployment #", { timeout: 1000 });
  }).toPass({ timeout: 30000 });
  await page.screenshot({ path: `screenshots/project-${info.project.name}.png`, fullPage: true });

  await page.goto(`/projects/${project}/services/web/builds`);
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByTestId("builds")).toContainText("succeeded");
  // By keyboard: the page is meant to be keyboard-driven.
  await page.getByRole("button", { name: /Build #\d+/ }).first().focus();
  await page.keyboard.press("Enter");
  await expect(page.getByTestId("build-log")).toContainText("generating SBOM and provenance attestations");
  await expect(page.getByTestId("build-log")).toContainText("checked out feedface");

  // A manual build from the page goes through the same pipeline.
  await page.getByRole("button", { name: "Build and deploy to production" }).focus();
  await page.keyboard.press("Enter");
  await expect(page.getByText(/Build #\d+ queued \(main\)/)).toBeVisible();
});
