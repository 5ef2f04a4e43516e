//! The settings form's values and their checks. The checks mirror the node's own
//! (node/src/config.rs, the schedule rule and relay allow-rule parsers, the update
//! endpoint rule) with the same messages, so a value is refused here for the same
//! reason the node would refuse it; the node still checks everything again when the
//! settings are saved.

import type { Config } from "./bindings/Config";
import type { EgressMode } from "./bindings/EgressMode";

/** The form as typed: text stays text until it is checked. Keys are the config's `section.key`. */
export type Draft = {
  "node.ledger": string;
  "node.key_file": string;
  "lending.idle_minutes": string;
  /** One rule a line. */
  "lending.schedule": string;
  "lending.exclusive_apps": string[];
  "gpu.enabled": boolean;
  "gpu.max_duty_cycle_percent": string;
  "gpu.max_temperature_c": string;
  "gpu.max_job_memory_mb": string;
  "gpu.price_per_million_workgroups": string;
  "bandwidth.enabled": boolean;
  "bandwidth.only_when_away": boolean;
  "bandwidth.upload_kbps": string;
  "bandwidth.download_kbps": string;
  "bandwidth.daily_quota_mb": string;
  "bandwidth.monthly_quota_gb": string;
  "relay.port": string;
  "relay.egress": EgressMode;
  /** One rule a line. */
  "relay.allow": string;
  "relay.price_per_gib": string;
  /** One address a line. */
  "relay.public_addresses": string;
  "updates.check": boolean;
  /** Empty means Spare's release server. */
  "updates.endpoint": string;
};

export type FieldKey = keyof Draft;

/** Reasons a value was refused, by field. */
export type Refusals = Partial<Record<FieldKey, string[]>>;

export function draftOf(config: Config): Draft {
  return {
    "node.ledger": config.node.ledger ?? "",
    "node.key_file": config.node.key_file ?? "",
    "lending.idle_minutes": String(config.lending.idle_minutes),
    "lending.schedule": config.lending.schedule.join("\n"),
    "lending.exclusive_apps": [...config.lending.exclusive_apps],
    "gpu.enabled": config.gpu.enabled,
    "gpu.max_duty_cycle_percent": String(config.gpu.max_duty_cycle_percent),
    "gpu.max_temperature_c": String(config.gpu.max_temperature_c),
    "gpu.max_job_memory_mb": String(config.gpu.max_job_memory_mb),
    "gpu.price_per_million_workgroups": String(config.gpu.price_per_million_workgroups),
    "bandwidth.enabled": config.bandwidth.enabled,
    "bandwidth.only_when_away": config.bandwidth.only_when_away,
    "bandwidth.upload_kbps": String(config.bandwidth.upload_kbps),
    "bandwidth.download_kbps": String(config.bandwidth.download_kbps),
    "bandwidth.daily_quota_mb": String(config.bandwidth.daily_quota_mb),
    "bandwidth.monthly_quota_gb": String(config.bandwidth.monthly_quota_gb),
    "relay.port": String(config.relay.port),
    "relay.egress": config.relay.egress,
    "relay.allow": config.relay.allow.join("\n"),
    "relay.price_per_gib": String(config.relay.price_per_gib),
    "relay.public_addresses": config.relay.public_addresses.join("\n"),
    "updates.check": config.updates.check,
    "updates.endpoint": config.updates.endpoint ?? "",
  };
}

const lines = (text: string) =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");

