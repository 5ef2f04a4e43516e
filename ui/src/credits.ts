//! Money and traffic as people read them. Amounts stay integer micro-credits (BigInt for
//! sums and scaling) so no float ever rounds a credit; floats are used only for byte
//! rates shown to people.

export const MICRO_PER_CREDIT = 1_000_000n;

/** "0.004215 credits": up to 6 decimals, trailing zeros dropped. */
export function formatCredits(micro: number | bigint): string {
  return `${creditsNumber(micro)} credits`;
}

/** The number part of formatCredits: "0.004215", "-1.5", "12". */
export function creditsNumber(micro: number | bigint): string {
  const value = BigInt(micro);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const whole = abs / MICRO_PER_CREDIT;
  const fraction = (abs % MICRO_PER_CREDIT).toString().padStart(6, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

/** Parses "0.25" or "3" (at most 6 decimals, not negative) into micro-credits. */
export function parseCredits(text: string): bigint | null {
  const match = /^(\d+)(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!match) return null;
  const [, whole, fraction = ""] = match;
  return BigInt(whole) * MICRO_PER_CREDIT + BigInt(fraction.padEnd(6, "0"));
}

export function sumMicro(values: Iterable<number | bigint>): bigint {
  let total = 0n;
  for (const v of values) total += BigInt(v);
  return total;
}

const BYTE_UNITS = ["B", "kB", "MB", "GB", "TB"];

/** "1.2 MB", decimal units as network meters use. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < BYTE_UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** "1 h 21 min", "45 s". */
export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
