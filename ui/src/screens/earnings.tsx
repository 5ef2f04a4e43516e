//! The Earnings screen: earnings by day, week or month split by resource, demo work
//! apart (never summed into earnings), and an optional net-of-electricity estimate.

import { useEffect, useState } from "preact/hooks";
import * as api from "../api";
import type { CommandError } from "../bindings/CommandError";
import type { DemoSummary } from "../bindings/DemoSummary";
import type { Period } from "../bindings/Period";
import type { PeriodRow } from "../bindings/PeriodRow";
import type { Report } from "../bindings/Report";
import { EarningsChart } from "../chart";
import { formatBytes, formatCredits, formatDuration } from "../credits";
import {
  electricityCostMicro,
  gpuMsOf,
  loadElectricity,
  parseElectricity,
  saveElectricity,
  type ElectricitySettings,
} from "../electricity";
import { ErrorNotice } from "../error-notice";
import { periodLabel, sinceFor } from "../periods";

const PERIODS: { id: Period; label: string }[] = [
  { id: "day", label: "By day" },
  { id: "week", label: "By week" },
  { id: "month", label: "By month" },
];

export function EarningsScreen() {
  const [period, setPeriod] = useState<Period>("week");
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<CommandError | null>(null);

  useEffect(() => {
    let current = true;
    setError(null);
    api
      .earnings(period, sinceFor(period, new Date()))
      .then((r) => current && setReport(r))
      .catch((e) => current && setError(e as CommandError));
    return () => {
      current = false;
    };
  }, [period]);

  return (
    <section aria-labelledby="earnings-heading">
      <h2 id="earnings-heading">Earnings</h2>
      <fieldset class="segmented">
        <legend>Group earnings</legend>
        {PERIODS.map(({ id, label }) => (
          <label>
            <input
              type="radio"
              name="period"
              value={id}
              checked={period === id}
              onChange={() => setPeriod(id)}
            />
            {label}
          </label>
        ))}
      </fieldset>
      {error && <ErrorNotice error={error} />}
      {!error && !report && <p class="loading">Reading the ledger…</p>}
      {!error && report && <ReportView report={report} />}
    </section>
  );
}

function ReportView({ report }: { report: Report }) {
  const s = report.in_range;
  return (
    <>
      <div class="card">
        <p data-testid="in-range">
          Earned {report.since ? `since ${report.since}` : "in this range"}:{" "}
          <strong>{formatCredits(report.in_range_earned_micro)}</strong> (GPU{" "}
          {formatCredits(s.gpu_micro)}, bandwidth {formatCredits(s.bandwidth_micro)}, adjustments{" "}
          {formatCredits(s.adjustments_micro)}); paid out {formatCredits(-BigInt(s.payouts_micro))}.
        </p>
        <p data-testid="all-time">
          All time: earned {formatCredits(report.all_time_earned_micro)}, paid out{" "}
          {formatCredits(-BigInt(report.all_time.payouts_micro))}, balance{" "}
          <strong>{formatCredits(report.balance_micro)}</strong>.
        </p>
        <EarningsChart rows={report.rows} period={report.period} />
        <RowsTable report={report} />
      </div>
      <DemoApart demo={report.demo_in_range} rows={report.demo_rows} period={report.period} />
      <Electricity report={report} />
    </>
  );
}

