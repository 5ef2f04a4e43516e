//! The Settings screen: the node's config file as a form. Every value is checked here
//! first (config-form.ts) and again by the node; either refusal is shown next to its
//! field. "Start at login" applies at once; the rest applies on Save. Checking for and
//! installing an update happen on their own buttons, with the saved settings.

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import * as api from "../api";
import type { CommandError } from "../bindings/CommandError";
import type { EgressMode } from "../bindings/EgressMode";
import type { Problem } from "../bindings/Problem";
import type { UpdateCheck } from "../bindings/UpdateCheck";
import { draftOf, parseDraft, type Draft, type FieldKey, type Refusals } from "../config-form";
import { ErrorNotice } from "../error-notice";

const fieldId = (key: FieldKey) => `field-${key.replace(".", "-")}`;

export function SettingsScreen() {
  const [draft, setDraft] = useState<Draft | null>(null);
  const [loadError, setLoadError] = useState<CommandError | null>(null);
  const [refusals, setRefusals] = useState<Refusals>({});
  const [otherProblems, setOtherProblems] = useState<Problem[]>([]);
  const [saveError, setSaveError] = useState<CommandError | null>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api
      .settingsGet()
      .then((config) => setDraft(draftOf(config)))
      .catch((e) => setLoadError(e as CommandError));
  }, []);

  if (loadError) return <ErrorNotice error={loadError} />;
  if (!draft) return <p class="loading">Reading the settings…</p>;

  const set = <K extends FieldKey>(key: K, value: Draft[K]) => {
    setDraft({ ...draft, [key]: value });
    setSaved(false);
  };

  function showRefusals(found: Refusals, others: Problem[]) {
    setRefusals(found);
    setOtherProblems(others);
    const first = Object.keys(found)[0] as FieldKey | undefined;
    if (first) requestAnimationFrame(() => document.getElementById(fieldId(first))?.focus());
  }

  async function save(event: Event) {
    event.preventDefault();
    if (!draft) return;
    setSaved(false);
    setSaveError(null);
    const parsed = parseDraft(draft);
    if (parsed.refusals) {
      showRefusals(parsed.refusals, []);
      return;
    }
    setBusy(true);
    try {
      const config = await api.settingsSet(parsed.config);
      setDraft(draftOf(config));
      showRefusals({}, []);
      setSaved(true);
    } catch (e) {
      const error = e as CommandError;
      if (error.code !== "invalid_settings") {
        // Not about the values: earlier refusals no longer apply.
        showRefusals({}, []);
        setSaveError(error);
        return;
      }
      const found: Refusals = {};
      const others: Problem[] = [];
      for (const problem of error.problems) {
        if (problem.key !== null && problem.key in draft) {
          (found[problem.key as FieldKey] ??= []).push(problem.message);
        } else {
          others.push(problem);
        }
      }
      setSaveError(error);
      showRefusals(found, others);
    } finally {
      setBusy(false);
    }
  }

  const refusedCount = Object.values(refusals).reduce((n, r) => n + (r?.length ?? 0), 0);
  const text = (key: FieldKey, label: string, hint?: string, inputMode?: "numeric") => (
    <TextField
      key={key}
      field={key}
      label={label}
      hint={hint}
      value={String(draft[key])}
      inputMode={inputMode}
      refusals={refusals[key]}
      onInput={(v) => set(key, v as never)}
    />
  );
  const lines = (key: FieldKey, label: string, hint: string) => (
    <LinesField
      field={key}
      label={label}
      hint={hint}
      value={String(draft[key])}
      refusals={refusals[key]}
      onInput={(v) => set(key, v as never)}
    />
  );
  const check = (key: FieldKey, label: string, hint?: string) => (
    <>
      <label class="check">
        <input
          type="checkbox"
          id={fieldId(key)}
          checked={Boolean(draft[key])}
          aria-describedby={describedBy(key, hint)}
          onChange={(e) => set(key, e.currentTarget.checked as never)}
        />
        {label}
      </label>
      {hint && (
        <p class="hint" id={`${fieldId(key)}-hint`}>
          {hint}
        </p>
      )}
    </>
  );

  return (
    <section aria-labelledby="settings-heading">
      <h2 id="settings-heading">Settings</h2>
      <StartAtLogin />
      <form onSubmit={save} noValidate>
        <Group legend="When to lend">
          {text("lending.idle_minutes", "Start lending after this many minutes without keyboard or mouse input", "1 to 1440", "numeric")}
          {lines(
            "lending.schedule",
            "Lend only at these times (one rule a line; empty means any time)",
            'Days, then an optional time range: "Mon-Fri 22:00-07:00", "Sat,Sun", "daily 01:00-06:30".',
          )}
          <ExclusiveApps
            apps={draft["lending.exclusive_apps"]}
            refusals={refusals["lending.exclusive_apps"]}
            onChange={(apps) => set("lending.exclusive_apps", apps)}
          />
        </Group>
        <Group legend="GPU">
          {check("gpu.enabled", "Lend my GPU")}
          {text("gpu.max_duty_cycle_percent", "Most of the GPU's time lending may use, in percent", "1 to 100", "numeric")}
          {text("gpu.max_temperature_c", "Stop above this GPU temperature, in °C", "50 to 100", "numeric")}
          {text("gpu.max_job_memory_mb", "Most memory one job may use, in MB", "1 to 4096", "numeric")}
          {text("gpu.price_per_million_workgroups", "Price for GPU jobs, in micro-credits per million workgroups", "0 = free; 1,000,000 micro-credits = 1 credit", "numeric")}
        </Group>
        <Group legend="Bandwidth">
          {check("bandwidth.enabled", "Lend my bandwidth")}
          {check("bandwidth.only_when_away", "Only while I am away (like the GPU)")}
          {text("bandwidth.upload_kbps", "Upload cap, in kbit/s", "0 = no cap", "numeric")}
          {text("bandwidth.download_kbps", "Download cap, in kbit/s", "0 = no cap", "numeric")}
          {text("bandwidth.daily_quota_mb", "Daily quota, up and down together, in MB", "0 = no quota", "numeric")}
          {text("bandwidth.monthly_quota_gb", "Monthly quota, in GB", "0 = no quota", "numeric")}
        </Group>
        <Group legend="Relay">
          <EgressChoice
            value={draft["relay.egress"]}
            refusals={refusals["relay.egress"]}
            onChange={(mode) => set("relay.egress", mode)}
          />
          {lines("relay.allow", "Allowed destinations (one a line, host:ports)", 'e.g. "example.com:443", "*.example.org:80,443", "mirror.example.net:8000-8100".')}
          {text("relay.port", "UDP port the relay listens on", "1 to 65535", "numeric")}
          {text("relay.price_per_gib", "Price for relaying, in micro-credits per GiB", "0 = free", "numeric")}
          {lines("relay.public_addresses", "Addresses to put in this node's ticket (one a line, ip:port)", "Empty: this computer's own addresses.")}
        </Group>
        <Group legend="Updates">
          {check(
            "updates.check",
            "Check for updates automatically",
            "Spare checks when it starts and once a day, and tells you when a newer version is out. Nothing is installed until you click Install; only updates signed with Spare's release key install.",
          )}
          {text(
            "updates.endpoint",
            "Update server (optional)",
            'Empty: Spare\'s release server. For a mirror, its https address, e.g. "https://example.org/spare/latest.json"; plain http only to this computer.',
          )}
          <CheckForUpdates />
        </Group>
        <details class="card">
          <summary>Advanced</summary>
          {text("node.ledger", "Ledger file", "Empty: the default in Spare's data folder.")}
          {text("node.key_file", "Node key file instead of the system keyring", "Only for machines without a keyring.")}
        </details>
        <div class="save-bar">
          <button type="submit" class="primary" disabled={busy}>
            Save settings
          </button>
          <span role="status" data-testid="save-status">
            {saved ? "Saved. The node uses the new settings now." : refusedCount > 0 ? `${refusedCount} ${refusedCount === 1 ? "value was" : "values were"} refused; the reasons are next to the fields.` : ""}
          </span>
        </div>
        {saveError && saveError.code !== "invalid_settings" && <ErrorNotice error={saveError} />}
        {otherProblems.length > 0 && (
          <ul class="notice notice-error" role="alert" data-testid="other-problems">
            {otherProblems.map((p) => (
              <li>
                {p.key ? `${p.key}: ` : ""}
                {p.message}
              </li>
            ))}
          </ul>
        )}
      </form>
    </section>
  );
}

