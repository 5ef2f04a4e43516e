//! The Status screen: each resource's state and reason in plain words, live meters,
//! pause and resume, and "why am I not earning?" with the node's diagnostics.

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import * as api from "../api";
import type { BandwidthStatus } from "../bindings/BandwidthStatus";
import type { Check } from "../bindings/Check";
import type { CommandError } from "../bindings/CommandError";
import type { GpuStatus } from "../bindings/GpuStatus";
import type { JobProgress } from "../bindings/JobProgress";
import type { PauseFor } from "../bindings/PauseFor";
import type { PauseTarget } from "../bindings/PauseTarget";
import type { ResourceState } from "../bindings/ResourceState";
import type { SignalsStatus } from "../bindings/SignalsStatus";
import { formatCredits, formatRate } from "../credits";
import { ErrorNotice } from "../error-notice";
import { liveStatus, nodeStarting, showStatus, statusError } from "../live-status";

const STATE_WORDS: Record<ResourceState["state"], string> = {
  lending: "Lending",
  waiting: "Waiting",
  paused: "Paused",
};

const PAUSES: { label: string; until: PauseFor }[] = [
  { label: "1 hour", until: { seconds: 3600 } },
  { label: "Until tomorrow", until: "tomorrow" },
  { label: "Until I resume", until: "until_resumed" },
];

const TARGET_WORDS: Record<PauseTarget, string> = {
  gpu: "GPU",
  bandwidth: "bandwidth",
  all: "everything",
};

export function StatusScreen() {
  const status = liveStatus.value;
  const [actionError, setActionError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);

  if (!status) {
    const error = statusError.value;
    if (error) return <ErrorNotice error={error} />;
    const starting = nodeStarting.value;
    return (
      <p class="loading" role="status">
        {starting ? `${starting[0].toUpperCase()}${starting.slice(1)}…` : "Reading the node's status…"}
      </p>
    );
  }

  async function act(run: () => Promise<typeof status>) {
    setBusy(true);
    setActionError(null);
    try {
      const next = await run();
      if (next) showStatus(next);
    } catch (error) {
      setActionError(error as CommandError);
    } finally {
      setBusy(false);
    }
  }
  const controls = (target: PauseTarget, pausedByYou: boolean) => (
    <PauseControls
      target={target}
      pausedByYou={pausedByYou}
      busy={busy}
      onPause={(until) => act(() => api.pause(target, until))}
      onResume={() => act(() => api.resume(target))}
    />
  );

  return (
    <section aria-labelledby="status-heading">
      <h2 id="status-heading">Status</h2>
      {status.demo && (
        <p class="notice notice-info">
          Demo mode: the work shown is real, but it is paid in demo credits, which are worth
          nothing and never counted as earnings.
        </p>
      )}
      {actionError && <ErrorNotice error={actionError} />}
      <div class="cards">
        <GpuCard gpu={status.gpu}>
          {controls("gpu", status.gpu.paused_by_you_until !== null || status.gpu.runner_stopped !== null)}
        </GpuCard>
        <BandwidthCard bandwidth={status.bandwidth}>
          {controls("bandwidth", status.bandwidth.paused_by_you_until !== null)}
        </BandwidthCard>
      </div>
      <div class="card">
        <h3 id="all-heading">Everything</h3>
        {controls(
          "all",
          status.gpu.paused_by_you_until !== null || status.bandwidth.paused_by_you_until !== null,
        )}
      </div>
      <Diagnostics />
      <Signals signals={status.signals} />
    </section>
  );
}

function StateLine({ id, resource }: { id: string; resource: ResourceState }) {
  return (
    <p class="state-line" id={`${id}-state`} data-state={resource.state}>
      <span class={`badge badge-${resource.state}`}>{STATE_WORDS[resource.state]}</span>
      <span class="reason">
        {resource.reason ?? (id === "gpu" ? "Your GPU is working for the network." : "Relaying traffic for the network.")}
      </span>
      {resource.paused_by_you_until && !resource.reason?.startsWith("by you") && (
        <span class="paused-by-you">Also paused by you until {resource.paused_by_you_until}.</span>
      )}
    </p>
  );
}