function RowsTable({ report }: { report: Report }) {
  if (report.rows.length === 0) return null;
  return (
    <div class="table-scroll">
      <table data-testid="earnings-table">
        <caption class="visually-hidden">Earnings by {report.period}, in credits</caption>
        <thead>
          <tr>
            <th scope="col">{report.period === "day" ? "Day" : report.period === "week" ? "Week" : "Month"}</th>
            <th scope="col">Network</th>
            <th scope="col" class="num">GPU</th>
            <th scope="col" class="num">Bandwidth</th>
            <th scope="col" class="num">Adjustments</th>
            <th scope="col" class="num">Paid out</th>
            <th scope="col" class="num">Earned</th>
          </tr>
        </thead>
        <tbody>
          {[...report.rows].reverse().map((row) => (
            <tr>
              <th scope="row">{periodLabel(report.period, row.start)}</th>
              <td>{row.network}</td>
              <td class="num">{formatCredits(row.gpu_micro)}</td>
              <td class="num">{formatCredits(row.bandwidth_micro)}</td>
              <td class="num">{formatCredits(row.adjustments_micro)}</td>
              <td class="num">{formatCredits(-BigInt(row.payouts_micro))}</td>
              <td class="num">{formatCredits(row.earned_micro)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function DemoApart({ demo, rows, period }: { demo: DemoSummary; rows: PeriodRow[]; period: Period }) {
  const none = demo.gpu_jobs === 0 && demo.relay_sessions === 0;
  return (
    <section class="card demo" aria-labelledby="demo-heading" data-testid="demo-apart">
      <h3 id="demo-heading">Demo work (not earnings)</h3>
      {none ? (
        <p class="muted">No demo work in this range.</p>
      ) : (
        <>
          <p>
            Real work for Spare's built-in demo, recorded with real receipts but paid in demo
            credits, which are worth nothing. It is never added to the earnings above.
          </p>
          <dl class="meters">
            <div>
              <dt>GPU jobs</dt>
              <dd>
                {demo.gpu_jobs} ({demo.gpu_workgroups.toLocaleString("en")} workgroups)
              </dd>
            </div>
            <div>
              <dt>Relay sessions</dt>
              <dd>
                {demo.relay_sessions} ({formatBytes(demo.relay_bytes)} relayed)
              </dd>
            </div>
            <div>
              <dt>Demo credits</dt>
              <dd data-testid="demo-credits">{formatCredits(demo.demo_credits_micro)}</dd>
            </div>
          </dl>
          <EarningsChart rows={rows} period={period} demo />
        </>
      )}
    </section>
  );
}

function Electricity({ report }: { report: Report }) {
  const [settings, setSettings] = useState<ElectricitySettings>(loadElectricity);
  const update = (change: Partial<ElectricitySettings>) => {
    const next = { ...settings, ...change };
    setSettings(next);
    saveElectricity(next);
  };
  const parsed = parseElectricity(settings);
  const timed = report.rows.map((row) => ({ row, gpuMs: gpuMsOf(row) }));
  const haveTime = timed.length > 0 && timed.every((t) => t.gpuMs !== null);

  return (
    <section class="card" aria-labelledby="electricity-heading" data-testid="electricity">
      <h3 id="electricity-heading">Net of electricity (estimate)</h3>
      <label class="check">
        <input
          type="checkbox"
          checked={settings.enabled}
          onChange={(e) => update({ enabled: e.currentTarget.checked })}
        />
        Subtract an estimate of the GPU's electricity cost
      </label>
      {settings.enabled && (
        <>
          <div class="field-row">
            <Field
              id="electricity-price"
              label="Electricity price, in credits per kWh"
              value={settings.price}
              error={parsed.ok ? null : parsed.priceError}
              onInput={(price) => update({ price })}
            />
            <Field
              id="electricity-watts"
              label="GPU power draw while lending, in watts"
              value={settings.watts}
              error={parsed.ok ? null : parsed.wattsError}
              onInput={(watts) => update({ watts })}
            />
          </div>
          {!haveTime ? (
            <p class="notice notice-info" data-testid="electricity-note">
              This ledger does not record GPU time per period yet, so the electricity cost
              cannot be estimated here. Earnings above are before electricity.
            </p>
          ) : (
            parsed.ok && (
              <table data-testid="electricity-table">
                <caption class="visually-hidden">Estimated earnings net of electricity</caption>
                <thead>
                  <tr>
                    <th scope="col">Period</th>
                    <th scope="col" class="num">GPU time</th>
                    <th scope="col" class="num">Electricity (est.)</th>
                    <th scope="col" class="num">Earned, net (est.)</th>
                  </tr>
                </thead>
                <tbody>
                  {[...timed].reverse().map(({ row, gpuMs }) => {
                    const cost = electricityCostMicro(gpuMs ?? 0, parsed.watts, parsed.pricePerKwhMicro);
                    return (
                      <tr data-start={row.start} data-cost-micro={cost.toString()}>
                        <th scope="row">{periodLabel(report.period, row.start)}</th>
                        <td class="num">{formatDuration(gpuMs ?? 0)}</td>
                        <td class="num">{formatCredits(-cost)}</td>
                        <td class="num">{formatCredits(BigInt(row.earned_micro) - cost)}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            )
          )}
          <p class="muted">
            An estimate: the wattage is your guess and Spare does not meter power. Only GPU
            time is counted; the rest of the computer also draws power.
          </p>
        </>
      )}
    </section>
  );
}

type FieldProps = {
  id: string;
  label: string;
  value: string;
  error: string | null;
  onInput: (value: string) => void;
};

function Field({ id, label, value, error, onInput }: FieldProps) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input
        id={id}
        inputMode="decimal"
        value={value}
        aria-invalid={error ? "true" : undefined}
        aria-describedby={error ? `${id}-error` : undefined}
        onInput={(e) => onInput(e.currentTarget.value)}
      />
      {error && (
        <p class="field-error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}