function Group({ legend, children }: { legend: string; children: ComponentChildren }) {
  return (
    <fieldset class="card">
      <legend>{legend}</legend>
      {children}
    </fieldset>
  );
}

function Refused({ field, refusals }: { field: FieldKey; refusals?: string[] }) {
  if (!refusals || refusals.length === 0) return null;
  return (
    <ul class="field-error" id={`${fieldId(field)}-error`} data-field={field}>
      {refusals.map((why) => (
        <li>{why}</li>
      ))}
    </ul>
  );
}

function describedBy(field: FieldKey, hint: string | undefined, refusals?: string[]) {
  const ids = [hint ? `${fieldId(field)}-hint` : "", refusals?.length ? `${fieldId(field)}-error` : ""];
  return ids.filter(Boolean).join(" ") || undefined;
}

type TextProps = {
  field: FieldKey;
  label: string;
  hint?: string;
  value: string;
  inputMode?: "numeric";
  refusals?: string[];
  onInput: (value: string) => void;
};

function TextField({ field, label, hint, value, inputMode, refusals, onInput }: TextProps) {
  const id = fieldId(field);
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input
        id={id}
        name={field}
        value={value}
        inputMode={inputMode}
        aria-invalid={refusals?.length ? "true" : undefined}
        aria-describedby={describedBy(field, hint, refusals)}
        onInput={(e) => onInput(e.currentTarget.value)}
      />
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      <Refused field={field} refusals={refusals} />
    </div>
  );
}