/** Checks every field; the config when all are good, else every refusal at once. */
export function parseDraft(d: Draft): { config: Config; refusals: null } | { config: null; refusals: Refusals } {
  const refusals: Refusals = {};
  const refuse = (key: FieldKey, why: string) => (refusals[key] ??= []).push(why);
  const whole = (key: FieldKey, lo: number, hi: number, unit: string): number => {
    const text = String(d[key]).trim();
    if (!/^\d+$/.test(text)) {
      refuse(key, text === "" ? `is empty: enter ${lo} to ${hi} ${unit}` : `"${text}" is not a whole number`);
      return lo;
    }
    const value = Number(text);
    if (value < lo || value > hi) refuse(key, `${text} is out of range: allowed ${lo} to ${hi} ${unit}`);
    return value;
  };
  const price = (key: FieldKey) => whole(key, 0, Number.MAX_SAFE_INTEGER, "micro-credits");

  const schedule = lines(d["lending.schedule"]);
  for (const rule of schedule) {
    const why = scheduleRuleProblem(rule);
    if (why) refuse("lending.schedule", why);
  }
  const apps = d["lending.exclusive_apps"];
  if (apps.some((a) => a.trim() === "")) {
    refuse("lending.exclusive_apps", 'has an empty name: list programs by name, e.g. "eldenring.exe"');
  }
  const allow = lines(d["relay.allow"]);
  for (const rule of allow) {
    const why = allowRuleProblem(rule);
    if (why) refuse("relay.allow", why);
  }
  if (d["relay.egress"] === "allowlist" && allow.length === 0) {
    refuse("relay.egress", 'is "allowlist" but the allow-list is empty: add destinations, or choose peer relay only');
  }
  const addresses = lines(d["relay.public_addresses"]);
  for (const address of addresses) {
    if (!isSocketAddress(address)) {
      refuse("relay.public_addresses", `"${address}" is not an address: use ip:port, e.g. "203.0.113.7:4433"`);
    }
  }
  const endpoint = d["updates.endpoint"].trim() || null;
  const endpointWhy = endpoint === null ? null : endpointProblem(endpoint);
  if (endpointWhy) refuse("updates.endpoint", endpointWhy);

  const config: Config = {
    node: {
      ledger: d["node.ledger"].trim() || null,
      key_file: d["node.key_file"].trim() || null,
    },
    lending: {
      idle_minutes: whole("lending.idle_minutes", 1, 1440, "minutes"),
      schedule,
      exclusive_apps: apps.map((a) => a.trim()),
    },
    gpu: {
      enabled: d["gpu.enabled"],
      max_duty_cycle_percent: whole("gpu.max_duty_cycle_percent", 1, 100, "percent"),
      max_temperature_c: whole("gpu.max_temperature_c", 50, 100, "°C"),
      max_job_memory_mb: whole("gpu.max_job_memory_mb", 1, 4096, "MB"),
      price_per_million_workgroups: price("gpu.price_per_million_workgroups"),
    },
    bandwidth: {
      enabled: d["bandwidth.enabled"],
      only_when_away: d["bandwidth.only_when_away"],
      upload_kbps: whole("bandwidth.upload_kbps", 0, 100_000_000, "kbit/s (0 = no cap)"),
      download_kbps: whole("bandwidth.download_kbps", 0, 100_000_000, "kbit/s (0 = no cap)"),
      daily_quota_mb: whole("bandwidth.daily_quota_mb", 0, 100_000_000, "MB (0 = no quota)"),
      monthly_quota_gb: whole("bandwidth.monthly_quota_gb", 0, 1_000_000, "GB (0 = no quota)"),
    },
    relay: {
      port: whole("relay.port", 1, 65535, ""),
      egress: d["relay.egress"],
      allow,
      price_per_gib: price("relay.price_per_gib"),
      public_addresses: addresses,
    },
    updates: { check: d["updates.check"], endpoint },
  };
  return Object.keys(refusals).length === 0 ? { config, refusals: null } : { config: null, refusals };
}

// Schedule rules, as signals/src/schedule.rs reads them.

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const SCHEDULE_EXAMPLE = 'e.g. "Mon-Fri 22:00-07:00", "Sat,Sun" or "daily 01:00-06:30"';

/** Why `rule` is not a schedule rule, or null when it is one. */
export function scheduleRuleProblem(rule: string): string | null {
  const words = rule.split(/\s+/).filter((w) => w !== "");
  if (words.length === 0) return `a schedule rule is empty; write days and hours, ${SCHEDULE_EXAMPLE}`;
  const [daysWord, timeWord, extra] = words;
  if (extra !== undefined) {
    return `"${rule}": unexpected "${extra}" (a rule is days, then optionally one time range, with no spaces inside either; ${SCHEDULE_EXAMPLE})`;
  }
  if (daysWord.includes(":")) {
    return `"${rule}": a rule starts with its days ("daily ${daysWord}" for every day; ${SCHEDULE_EXAMPLE})`;
  }
  const why = daysProblem(daysWord) ?? (timeWord === undefined ? null : timeRangeProblem(timeWord));
  return why && `"${rule}": ${why}; ${SCHEDULE_EXAMPLE}`;
}

function isDay(word: string): boolean {
  const w = word.toLowerCase();
  return DAYS.includes(w) || FULL_DAYS.includes(w);
}

function daysProblem(word: string): string | null {
  if (word.toLowerCase() === "daily") return null;
  for (const item of word.split(",")) {
    if (item === "") return `the day list "${word}" has an empty entry`;
    const ends = item.includes("-") ? item.split(/-(.*)/s, 2) : [item];
    for (const day of ends) {
      if (!isDay(day)) return `"${day}" is not a day (days are Mon, Tue, Wed, Thu, Fri, Sat, Sun)`;
    }
  }
  return null;
}

function timeProblem(word: string, isEnd: boolean): [string | null, number] {
  const bad = `"${word}" is not a time (write HH:MM, 00:00 to 24:00)`;
  const match = /^(\d{1,2}):(\d{2})$/.exec(word);
  if (!match) return [bad, 0];
  const hours = Number(match[1]);
  const minutes = Number(match[2]);
  if (minutes > 59) return [`"${word}": minutes go up to 59`, 0];
  if (hours <= 23) return [null, hours * 60 + minutes];
  if (hours === 24 && minutes === 0) {
    return isEnd ? [null, 24 * 60] : [`"${word}" can only end a range; start at 00:00`, 0];
  }
  return [`"${word}": hours go up to 23 (24:00 may end a range)`, 0];
}

