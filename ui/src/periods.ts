//! Local calendar dates as the ledger's reports name them (YYYY-MM-DD), and their labels.

import type { Period } from "./bindings/Period";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** "Mar 3", "week of Mar 3", "Mar 2025". */
export function periodLabel(period: Period, start: string): string {
  const [year, month, day] = start.split("-").map(Number);
  const name = MONTHS[month - 1] ?? "?";
  switch (period) {
    case "day":
      return `${name} ${day}`;
    case "week":
      return `week of ${name} ${day}`;
    case "month":
      return `${name} ${year}`;
  }
}

/** A short label for a chart's axis: "3/3", "3/3", "Mar". */
export function axisLabel(period: Period, start: string): string {
  const [, month, day] = start.split("-").map(Number);
  return period === "month" ? MONTHS[month - 1] ?? "?" : `${month}/${day}`;
}

/** The local date `days` before `today`, as YYYY-MM-DD. */
export function localDateDaysBefore(today: Date, days: number): string {
  const d = new Date(today.getFullYear(), today.getMonth(), today.getDate() - days);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** How far back each view reaches: a month of days, a quarter of weeks, every month. */
export function sinceFor(period: Period, today: Date): string | null {
  switch (period) {
    case "day":
      return localDateDaysBefore(today, 30);
    case "week":
      return localDateDaysBefore(today, 7 * 12);
    case "month":
      return null;
  }
}