function LinesField({ field, label, hint, value, refusals, onInput }: TextProps & { hint: string }) {
  const id = fieldId(field);
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <textarea
        id={id}
        name={field}
        rows={3}
        value={value}
        spellcheck={false}
        aria-invalid={refusals?.length ? "true" : undefined}
        aria-describedby={describedBy(field, hint, refusals)}
        onInput={(e) => onInput(e.currentTarget.value)}
      />
      <p class="hint" id={`${id}-hint`}>
        {hint}
      </p>
      <Refused field={field} refusals={refusals} />
    </div>
  );
}

const EGRESS: { mode: EgressMode; label: string; detail: string }[] = [
  {
    mode: "off",
    label: "Peer relay only",
    detail: "Clients reach each other through this computer; it never connects to the internet for them.",
  },
  {
    mode: "allowlist",
    label: "Egress to an allow-list",
    detail: "Clients may reach only the destinations you list below.",
  },
  {
    mode: "open",
    label: "Open egress",
    detail: "Clients may reach any public destination through your connection.",
  },
];

function EgressChoice({
  value,
  refusals,
  onChange,
}: {
  value: EgressMode;
  refusals?: string[];
  onChange: (mode: EgressMode) => void;
}) {
  const field: FieldKey = "relay.egress";
  return (
    <div
      class="field"
      role="radiogroup"
      aria-labelledby="egress-label"
      aria-describedby={describedBy(field, undefined, refusals)}
      id={fieldId(field)}
      tabIndex={-1}
    >
      <p id="egress-label" class="label">
        Where the relay may send clients' traffic
      </p>
      {EGRESS.map(({ mode, label, detail }) => (
        <label class="radio">
          <input
            type="radio"
            name="egress"
            value={mode}
            checked={value === mode}
            onChange={() => onChange(mode)}
          />
          <span>
            <strong>{label}</strong> — {detail}
          </span>
        </label>
      ))}
      {value === "open" && (
        <p class="notice notice-warning" role="note" data-testid="open-egress-warning">
          <strong>Think twice.</strong> With open egress your IP address becomes your clients'
          on the internet: whatever they do — downloads, posts, attacks — is seen as coming
          from you. Sites may block your address and complaints or legal notices reach you.
          The allow-list is the safe choice.
        </p>
      )}
      <Refused field={field} refusals={refusals} />
    </div>
  );
}

