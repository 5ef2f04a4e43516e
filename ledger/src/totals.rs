//! Running earnings totals (the `earnings_running` table): kept up to date by appends,
//! read by the earnings queries, recomputed by `verify`.
//!
//! Any period's earnings are the running total at its end minus the running total at
//! its start, each found by one index seek, so queries cost the number of periods,
//! not the number of entries.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::schema::BUCKET_MS;
use crate::{EarningsRow, EntryKind, Error, MicroCredits, Network, Period, Problem, Total};

/// Quarter hours in a day.
const BUCKETS_PER_DAY: i64 = 86_400_000 / BUCKET_MS;

/// Counts and sums of some entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    pub entries: i64,
    pub units: i64,
    pub amount: i64,
}

impl Sums {
    fn minus(self, earlier: Sums) -> Sums {
        Sums {
            entries: self.entries - earlier.entries,
            units: self.units - earlier.units,
            amount: self.amount - earlier.amount,
        }
    }
}

/// What one append adds, per network, kind and bucket.
#[derive(Default)]
pub(crate) struct Deltas(BTreeMap<(String, EntryKind, i64), Sums>);

impl Deltas {
    pub fn add(&mut self, network: &str, kind: EntryKind, time_ms: i64, units: u64, amount: i64) {
        let key = (network.to_owned(), kind, time_ms / BUCKET_MS);
        let sums = self.0.entry(key).or_default();
        sums.entries += 1;
        sums.units = sums.units.saturating_add(units as i64);
        sums.amount = sums.amount.saturating_add(amount);
    }

    /// Applies the deltas to the running totals, in bucket order per series.
    ///
    /// Appends are nearly always at the end of time, where the update of later rows
    /// touches nothing; a receipt dated in the past updates the rows after it.
    pub fn apply(self, tx: &Transaction<'_>) -> Result<(), Error> {
        let mut later = tx.prepare_cached(
            "UPDATE earnings_running SET entries = entries + ?4, units = units + ?5, \
             amount = amount + ?6 WHERE network = ?1 AND kind = ?2 AND bucket >= ?3",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO earnings_running (network, kind, bucket, entries, units, amount) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut exists = tx.prepare_cached(
            "SELECT 1 FROM earnings_running WHERE network = ?1 AND kind = ?2 AND bucket = ?3",
        )?;
        for ((network, kind, bucket), d) in self.0 {
            let kind = kind.as_str();
            let had_row = exists.exists(params![network, kind, bucket])?;
            if !had_row {
                let before = running_before(tx, &network, kind, bucket)?;
                insert.execute(params![
                    network,
                    kind,
                    bucket,
                    before.entries,
                    before.units,
                    before.amount
                ])?;
            }
            later.execute(params![network, kind, bucket, d.entries, d.units, d.amount])?;
        }
        Ok(())
    }
}

/// The running totals of every entry in buckets before `bucket`.
fn running_before(
    conn: &Connection,
    network: &str,
    kind: &str,
    bucket: i64,
) -> Result<Sums, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT entries, units, amount FROM earnings_running \
         WHERE network = ?1 AND kind = ?2 AND bucket < ?3 ORDER BY bucket DESC LIMIT 1",
    )?;
    let sums = stmt
        .query_row(params![network, kind, bucket], |row| {
            Ok(Sums {
                entries: row.get(0)?,
                units: row.get(1)?,
                amount: row.get(2)?,
            })
        })
        .optional()?;
    Ok(sums.unwrap_or_default())
}

/// Every (network, kind) series, found by skipping through the primary key.
fn series(conn: &Connection) -> Result<Vec<(String, String)>, Error> {
    let mut next = conn.prepare_cached(
        "SELECT network, kind FROM earnings_running WHERE (network, kind) > (?1, ?2) \
         ORDER BY network, kind LIMIT 1",
    )?;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut after = (String::new(), String::new());
    while let Some(found) = next
        .query_row(params![after.0, after.1], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?
    {
        out.push(found);
        after = out[out.len() - 1].clone();
    }
    Ok(out)
}

fn first_and_last_bucket(
    conn: &Connection,
    network: &str,
    kind: &str,
) -> Result<(i64, i64), Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT (SELECT min(bucket) FROM earnings_running WHERE network = ?1 AND kind = ?2), \
                (SELECT max(bucket) FROM earnings_running WHERE network = ?1 AND kind = ?2)",
    )?;
    Ok(stmt.query_row(params![network, kind], |row| Ok((row.get(0)?, row.get(1)?)))?)
}

fn parse_series(network: String, kind: &str) -> Result<(Network, EntryKind), Error> {
    let corrupt = |reason: String| Error::Corrupt { seq: 0, reason };
    let network = Network::new(network).map_err(|e| corrupt(e.to_string()))?;
    let kind = kind
        .parse()
        .map_err(|e: crate::ReceiptError| corrupt(e.to_string()))?;
    Ok((network, kind))
}

