//! Earnings by day, week and month, in several time zones, checked against sums
//! computed straight from the receipts.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate};
use ledger::{EarningsRow, EntryKind, Period};

use crate::support::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).unwrap()
}

fn amounts(rows: &[EarningsRow]) -> Vec<(NaiveDate, &str, EntryKind, i64)> {
    rows.iter()
        .map(|r| (r.start, r.network.as_str(), r.kind, r.amount.0))
        .collect()
}

#[test]
fn days_weeks_and_months_in_utc() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    ledger
        .append_signed(&[
            gpu(MONDAY_MS, 100),                 // Mon 2 Nov
            gpu(MONDAY_MS + 3 * HOUR_MS, 50),    // Mon 2 Nov
            gpu(MONDAY_MS + DAY_MS, 7),          // Tue 3 Nov
            gpu(MONDAY_MS + 7 * DAY_MS, 1),      // Mon 9 Nov
            gpu(MONDAY_MS + 29 * DAY_MS, 1_000), // Tue 1 Dec
            sign(&receipt(
                EntryKind::RelaySession,
                "spare-main",
                MONDAY_MS,
                30,
            )),
            sign(&receipt(EntryKind::GpuJob, "demo", MONDAY_MS, 999)),
        ])
        .unwrap();
    let by_day = ledger.earnings(Period::Day, None, None, utc()).unwrap();
    assert_eq!(
        amounts(&by_day),
        vec![
            (date(2026, 11, 2), "demo", EntryKind::GpuJob, 999),
            (date(2026, 11, 2), "spare-main", EntryKind::GpuJob, 150),
            (date(2026, 11, 2), "spare-main", EntryKind::RelaySession, 30),
            (date(2026, 11, 3), "spare-main", EntryKind::GpuJob, 7),
            (date(2026, 11, 9), "spare-main", EntryKind::GpuJob, 1),
            (date(2026, 12, 1), "spare-main", EntryKind::GpuJob, 1_000),
        ]
    );
    assert_eq!(by_day[1].entries, 2);
    assert_eq!(by_day[1].units, 2_000);

    let by_week = ledger.earnings(Period::Week, None, None, utc()).unwrap();
    assert_eq!(
        amounts(&by_week),
        vec![
            (date(2026, 11, 2), "demo", EntryKind::GpuJob, 999),
            (date(2026, 11, 2), "spare-main", EntryKind::GpuJob, 157),
            (date(2026, 11, 2), "spare-main", EntryKind::RelaySession, 30),
            (date(2026, 11, 9), "spare-main", EntryKind::GpuJob, 1),
            (date(2026, 11, 30), "spare-main", EntryKind::GpuJob, 1_000),
        ]
    );
    let by_month = ledger.earnings(Period::Month, None, None, utc()).unwrap();
    assert_eq!(
        amounts(&by_month),
        vec![
            (date(2026, 11, 1), "demo", EntryKind::GpuJob, 999),
            (date(2026, 11, 1), "spare-main", EntryKind::GpuJob, 158),
            (date(2026, 11, 1), "spare-main", EntryKind::RelaySession, 30),
            (date(2026, 12, 1), "spare-main", EntryKind::GpuJob, 1_000),
        ]
    );

    let since = ledger
        .earnings(
            Period::Day,
            Some(date(2026, 11, 3)),
            Some(date(2026, 11, 9)),
            utc(),
        )
        .unwrap();
    assert_eq!(
        amounts(&since),
        vec![
            (date(2026, 11, 3), "spare-main", EntryKind::GpuJob, 7),
            (date(2026, 11, 9), "spare-main", EntryKind::GpuJob, 1),
        ]
    );

    let totals = ledger.totals().unwrap();
    let gpu_main = totals
        .iter()
        .find(|t| t.network.as_str() == "spare-main" && t.kind == EntryKind::GpuJob)
        .unwrap();
    assert_eq!((gpu_main.entries, gpu_main.amount.0), (5, 1_158));
}

