//! The net-of-electricity estimate: what the GPU's power cost over the GPU time lent,
//! from a price per kWh and a wattage the owner enters (kept in this browser only).
//! It is an estimate by construction: the wattage is a guess and the ledger does not
//! meter power.

import type { PeriodRow } from "./bindings/PeriodRow";
import { parseCredits } from "./credits";

export type ElectricitySettings = { enabled: boolean; price: string; watts: string };

const KEY = "spare.electricity";
const MS_PER_HOUR = 3_600_000n;
const WATTS_PER_KW = 1_000n;

export function loadElectricity(): ElectricitySettings {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? "null");
    if (saved && typeof saved.price === "string" && typeof saved.watts === "string") {
      return { enabled: Boolean(saved.enabled), price: saved.price, watts: saved.watts };
    }
  } catch {
    // A damaged saved value falls back to the defaults.
  }
  return { enabled: false, price: "0.30", watts: "200" };
}

export function saveElectricity(settings: ElectricitySettings): void {
  localStorage.setItem(KEY, JSON.stringify(settings));
}

export type ParsedElectricity =
  | { ok: true; pricePerKwhMicro: bigint; watts: number }
  | { ok: false; priceError: string | null; wattsError: string | null };

export function parseElectricity(settings: ElectricitySettings): ParsedElectricity {
  const price = parseCredits(settings.price);
  const wattsText = settings.watts.trim();
  const watts = /^\d+$/.test(wattsText) ? Number(wattsText) : NaN;
  const priceError = price === null ? "Enter a price such as 0.30 (up to 6 decimals)." : null;
  const wattsError =
    Number.isInteger(watts) && watts >= 1 && watts <= 2000
      ? null
      : "Enter the GPU's power draw in watts, 1 to 2000.";
  if (price === null || priceError || wattsError) return { ok: false, priceError, wattsError };
  return { ok: true, pricePerKwhMicro: price, watts };
}

/**
 * GPU milliseconds of real (not demo) jobs in a row, when the report carries them.
 * `gpu_ms` is not part of the ledger's PeriodRow yet (receipts count workgroups, not
 * time), so this reads it only if the app adds it.
 */
export function gpuMsOf(row: PeriodRow): number | null {
  const value = (row as PeriodRow & { gpu_ms?: unknown }).gpu_ms;
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : null;
}

/** price (micro-credits per kWh) × watts × hours, rounded to the nearest micro-credit. */
export function electricityCostMicro(gpuMs: number, watts: number, pricePerKwhMicro: bigint): bigint {
  const denominator = MS_PER_HOUR * WATTS_PER_KW;
  const numerator = pricePerKwhMicro * BigInt(watts) * BigInt(gpuMs);
  return (numerator + denominator / 2n) / denominator;
}
