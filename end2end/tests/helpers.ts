import { expect, type Page } from "@playwright/test";

/** Signs in through the Plinto stand-in's real login page, as a person would. */
export async function signIn(page: Page, login: string, startAt = "/") {
  await page.goto(startAt);
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await page.getByTestId("user-menu").click();
  await expect(page.locator('input[name="login"]')).toBeVisible();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password");
  await page.locator('button[type="submit"]').click();
  await expect(page.getByTestId("user-menu")).toContainText(`Test ${login}`);
}

/** Creates an API token on the Settings page (as a person would) and returns its secret. */
export async function apiToken(page: Page): Promise<string> {
  await page.goto("/settings");
  await expect(page.locator("#app")).toHaveAttribute("data-hydrated", "true");
  await page.getByLabel("Name").fill("e2e");
  await page.getByRole("button", { name: "Create token" }).click();
  return (await page.getByTestId("new-token").textContent())!;
}
