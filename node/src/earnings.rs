//! Earnings reports from the ledger: what the owner earned per period and in total,
//! with demo work kept apart and never counted as earnings.
//!
//! The report is a plain serializable value; the CLI prints it as text or JSON and
//! the tray app's Earnings screen shows the same value.

use chrono::{FixedOffset, NaiveDate};
use ledger::{EarningsRow, EntryKind, Ledger, MicroCredits, Period, Total};
use serde::Serialize;

/// Credits split by where they came from. Amounts in micro-credits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Split {
    /// From GPU jobs.
    pub gpu_micro: i64,
    /// From relay sessions.
    pub bandwidth_micro: i64,
    /// From adjustments (either sign).
    pub adjustments_micro: i64,
    /// Paid out (zero or negative).
    pub payouts_micro: i64,
}

impl Split {
    fn add(&mut self, kind: EntryKind, amount: MicroCredits) {
        let slot = match kind {
            EntryKind::GpuJob => &mut self.gpu_micro,
            EntryKind::RelaySession => &mut self.bandwidth_micro,
            EntryKind::Adjustment => &mut self.adjustments_micro,
            EntryKind::Payout => &mut self.payouts_micro,
        };
        *slot = slot.saturating_add(amount.0);
    }

    /// Credits earned: GPU, bandwidth and adjustments.
    pub fn earned(&self) -> MicroCredits {
        MicroCredits(
            self.gpu_micro
                .saturating_add(self.bandwidth_micro)
                .saturating_add(self.adjustments_micro),
        )
    }

    /// Earned minus paid out.
    pub fn balance(&self) -> MicroCredits {
        MicroCredits(self.earned().0.saturating_add(self.payouts_micro))
    }
}

/// One period of earnings on one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PeriodRow {
    /// First day of the period.
    pub start: NaiveDate,
    /// The network (`demo` only in a report's `demo_rows`).
    pub network: String,
    /// Entries in the period.
    pub entries: u64,
    /// Credits by source.
    #[serde(flatten)]
    pub split: Split,
    /// Earned in the period (GPU, bandwidth and adjustments).
    pub earned_micro: i64,
}

/// Demo work, kept apart: real receipts from the built-in demo, worth nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DemoSummary {
    /// GPU jobs run for the demo requester.
    pub gpu_jobs: u64,
    /// Workgroups run for them (the unit GPU jobs are paid by).
    pub gpu_workgroups: u64,
    /// Relay sessions served for the demo client.
    pub relay_sessions: u64,
    /// Bytes relayed.
    pub relay_bytes: u64,
    /// Demo credits (not earnings).
    pub demo_credits_micro: i64,
}

/// An earnings report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Report {
    /// The ledger file read.
    pub ledger: String,
    /// `day`, `week` or `month`.
    #[cfg_attr(feature = "ts", ts(as = "crate::ledger_view::PeriodTs"))]
    pub period: Period,
    /// The first local date included, if limited.
    pub since: Option<NaiveDate>,
    /// The time zone the days are counted in, as `+HH:MM`.
    pub utc_offset: String,
    /// Earnings per period and network, oldest first (demo excluded).
    pub rows: Vec<PeriodRow>,
    /// Sum of `rows`.
    pub in_range: Split,
    /// Earned in range.
    pub in_range_earned_micro: i64,
    /// Demo work in range.
    pub demo_in_range: DemoSummary,
    /// Demo work per period, in demo credits (network `demo`), oldest first: a series of
    /// its own for the charts, never part of `rows` or of any earnings.
    pub demo_rows: Vec<PeriodRow>,
    /// All-time totals over every real network.
    pub all_time: Split,
    /// All-time earned.
    pub all_time_earned_micro: i64,
    /// All-time earned minus paid out.
    pub balance_micro: i64,
}

/// The name of a period, as used on the command line and in JSON.
pub fn period_name(period: Period) -> &'static str {
    match period {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
    }
}

/// Builds the report for local dates from `since` on.
pub fn report(
    ledger: &Ledger,
    period: Period,
    since: Option<NaiveDate>,
    offset: FixedOffset,
) -> Result<Report, ledger::Error> {
    let rows = ledger.earnings(period, since, None, offset)?;
    let (rows, in_range, demo, demo_rows) = split_rows(&rows);
    let all_time = totals_split(&ledger.totals()?);
    Ok(Report {
        ledger: ledger.path().display().to_string(),
        period,
        since,
        utc_offset: offset.to_string(),
        in_range_earned_micro: in_range.earned().0,
        rows,
        in_range,
        demo_in_range: demo,
        demo_rows,
        all_time_earned_micro: all_time.earned().0,
        balance_micro: all_time.balance().0,
        all_time,
    })
}

