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