/** "45 % (1,843 of 4,096 workgroups)". */
function jobProgress({ workgroups_done, workgroups_total }: JobProgress): string {
  const percent = workgroups_total > 0 ? Math.floor((workgroups_done * 100) / workgroups_total) : 0;
  const n = (x: number) => x.toLocaleString("en-US");
  return `${percent} % (${n(workgroups_done)} of ${n(workgroups_total)} workgroups)`;
}

function GpuCard({ gpu, children }: { gpu: GpuStatus; children: ComponentChildren }) {
  return (
    <article class="card" aria-labelledby="gpu-heading" data-testid="gpu-card">
      <h3 id="gpu-heading">GPU</h3>
      <StateLine id="gpu" resource={gpu} />
      {gpu.runner_stopped && (
        <p class="notice notice-error" role="alert">
          Spare paused GPU lending because the GPU itself fails, not a job. Check its driver,
          then resume; Spare also tries again by itself.
        </p>
      )}
      <dl class="meters">
        <Meter id="gpu-busy" label="GPU time lent (last minute)" percent={gpu.busy_percent} />
        <div>
          <dt>Jobs in queue</dt>
          <dd data-testid="gpu-queued">{gpu.queued_jobs}</dd>
        </div>
        <div>
          <dt>Job on the GPU now</dt>
          <dd>{gpu.running ? "yes" : gpu.yielded ? "no, one is waiting to resume" : "no"}</dd>
        </div>
        {gpu.job && (
          <div>
            <dt>Its progress</dt>
            <dd>
              <progress
                id="gpu-job-progress"
                max={gpu.job.workgroups_total}
                value={gpu.job.workgroups_done}
                aria-label="Progress of the job on the GPU"
              />{" "}
              <span data-testid="gpu-job-progress">{jobProgress(gpu.job)}</span>
            </dd>
          </div>
        )}
        <div>
          <dt>Jobs done / failed since start</dt>
          <dd>
            {gpu.jobs_done} / {gpu.jobs_failed}
          </dd>
        </div>
        <div>
          <dt>Earned today</dt>
          <dd data-testid="gpu-earned-today">{formatCredits(gpu.earned_today_micro)}</dd>
        </div>
        {gpu.demo_today_micro !== 0 && (
          <div class="demo">
            <dt>Demo today (not earnings)</dt>
            <dd data-testid="gpu-demo-today">{formatCredits(gpu.demo_today_micro)}</dd>
          </div>
        )}
      </dl>
      {gpu.adapter && <p class="muted">Runs on {gpu.adapter}.</p>}
      {children}
    </article>
  );
}

function BandwidthCard({
  bandwidth,
  children,
}: {
  bandwidth: BandwidthStatus;
  children: ComponentChildren;
}) {
  return (
    <article class="card" aria-labelledby="bandwidth-heading" data-testid="bandwidth-card">
      <h3 id="bandwidth-heading">Bandwidth</h3>
      <StateLine id="bandwidth" resource={bandwidth} />
      <dl class="meters">
        <div>
          <dt>Upload</dt>
          <dd data-testid="bw-up">{formatRate(bandwidth.up_bytes_per_s)}</dd>
        </div>
        <div>
          <dt>Download</dt>
          <dd data-testid="bw-down">{formatRate(bandwidth.down_bytes_per_s)}</dd>
        </div>
        <div>
          <dt>Clients connected</dt>
          <dd data-testid="bw-clients">{bandwidth.clients}</dd>
        </div>
        {bandwidth.quota_percent !== null && (
          <Meter id="bw-quota" label="Quota used" percent={bandwidth.quota_percent} />
        )}
        <div>
          <dt>Earned today</dt>
          <dd data-testid="bw-earned-today">{formatCredits(bandwidth.earned_today_micro)}</dd>
        </div>
        {bandwidth.demo_today_micro !== 0 && (
          <div class="demo">
            <dt>Demo today (not earnings)</dt>
            <dd data-testid="bw-demo-today">{formatCredits(bandwidth.demo_today_micro)}</dd>
          </div>
        )}
      </dl>
      <p class="muted">
        {bandwidth.egress === "off"
          ? "Peer relay only: this computer never connects to the internet for clients."
          : bandwidth.egress === "allowlist"
            ? "Clients may reach the destinations on your allow-list through this computer."
            : "Open egress: clients reach the internet through your IP address."}
      </p>
      {children}
    </article>
  );
}