/// Earnings per period, network and kind for local dates in `since..=until`.
pub(crate) fn earnings(
    conn: &Connection,
    period: Period,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
    offset: FixedOffset,
) -> Result<Vec<EarningsRow>, Error> {
    // Local midnight of day `d` (days since the epoch) is UTC bucket 96·d − offset.
    let offset_q = i64::from(offset.local_minus_utc()) * 1000 / BUCKET_MS;
    let day_of = |date: NaiveDate| date.signed_duration_since(epoch()).num_days();
    let local_day_of_bucket = |bucket: i64| (bucket + offset_q).div_euclid(BUCKETS_PER_DAY);

    let mut out = Vec::new();
    for (network, kind) in series(conn)? {
        let (first, last) = first_and_last_bucket(conn, &network, &kind)?;
        let from = since
            .map(day_of)
            .unwrap_or(i64::MIN)
            .max(local_day_of_bucket(first));
        let to = until
            .map(day_of)
            .unwrap_or(i64::MAX)
            .min(local_day_of_bucket(last));
        if from > to {
            continue;
        }
        let (network_name, kind_name) = (network.clone(), kind.clone());
        let (network, kind) = parse_series(network, &kind)?;
        let mut start_total = running_before(
            conn,
            &network_name,
            &kind_name,
            from * BUCKETS_PER_DAY - offset_q,
        )?;
        let mut current: Option<EarningsRow> = None;
        // One statement walks the days; each day's running total at its end is one
        // seek for the last bucket before local midnight and one primary-key lookup.
        let mut days = conn.prepare_cached(
            "WITH RECURSIVE days(d) AS (SELECT ?3 UNION ALL SELECT d + 1 FROM days WHERE d < ?4)
             SELECT d, r.entries, r.units, r.amount
             FROM days JOIN earnings_running r
               ON r.network = ?1 AND r.kind = ?2
              AND r.bucket = (SELECT max(bucket) FROM earnings_running
                              WHERE network = ?1 AND kind = ?2
                                AND bucket < (days.d + 1) * 96 - ?5)
             ORDER BY d",
        )?;
        let rows = days.query_map(
            params![network_name, kind_name, from, to, offset_q],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    Sums {
                        entries: row.get(1)?,
                        units: row.get(2)?,
                        amount: row.get(3)?,
                    },
                ))
            },
        )?;
        for row in rows {
            let (day, end_total) = row?;
            let sums = end_total.minus(start_total);
            start_total = end_total;
            if sums.entries == 0 {
                continue;
            }
            let date = epoch()
                .checked_add_signed(chrono::TimeDelta::days(day))
                .ok_or_else(|| Error::Corrupt {
                    seq: 0,
                    reason: format!("day {day} out of range"),
                })?;
            let start = period_start(period, date);
            match &mut current {
                Some(row) if row.start == start => {
                    row.entries += sums.entries as u64;
                    row.units += sums.units as u64;
                    row.amount.0 += sums.amount;
                }
                _ => {
                    out.extend(current.take());
                    current = Some(EarningsRow {
                        start,
                        network: network.clone(),
                        kind,
                        entries: sums.entries as u64,
                        units: sums.units as u64,
                        amount: MicroCredits(sums.amount),
                    });
                }
            }
        }
        out.extend(current);
    }
    out.sort_by(|a, b| (a.start, &a.network, a.kind).cmp(&(b.start, &b.network, b.kind)));
    Ok(out)
}

/// All-time totals per network and kind: the last running total of each series.
pub(crate) fn totals(conn: &Connection) -> Result<Vec<Total>, Error> {
    let mut out = Vec::new();
    for (network, kind) in series(conn)? {
        let sums = running_before(conn, &network, &kind, i64::MAX)?;
        let (network, kind) = parse_series(network, &kind)?;
        out.push(Total {
            network,
            kind,
            entries: sums.entries as u64,
            units: sums.units as u64,
            amount: MicroCredits(sums.amount),
        });
    }
    Ok(out)
}

/// Compares the running totals with totals recomputed from the entries.
pub(crate) fn check(conn: &Connection) -> Result<Option<Problem>, Error> {
    let mut stmt = conn.prepare(
        "WITH fresh AS (
             SELECT network, kind, bucket, sum(n) OVER w AS entries, sum(u) OVER w AS units,
                    sum(a) OVER w AS amount
             FROM (SELECT network, kind, time_ms / 900000 AS bucket, count(*) AS n,
                          sum(units) AS u, sum(amount) AS a
                   FROM entries GROUP BY 1, 2, 3)
             WINDOW w AS (PARTITION BY network, kind ORDER BY bucket)),
         stored AS (SELECT network, kind, bucket, entries, units, amount FROM earnings_running),
         diff AS (
             SELECT * FROM (SELECT * FROM fresh EXCEPT SELECT * FROM stored)
             UNION ALL
             SELECT * FROM (SELECT * FROM stored EXCEPT SELECT * FROM fresh))
         SELECT network, kind, bucket FROM diff ORDER BY bucket LIMIT 1",
    )?;
    let diff = stmt
        .query_row([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    Ok(diff.map(|(network, kind, bucket)| Problem {
        seq: 0,
        reason: format!(
            "the earnings totals disagree with the entries for {kind} on {network} at {}: \
             the totals table was altered outside Spare",
            crate::format_utc(bucket * BUCKET_MS)
        ),
    }))
}

fn epoch() -> NaiveDate {
    DateTime::UNIX_EPOCH.date_naive()
}

/// The first day of the period that holds `date`.
pub(crate) fn period_start(period: Period, date: NaiveDate) -> NaiveDate {
    match period {
        Period::Day => date,
        Period::Week => date
            .checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
            .unwrap_or(date),
        Period::Month => date.with_day(1).unwrap_or(date),
    }
}