#[test]
fn local_days_follow_half_hour_and_negative_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    let minute = 60_000;
    ledger
        .append_signed(&[
            gpu(MONDAY_MS + 18 * HOUR_MS + 29 * minute, 1), // 23:59 in India, Mon
            gpu(MONDAY_MS + 18 * HOUR_MS + 30 * minute, 2), // 00:00 in India, Tue
            gpu(MONDAY_MS + 7 * HOUR_MS + 59 * minute, 4),  // 23:59 Sun in UTC-8
        ])
        .unwrap();
    let india = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
    let rows = ledger.earnings(Period::Day, None, None, india).unwrap();
    assert_eq!(
        amounts(&rows),
        vec![
            (date(2026, 11, 2), "spare-main", EntryKind::GpuJob, 5),
            (date(2026, 11, 3), "spare-main", EntryKind::GpuJob, 2),
        ]
    );
    let pacific = FixedOffset::west_opt(8 * 3600).unwrap();
    let rows = ledger.earnings(Period::Day, None, None, pacific).unwrap();
    assert_eq!(
        amounts(&rows),
        vec![
            (date(2026, 11, 1), "spare-main", EntryKind::GpuJob, 4),
            (date(2026, 11, 2), "spare-main", EntryKind::GpuJob, 3),
        ]
    );
}

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn random_receipts_in_random_order_match_sums_from_the_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    let mut rng = Lcg(42);
    let receipts: Vec<_> = (0..600)
        .map(|_| {
            let kind = [
                EntryKind::GpuJob,
                EntryKind::RelaySession,
                EntryKind::Adjustment,
            ][rng.next(3) as usize];
            let network = ["spare-main", "demo"][rng.next(2) as usize];
            let time = MONDAY_MS + rng.next(60 * DAY_MS as u64) as i64;
            let amount = rng.next(1_000_000) as i64;
            let mut r = receipt(kind, network, time, amount);
            r.units = rng.next(10_000);
            r.reference = *blake3::hash(&rng.next(u64::MAX).to_le_bytes()).as_bytes();
            r
        })
        .collect();
    // Appended out of time order, in uneven batches: past-dated receipts must update
    // the running totals after them.
    let mut rest: &[_] = &receipts;
    while !rest.is_empty() {
        let n = (1 + rng.next(50) as usize).min(rest.len());
        let batch: Vec<_> = rest[..n].iter().map(sign).collect();
        ledger.append_signed(&batch).unwrap();
        rest = &rest[n..];
    }
    assert_eq!(ledger.verify().unwrap().problem, None);

    for offset_minutes in [0, 60, 330, 345, -180, -480, 840, -720] {
        let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
        for period in [Period::Day, Period::Week, Period::Month] {
            let mut expected: BTreeMap<(NaiveDate, String, EntryKind), (u64, u64, i64)> =
                BTreeMap::new();
            for r in &receipts {
                let local = DateTime::from_timestamp_millis(r.issued_at_ms)
                    .unwrap()
                    .with_timezone(&offset)
                    .date_naive();
                let start = match period {
                    Period::Day => local,
                    Period::Week => local.week(chrono::Weekday::Mon).first_day(),
                    Period::Month => local.with_day0(0).unwrap(),
                };
                let e = expected
                    .entry((start, r.network.to_string(), r.kind))
                    .or_default();
                e.0 += 1;
                e.1 += r.units;
                e.2 += r.amount.0;
            }
            let got: BTreeMap<_, _> = ledger
                .earnings(period, None, None, offset)
                .unwrap()
                .into_iter()
                .map(|r| {
                    (
                        (r.start, r.network.to_string(), r.kind),
                        (r.entries, r.units, r.amount.0),
                    )
                })
                .collect();
            assert_eq!(got, expected, "offset {offset_minutes} min, {period:?}");
        }
    }
}

use chrono::Datelike as _;

#[test]
fn the_first_hours_after_the_epoch_work_west_of_utc() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    ledger.append_signed(&[gpu(HOUR_MS, 3)]).unwrap();
    let pacific = FixedOffset::west_opt(8 * 3600).unwrap();
    let rows = ledger.earnings(Period::Week, None, None, pacific).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].start, date(1969, 12, 29));
}