function timeRangeProblem(word: string): string | null {
  const dash = word.indexOf("-");
  if (dash < 0) return `"${word}" is not a time range (write HH:MM-HH:MM)`;
  const [startWhy, start] = timeProblem(word.slice(0, dash), false);
  if (startWhy) return startWhy;
  const [endWhy, end] = timeProblem(word.slice(dash + 1), true);
  if (endWhy) return endWhy;
  if (start === end) {
    return `"${word}" starts and ends at the same time (leave the hours out for the whole day)`;
  }
  return null;
}

// Relay allow rules, as relay/src/policy.rs reads them: host:ports.

function hostKind(text: string): "name" | "ip" | null {
  const host = (text.endsWith(".") ? text.slice(0, -1) : text).toLowerCase();
  if (host === "" || host.length > 253) return null;
  const labels = host.split(".");
  const last = labels[labels.length - 1];
  if (/^\d+$/.test(last) || host.startsWith("0x")) return isIpv4(host) ? "ip" : null;
  const labelOk = (l: string) => l.length >= 1 && l.length <= 63 && /^[a-z0-9-]+$/.test(l) && !l.startsWith("-") && !l.endsWith("-");
  return labels.every(labelOk) ? "name" : null;
}

/** Why `rule` is not an allow-list rule, or null when it is one. */
export function allowRuleProblem(rule: string): string | null {
  const colon = rule.lastIndexOf(":");
  if (colon < 0) return `"${rule}": expected host:ports, e.g. example.com:443`;
  const host = rule.slice(0, colon);
  const ports = rule.slice(colon + 1);
  if (host.startsWith("*.")) {
    if (hostKind(host.slice(2)) !== "name") return `"${rule}": "${host.slice(2)}" is not a host name`;
  } else if (hostKind(host) !== "name") {
    return `"${rule}": allow-list entries name hosts, not addresses`;
  }
  for (const part of ports.split(",")) {
    const dash = part.indexOf("-");
    const [lo, hi] = dash < 0 ? [part, part] : [part.slice(0, dash), part.slice(dash + 1)];
    const port = (p: string) => {
      const t = p.trim();
      const n = /^\d{1,5}$/.test(t) ? Number(t) : 0;
      return n >= 1 && n <= 65535 ? n : null;
    };
    const [low, high] = [port(lo), port(hi)];
    if (low === null) return `"${rule}": "${lo}" is not a port (1 to 65535)`;
    if (high === null) return `"${rule}": "${hi}" is not a port (1 to 65535)`;
    if (low > high) return `"${rule}": port range ${low}-${high} is backwards`;
  }
  return null;
}

// Update endpoints, as node/src/config.rs's endpoint_problem reads them.

const ENDPOINT_EXAMPLE = 'give a URL like "https://example.org/spare/latest.json"';

/**
 * Why `endpoint` cannot be an update manifest's address, or null when it can: an
 * `https://` URL, or `http://` to this machine only (a local mirror or a test).
 */
export function endpointProblem(endpoint: string): string | null {
  const sep = endpoint.indexOf("://");
  if (sep < 0) return `"${endpoint}" is not a URL: ${ENDPOINT_EXAMPLE}`;
  const scheme = endpoint.slice(0, sep);
  const authority = endpoint.slice(sep + 3).split(/[/?#]/)[0];
  const hostPort = authority.slice(authority.lastIndexOf("@") + 1);
  const host = hostPort.startsWith("[") ? hostPort.slice(1).split("]")[0] : hostPort.split(":")[0];
  if (host === "") return `"${endpoint}" names no host: ${ENDPOINT_EXAMPLE}`;
  if (scheme === "https") return null;
  if (scheme === "http") {
    return isLoopback(host) ? null : `"${endpoint}" is plain http: use https (plain http is allowed only to this machine)`;
  }
  return `"${endpoint}" is not an https URL: ${ENDPOINT_EXAMPLE}`;
}

/** `localhost`, 127.x.x.x or ::1 (in any of its spellings), as Rust's IpAddr::is_loopback says. */
function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIpv4(host)) return host.startsWith("127.");
  if (!host.includes(":")) return false;
  try {
    // The URL parser writes an IPv6 address in its shortest form.
    return new URL(`http://[${host}]/`).hostname === "[::1]";
  } catch {
    return false;
  }
}

function isIpv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

/** `203.0.113.7:4433` or `[2001:db8::1]:4433`, as Rust's SocketAddr parses them. */
export function isSocketAddress(text: string): boolean {
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text);
  if (v6) {
    if (Number(v6[2]) > 65535) return false;
    try {
      return new URL(`http://[${v6[1]}]/`).hostname !== "";
    } catch {
      return false;
    }
  }
  const v4 = /^([\d.]+):(\d{1,5})$/.exec(text);
  return v4 !== null && isIpv4(v4[1]) && Number(v4[2]) <= 65535;
}