function ExclusiveApps({
  apps,
  refusals,
  onChange,
}: {
  apps: string[];
  refusals?: string[];
  onChange: (apps: string[]) => void;
}) {
  const field: FieldKey = "lending.exclusive_apps";
  const id = fieldId(field);
  const [name, setName] = useState("");
  const [addError, setAddError] = useState<string | null>(null);
  const [running, setRunning] = useState<string[] | null>(null);
  const [picked, setPicked] = useState("");
  const [pickError, setPickError] = useState<CommandError | null>(null);

  function add(candidate: string) {
    const trimmed = candidate.trim();
    if (trimmed === "") {
      setAddError('Enter a program name, e.g. "eldenring.exe".');
      return;
    }
    if (apps.some((a) => a.toLowerCase() === trimmed.toLowerCase())) {
      setAddError(`"${trimmed}" is already listed.`);
      return;
    }
    setAddError(null);
    setName("");
    onChange([...apps, trimmed]);
  }

  async function loadRunning() {
    setPickError(null);
    try {
      const names = [...new Set(await api.runningProcesses())].sort((a, b) => a.localeCompare(b));
      setRunning(names);
      setPicked(names[0] ?? "");
    } catch (e) {
      setPickError(e as CommandError);
    }
  }

  const shownRefusals = [...(refusals ?? []), ...(addError ? [addError] : [])];
  return (
    <div class="field">
      <p class="label" id={`${id}-label`}>
        Programs that pause GPU lending while they run
      </p>
      {apps.length === 0 ? (
        <p class="muted">None listed. Games from Steam, Epic or GOG pause lending anyway.</p>
      ) : (
        <ul class="chips" aria-labelledby={`${id}-label`} data-testid="exclusive-apps">
          {apps.map((app) => (
            <li>
              {app}
              <button
                type="button"
                class="link"
                aria-label={`Remove ${app}`}
                onClick={() => onChange(apps.filter((a) => a !== app))}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      <div class="inline">
        <label for={id} class="visually-hidden">
          Program name to add
        </label>
        <input
          id={id}
          value={name}
          placeholder="eldenring.exe"
          aria-invalid={shownRefusals.length ? "true" : undefined}
          aria-describedby={shownRefusals.length ? `${id}-error` : undefined}
          onInput={(e) => setName(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter") {
              e.preventDefault();
              add(name);
            }
          }}
        />
        <button type="button" onClick={() => add(name)}>
          Add
        </button>
        <button type="button" onClick={loadRunning}>
          Choose from running programs…
        </button>
      </div>
      {pickError && <ErrorNotice error={pickError} />}
      {running && (
        <div class="inline picker">
          <label for="running-programs">Running programs</label>
          <select id="running-programs" value={picked} onChange={(e) => setPicked(e.currentTarget.value)}>
            {running.map((p) => (
              <option value={p}>{p}</option>
            ))}
          </select>
          <button type="button" onClick={() => add(picked)}>
            Add selected
          </button>
        </div>
      )}
      <Refused field={field} refusals={shownRefusals} />
    </div>
  );
}

function StartAtLogin() {
  const [enabled, setEnabled] = useState<boolean | null>(null);
  const [error, setError] = useState<CommandError | null>(null);

  useEffect(() => {
    api
      .autostartGet()
      .then(setEnabled)
      .catch((e) => setError(e as CommandError));
  }, []);

  async function change(want: boolean) {
    setError(null);
    try {
      setEnabled(await api.autostartSet(want));
    } catch (e) {
      setError(e as CommandError);
    }
  }

  return (
    <div class="card">
      <label class="check">
        <input
          type="checkbox"
          id="start-at-login"
          checked={enabled === true}
          disabled={enabled === null}
          onChange={(e) => change(e.currentTarget.checked)}
        />
        Start Spare when I log in
      </label>
      {error && <ErrorNotice error={error} />}
    </div>
  );
}

/** "Check now", what it found, and "Install and restart". Uses the saved settings. */
function CheckForUpdates() {
  const [checking, setChecking] = useState(false);
  const [found, setFound] = useState<UpdateCheck | null>(null);
  const [install, setInstall] = useState<"ready" | "installing" | "installed">("ready");
  const [error, setError] = useState<CommandError | null>(null);

  async function runCheck() {
    setChecking(true);
    setFound(null);
    setError(null);
    try {
      setFound(await api.updateCheck());
    } catch (e) {
      setError(e as CommandError);
    } finally {
      setChecking(false);
    }
  }

  async function runInstall() {
    setInstall("installing");
    setError(null);
    try {
      await api.updateInstall();
      setInstall("installed");
    } catch (e) {
      // Nothing was installed: the same update may be tried again.
      setInstall("ready");
      setError(e as CommandError);
    }
  }

  const update = found?.available ?? null;
  const busy = checking || install !== "ready";
  return (
    <div class="field update-check">
      <div class="inline">
        <button type="button" id="update-check" onClick={runCheck} disabled={busy}>
          Check now
        </button>
        <span class="hint">Uses the saved update server, even with automatic checks off.</span>
      </div>
      {/* What was found, notes included, is read out as one; the install controls are not. */}
      <div id="update-result" role="status">
        {checking && <p>Checking…</p>}
        {found && <p>{foundLine(found)}</p>}
        {update?.notes && (
          <div
            class="release-notes"
            id="update-notes"
            role="region"
            aria-label={`Release notes for Spare ${update.version}`}
            tabIndex={0}
          >
            {update.notes}
          </div>
        )}
      </div>
      {update && (
        <div class="inline">
          <button type="button" class="primary" id="update-install" onClick={runInstall} disabled={busy}>
            Install and restart
          </button>
          <span role="status" id="update-install-status">
            {install === "installing"
              ? `Downloading and installing Spare ${update.version}…`
              : install === "installed"
                ? "Installed: Spare is restarting."
                : ""}
          </span>
        </div>
      )}
      {error && <ErrorNotice error={error} />}
    </div>
  );
}

function foundLine({ current, available }: UpdateCheck): string {
  if (!available) return `Spare ${current} is the newest version.`;
  const line = `Spare ${available.version} is available (you have ${current}).`;
  const published = available.published ? new Date(available.published) : null;
  if (!published || Number.isNaN(published.getTime())) return line;
  const day = published.toLocaleDateString(undefined, { day: "numeric", month: "long", year: "numeric" });
  return `${line} Published ${day}.`;
}