/// The report of a node with no ledger yet (`ledger` is where it will be): nothing
/// earned, in the same shape as [`report`].
pub fn nothing_yet(
    ledger: &std::path::Path,
    period: Period,
    since: Option<NaiveDate>,
    offset: FixedOffset,
) -> Report {
    Report {
        ledger: ledger.display().to_string(),
        period,
        since,
        utc_offset: offset.to_string(),
        rows: Vec::new(),
        in_range: Split::default(),
        in_range_earned_micro: 0,
        demo_in_range: DemoSummary::default(),
        demo_rows: Vec::new(),
        all_time: Split::default(),
        all_time_earned_micro: 0,
        balance_micro: 0,
    }
}

/// Real rows and their sum, and demo work summed and per period, apart.
fn split_rows(rows: &[EarningsRow]) -> (Vec<PeriodRow>, Split, DemoSummary, Vec<PeriodRow>) {
    let mut out: Vec<PeriodRow> = Vec::new();
    let mut demo_rows: Vec<PeriodRow> = Vec::new();
    let mut total = Split::default();
    let mut demo = DemoSummary::default();
    for r in rows {
        if r.network.is_demo() {
            add_to_rows(&mut demo_rows, r);
            match r.kind {
                EntryKind::GpuJob => {
                    demo.gpu_jobs += r.entries;
                    demo.gpu_workgroups += r.units;
                }
                EntryKind::RelaySession => {
                    demo.relay_sessions += r.entries;
                    demo.relay_bytes += r.units;
                }
                EntryKind::Adjustment | EntryKind::Payout => {}
            }
            demo.demo_credits_micro = demo.demo_credits_micro.saturating_add(r.amount.0);
            continue;
        }
        total.add(r.kind, r.amount);
        add_to_rows(&mut out, r);
    }
    (out, total, demo, demo_rows)
}

/// Adds `r` to the row of its period and network (rows come in period order).
fn add_to_rows(out: &mut Vec<PeriodRow>, r: &EarningsRow) {
    let row = match out.last_mut() {
        Some(last) if last.start == r.start && last.network == r.network.as_str() => last,
        _ => {
            out.push(PeriodRow {
                start: r.start,
                network: r.network.to_string(),
                entries: 0,
                split: Split::default(),
                earned_micro: 0,
            });
            let last = out.len() - 1;
            &mut out[last]
        }
    };
    row.entries += r.entries;
    row.split.add(r.kind, r.amount);
    row.earned_micro = row.split.earned().0;
}

fn totals_split(totals: &[Total]) -> Split {
    let mut split = Split::default();
    for t in totals.iter().filter(|t| !t.network.is_demo()) {
        split.add(t.kind, t.amount);
    }
    split
}

/// The report as text for a terminal.
pub fn render_text(report: &Report) -> String {
    use std::fmt::Write as _;
    let c = |micro: i64| MicroCredits(micro).to_string();
    let mut out = String::new();
    let since = report
        .since
        .map(|d| format!(" since {d}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Earnings by {}{since} (local dates, UTC{}), in credits — ledger {}",
        period_name(report.period),
        report.utc_offset,
        report.ledger
    );
    if report.rows.is_empty() {
        let _ = writeln!(out, "\nNothing earned in this range yet.");
    } else {
        let _ = writeln!(
            out,
            "\n{:<12} {:<16} {:>8} {:>14} {:>14} {:>14} {:>14} {:>14}",
            period_name(report.period),
            "network",
            "entries",
            "gpu",
            "bandwidth",
            "adjustments",
            "paid out",
            "earned"
        );
        for r in &report.rows {
            let _ = writeln!(
                out,
                "{:<12} {:<16} {:>8} {:>14} {:>14} {:>14} {:>14} {:>14}",
                r.start.to_string(),
                r.network,
                r.entries,
                c(r.split.gpu_micro),
                c(r.split.bandwidth_micro),
                c(r.split.adjustments_micro),
                c(r.split.payouts_micro),
                c(r.earned_micro),
            );
        }
    }
    let s = &report.in_range;
    let _ = writeln!(
        out,
        "\nEarned in range: {} (GPU {}, bandwidth {}, adjustments {}); paid out {}",
        c(report.in_range_earned_micro),
        c(s.gpu_micro),
        c(s.bandwidth_micro),
        c(s.adjustments_micro),
        c(s.payouts_micro.saturating_neg()),
    );
    let _ = writeln!(
        out,
        "All time: earned {}, paid out {}, balance {}",
        c(report.all_time_earned_micro),
        c(report.all_time.payouts_micro.saturating_neg()),
        c(report.balance_micro),
    );
    let d = &report.demo_in_range;
    if *d != DemoSummary::default() {
        let _ = writeln!(
            out,
            "Demo work in range (not earnings): {} GPU jobs ({} workgroups), {} relay sessions \
             ({} bytes), {} demo credits",
            d.gpu_jobs,
            d.gpu_workgroups,
            d.relay_sessions,
            d.relay_bytes,
            c(d.demo_credits_micro)
        );
    }
    out
}