function Meter({ id, label, percent }: { id: string; label: string; percent: number }) {
  const shown = Math.round(Math.min(100, Math.max(0, percent)));
  return (
    <div class="meter-row">
      <dt id={`${id}-label`}>{label}</dt>
      <dd>
        <meter
          id={id}
          min={0}
          max={100}
          value={shown}
          aria-labelledby={`${id}-label`}
          aria-valuetext={`${shown} percent`}
        />
        <span data-testid={id}>{shown} %</span>
      </dd>
    </div>
  );
}

type PauseProps = {
  target: PauseTarget;
  pausedByYou: boolean;
  busy: boolean;
  onPause: (until: PauseFor) => void;
  onResume: () => void;
};

function PauseControls({ target, pausedByYou, busy, onPause, onResume }: PauseProps) {
  const what = TARGET_WORDS[target];
  return (
    <div class="pause-controls" role="group" aria-label={`Pause or resume ${what}`}>
      <span class="pause-label" aria-hidden="true">
        Pause:
      </span>
      {PAUSES.map(({ label, until }) => (
        <button
          type="button"
          disabled={busy}
          aria-label={`Pause ${what}: ${label.toLowerCase()}`}
          onClick={() => onPause(until)}
        >
          {label}
        </button>
      ))}
      {pausedByYou && (
        <button type="button" class="primary" disabled={busy} onClick={onResume}>
          Resume {what}
        </button>
      )}
    </div>
  );
}

function Diagnostics() {
  const [checks, setChecks] = useState<Check[] | null>(null);
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);

  async function run() {
    setBusy(true);
    setError(null);
    try {
      setChecks(await api.diagnostics());
    } catch (e) {
      setError(e as CommandError);
    } finally {
      setBusy(false);
    }
  }

  const failed = checks?.filter((c) => !c.ok).length ?? 0;
  return (
    <section class="card" aria-labelledby="why-heading">
      <h3 id="why-heading">Why am I not earning?</h3>
      <p>Spare checks everything lending depends on and says what to fix.</p>
      <button type="button" onClick={run} disabled={busy}>
        {checks ? "Check again" : "Check now"}
      </button>
      {error && <ErrorNotice error={error} />}
      {checks && (
        <>
          <p role="status">
            {failed === 0 ? "Every check passed." : `${failed} of ${checks.length} checks need you.`}
          </p>
          <ul class="checks" data-testid="checks">
            {checks.map((check) => (
              <li class={check.ok ? "check-ok" : "check-failed"} data-ok={String(check.ok)}>
                <span class="check-mark" aria-hidden="true">
                  {check.ok ? "✓" : "✗"}
                </span>
                <span class="visually-hidden">{check.ok ? "Passed:" : "Needs attention:"}</span>
                <strong>{check.name}</strong> — {check.detail}
                {check.fix && <p class="fix">Fix: {check.fix}</p>}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function Signals({ signals }: { signals: SignalsStatus }) {
  const unknown = "unknown";
  const rows: [string, string][] = [
    [
      "Last keyboard or mouse input",
      signals.headless
        ? "no local session (lending does not wait for input)"
        : signals.input_idle_s !== null
          ? `${signals.input_idle_s} s ago (${signals.input_backend})`
          : signals.input_error ?? unknown,
    ],
    [
      "Power",
      signals.on_battery === null
        ? "mains or unknown"
        : signals.on_battery
          ? `on battery${signals.battery_percent !== null ? `, ${signals.battery_percent} %` : ""}`
          : "plugged in",
    ],
    ["Game or exclusive app", signals.game ?? "none"],
    [
      "GPU temperature",
      signals.gpu_temperature_c !== null ? `${signals.gpu_temperature_c} °C` : unknown,
    ],
    ["CPU use", signals.cpu_percent !== null ? `${Math.round(signals.cpu_percent)} %` : unknown],
    [
      "Schedule",
      signals.schedule_allows === null
        ? "no schedule"
        : signals.schedule_allows
          ? "allows lending now"
          : "does not allow lending now",
    ],
  ];
  return (
    <details class="card">
      <summary>What Spare sees on this computer</summary>
      <dl class="signals">
        {rows.map(([name, value]) => (
          <div>
            <dt>{name}</dt>
            <dd>{value}</dd>
          </div>
        ))}
      </dl>
    </details>
  );
}
