import { expect, test } from "@playwright/test";
import { apiToken, signIn } from "./helpers";

// The project's Notifications page: a destination is added (its signing secret shown once, its URL
// never again), a test is sent, and its delivery shows in the log with the receiver's answer.

test("an admin adds a webhook destination, sends a test and reads its delivery log", async ({ page, baseURL }, info) => {
  test.setTimeout(120000);
  const project = `notify-${info.project.name}`;
  await signIn(page, project);
  const headers = { authorization: `Bearer ${await apiToken(page)}` };
  expect((await page.request.post("/api/projects/create", { data: { slug: project }, headers })).status()).toBe(200);

  await page.goto(`/projects/${project}`);
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await page.getByRole("link", { name: /Send deployments, rollbacks/ }).click();
  await expect(page).toHaveURL(new RegExp(`/projects/${project}/notifications$`));
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByText("No destinations yet")).toBeVisible();

  // A receiver that refuses POSTs (this server's liveness endpoint answers 405): the delivery is
  // given up at once, and the log says why.
  const secretPath = "/health/live?token=SECRETPART";
  await page.getByLabel("Name").fill("audit-hook");
  await page.getByLabel("Kind").selectOption("webhook");
  await page.getByLabel(/Webhook URL/).fill(`${baseURL}${secretPath}`);
  await page.getByRole("button", { name: "Add destination" }).click();
  await expect(page.getByTestId("signing-secret")).toHaveText(/^whsec_/);
  const table = page.getByTestId("destinations");
  await expect(table).toContainText("audit-hook");
  await expect(table).toContainText("webhook · http://127.0.0.1");
  await expect(table).not.toContainText("SECRETPART");

  await table.getByRole("button", { name: "Send a test" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Test queued" })).toBeVisible();
  await table.getByRole("button", { name: "Delivery log" }).click();
  const log = page.getByTestId("delivery-log");
  await expect(log).toContainText("Test notification for");
  // The log is read when opened: reopen until the delivery has been tried.
  await expect(async () => {
    await page.reload();
    await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
    await page.getByTestId("destinations").getByRole("button", { name: "Delivery log" }).click();
    await expect(page.getByTestId("delivery-log")).toContainText("405", { timeout: 2000 });
  }).toPass({ timeout: 30000 });
  await expect(page.getByTestId("delivery-log")).toContainText("failed");
  await expect(page.getByTestId("delivery-log")).not.toContainText("SECRETPART");
  await page.screenshot({ path: `screenshots/notifications-${info.project.name}.png`, fullPage: true });

  // The secret was shown once: the page, read again, does not have it.
  await page.reload();
  await expect(page.getByTestId("signing-secret")).toHaveCount(0);
});
