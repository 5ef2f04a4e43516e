//! Rate and volume limits: token buckets for up/down rates and day/month quotas.
//!
//! Plain state machines: the caller passes `now`, nothing here reads a clock. Rates are
//! enforced by back-pressure: a forwarder asks how many bytes it may move now
//! ([`TokenBucket::grant`]), moves at most that many, and when the answer is zero waits
//! [`TokenBucket::wait_for`] before reading more. Nothing is dropped. Whole things that
//! cannot be split (a new flow) take their token ahead with [`TokenBucket::reserve`] and
//! wait until it is theirs, within a bound.

use std::time::{Duration, Instant};

const NANOS: i128 = 1_000_000_000;

/// A token bucket: `rate` bytes per second, bursts of up to `burst` bytes.
///
/// Tokens are kept in byte-nanoseconds (integers), so long runs do not drift.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Tokens × 10⁹; below zero while tokens reserved ahead are being earned.
    tokens: i128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` 0 means unlimited. A burst of at least one
    /// hundredth of a second keeps the rate reachable with ordinary read sizes.
    pub fn new(rate: u64, burst: u64, now: Instant) -> Self {
        let burst = burst.max(rate / 100).max(1);
        Self {
            rate,
            burst,
            tokens: i128::from(burst) * NANOS,
            last: now,
        }
    }

    /// The configured rate in bytes per second (0: unlimited).
    pub fn rate(&self) -> u64 {
        self.rate
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = self.last.max(now);
        let cap = i128::from(self.burst) * NANOS;
        let earned = i128::try_from(elapsed.saturating_mul(u128::from(self.rate)));
        self.tokens = self
            .tokens
            .saturating_add(earned.unwrap_or(i128::MAX))
            .min(cap);
    }

    /// Takes up to `want` bytes' worth of tokens; returns how many were granted.
    pub fn grant(&mut self, now: Instant, want: u64) -> u64 {
        if self.rate == 0 {
            return want;
        }
        self.refill(now);
        let available = (self.tokens.max(0) / NANOS) as u64;
        let granted = want.min(available);
        self.tokens -= i128::from(granted) * NANOS;
        granted
    }

    /// How long until `bytes` (at most the burst) can be granted.
    pub fn wait_for(&mut self, now: Instant, bytes: u64) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        self.refill(now);
        let need = i128::from(bytes.min(self.burst)) * NANOS;
        self.until(need)
    }

    /// Takes `amount` tokens (at most the burst) now even when the bucket holds fewer,
    /// provided the rate earns the shortfall within `max_wait`: returns how long the
    /// taker must wait before its tokens are its own (zero when they were there). `None`
    /// takes nothing: the wait would be longer than `max_wait`. Tokens reserved this way
    /// are earned in turn, so every later taker waits behind them.
    pub fn reserve(&mut self, now: Instant, amount: u64, max_wait: Duration) -> Option<Duration> {
        if self.rate == 0 {
            return Some(Duration::ZERO);
        }
        self.refill(now);
        let need = i128::from(amount.min(self.burst)) * NANOS;
        let wait = self.until(need);
        if wait > max_wait {
            return None;
        }
        self.tokens -= need;
        Some(wait)
    }

    /// How long until the bucket holds `need` (tokens × 10⁹), at a rate other than 0.
    fn until(&self, need: i128) -> Duration {
        if self.tokens >= need {
            return Duration::ZERO;
        }
        let short = (need - self.tokens).unsigned_abs();
        let nanos = short.div_ceil(u128::from(self.rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Which calendar day and month a moment falls in, as the caller counts them (local
/// time): quotas reset when these change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// Days since some epoch.
    pub day: i64,
    /// Months since some epoch.
    pub month: i64,
}

/// Why traffic may not continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaExceeded {
    /// Today's quota is used up.
    Daily,
    /// This month's quota is used up.
    Monthly,
}

/// Day and month byte quotas (0: none).
#[derive(Clone, Debug)]
pub struct Quota {
    daily: u64,
    monthly: u64,
    period: Period,
    day_used: u64,
    month_used: u64,
}

impl Quota {
    /// Quotas starting empty in `period`.
    pub fn new(daily: u64, monthly: u64, period: Period) -> Self {
        Self {
            daily,
            monthly,
            period,
            day_used: 0,
            month_used: 0,
        }
    }

    /// Starts over with what was already used (after a restart): what was used in
    /// `saved`, counted only where that is still today and this month.
    pub fn restore(&mut self, saved: Period, day_used: u64, month_used: u64, now: Period) {
        self.roll(now);
        if saved.day == now.day {
            self.day_used = day_used;
        }
        if saved.month == now.month {
            self.month_used = month_used;
        }
    }

    fn roll(&mut self, period: Period) {
        if period.month != self.period.month {
            self.month_used = 0;
        }
        if period.day != self.period.day {
            self.day_used = 0;
        }
        self.period = period;
    }

    /// Bytes that may still pass in `period`; `u64::MAX` when unlimited.
    pub fn remaining(&mut self, period: Period) -> u64 {
        self.roll(period);
        let left = |limit: u64, used: u64| {
            if limit == 0 {
                u64::MAX
            } else {
                limit.saturating_sub(used)
            }
        };
        left(self.daily, self.day_used).min(left(self.monthly, self.month_used))
    }

    /// Records bytes that passed.
    pub fn record(&mut self, period: Period, bytes: u64) {
        self.roll(period);
        self.day_used = self.day_used.saturating_add(bytes);
        self.month_used = self.month_used.saturating_add(bytes);
    }

    /// Takes up to `want` bytes of quota at once (so concurrent flows cannot overshoot
    /// together); returns how many were granted.
    pub fn take(&mut self, period: Period, want: u64) -> u64 {
        let granted = want.min(self.remaining(period));
        self.record(period, granted);
        granted
    }

    /// Gives back bytes taken but not used.
    pub fn refund(&mut self, period: Period, bytes: u64) {
        self.roll(period);
        self.day_used = self.day_used.saturating_sub(bytes);
        self.month_used = self.month_used.saturating_sub(bytes);
    }

    /// Which quota, if any, is used up in `period`.
    pub fn exceeded(&mut self, period: Period) -> Option<QuotaExceeded> {
        self.roll(period);
        if self.monthly != 0 && self.month_used >= self.monthly {
            Some(QuotaExceeded::Monthly)
        } else if self.daily != 0 && self.day_used >= self.daily {
            Some(QuotaExceeded::Daily)
        } else {
            None
        }
    }

    /// Bytes used today and this month, as of `period`.
    pub fn used(&mut self, period: Period) -> (u64, u64) {
        self.roll(period);
        (self.day_used, self.month_used)
    }

    /// The share of the tighter quota used, in percent (0 when unlimited).
    pub fn percent_used(&mut self, period: Period) -> u32 {
        self.roll(period);
        let share = |limit: u64, used: u64| {
            if limit == 0 {
                0
            } else {
                (u128::from(used) * 100 / u128::from(limit)).min(100) as u32
            }
        };
        share(self.daily, self.day_used).max(share(self.monthly, self.month_used))
    }
}

impl Period {
    /// The UTC day and month of a moment, given as seconds since the Unix epoch.
    pub fn utc(unix_secs: i64) -> Period {
        let day = unix_secs.div_euclid(86_400);
        // Civil date from days (Howard Hinnant's algorithm), for the month.
        let z = day + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Period {
            day,
            month: year * 12 + month - 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moving bytes as fast as the bucket allows for 10 simulated seconds lands within
    /// ±5 % of the rate, whatever the read size.
    #[test]
    fn bucket_holds_its_rate_over_ten_seconds() {
        for (rate, chunk) in [
            (1_000_000u64, 16_384u64),
            (125_000, 1_200),
            (50_000_000, 65_536),
        ] {
            let start = Instant::now();
            let mut bucket = TokenBucket::new(rate, rate / 10, start);
            let mut now = start;
            let mut moved = 0u64;
            let end = start + Duration::from_secs(10);
            while now < end {
                let granted = bucket.grant(now, chunk);
                moved += granted;
                if granted < chunk {
                    now += bucket.wait_for(now, chunk).max(Duration::from_micros(1));
                }
            }
            // The initial burst is allowed on top of the rate.
            let expected = rate * 10 + rate / 10;
            let error = (moved as f64 - expected as f64).abs() / expected as f64;
            assert!(
                error < 0.05,
                "rate {rate} chunk {chunk}: moved {moved}, expected {expected}"
            );
        }
    }

    #[test]
    fn empty_bucket_waits_exactly_for_refill() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000, 1_000, start);
        assert_eq!(bucket.grant(start, 5_000), 1_000);
        assert_eq!(bucket.grant(start, 1), 0);
        assert_eq!(bucket.wait_for(start, 500), Duration::from_millis(500));
        assert_eq!(bucket.grant(start + Duration::from_millis(250), 1_000), 250);
    }

    #[test]
    fn reserved_tokens_are_waited_for_in_turn_within_the_bound() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut bucket = TokenBucket::new(10, 2, start);
        assert_eq!(bucket.reserve(start, 1, ms(300)), Some(Duration::ZERO));
        assert_eq!(bucket.reserve(start, 1, ms(300)), Some(Duration::ZERO));
        // Empty: each next taker waits a tenth of a second longer than the last.
        assert_eq!(bucket.reserve(start, 1, ms(300)), Some(ms(100)));
        assert_eq!(bucket.reserve(start, 1, ms(300)), Some(ms(200)));
        assert_eq!(bucket.reserve(start, 1, ms(300)), Some(ms(300)));
        assert_eq!(bucket.reserve(start, 1, ms(300)), None, "past the bound");
        assert_eq!(
            bucket.reserve(start, 1, ms(300)),
            None,
            "a refusal takes nothing"
        );
        // Grants wait behind the reservations too.
        assert_eq!(bucket.grant(start + ms(250), 1), 0);
        assert_eq!(bucket.wait_for(start + ms(250), 1), ms(150));
        assert_eq!(bucket.reserve(start + ms(250), 1, ms(300)), Some(ms(150)));
        assert_eq!(bucket.grant(start + ms(500), 1), 1);
        // Long idle refills only to the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!(bucket.grant(later, 5), 2);
        assert_eq!(
            TokenBucket::new(0, 0, start).reserve(start, 9, ms(0)),
            Some(ms(0))
        );
    }

    #[test]
    fn unlimited_bucket_grants_everything() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(0, 0, start);
        assert_eq!(bucket.grant(start, u64::MAX), u64::MAX);
        assert_eq!(bucket.wait_for(start, 1 << 40), Duration::ZERO);
    }

    #[test]
    fn quotas_reset_with_their_period() {
        let p = |day, month| Period { day, month };
        let mut quota = Quota::new(1_000, 2_500, p(1, 1));
        quota.record(p(1, 1), 900);
        assert_eq!(quota.remaining(p(1, 1)), 100);
        assert_eq!(quota.percent_used(p(1, 1)), 90);
        quota.record(p(1, 1), 200);
        assert_eq!(quota.exceeded(p(1, 1)), Some(QuotaExceeded::Daily));
        // Next day: the daily quota is fresh, the month keeps counting.
        assert_eq!(quota.remaining(p(2, 1)), 1_000);
        quota.record(p(2, 1), 1_000);
        quota.record(p(3, 1), 500);
        assert_eq!(quota.exceeded(p(3, 1)), Some(QuotaExceeded::Monthly));
        assert_eq!(quota.remaining(p(3, 1)), 0);
        // Next month: both fresh.
        assert_eq!(quota.exceeded(p(31, 2)), None);
        assert_eq!(quota.remaining(p(31, 2)), 1_000);
    }

    #[test]
    fn a_restored_quota_counts_only_what_is_still_today_and_this_month() {
        let p = |day, month| Period { day, month };
        let mut quota = Quota::new(1_000, 10_000, p(5, 1));
        quota.restore(p(5, 1), 400, 4_000, p(5, 1));
        assert_eq!(quota.used(p(5, 1)), (400, 4_000));
        assert_eq!(quota.percent_used(p(5, 1)), 40);
        let mut quota = Quota::new(1_000, 10_000, p(6, 1));
        quota.restore(p(5, 1), 400, 4_000, p(6, 1));
        assert_eq!(quota.used(p(6, 1)), (0, 4_000));
        let mut quota = Quota::new(1_000, 10_000, p(40, 2));
        quota.restore(p(5, 1), 400, 4_000, p(40, 2));
        assert_eq!(quota.used(p(40, 2)), (0, 0));
    }

    #[test]
    fn utc_periods_follow_the_calendar() {
        // 2026-01-31T23:59:59Z and 2026-02-01T00:00:00Z.
        let jan = Period::utc(1_769_903_999);
        let feb = Period::utc(1_769_904_000);
        assert_eq!(feb.day, jan.day + 1);
        assert_eq!(feb.month, jan.month + 1);
        assert_eq!(jan.month, 2026 * 12);
        // 2024-02-29 is in February of a leap year.
        assert_eq!(Period::utc(1_709_164_800).month, 2024 * 12 + 1);
        assert_eq!(
            Period::utc(0),
            Period {
                day: 0,
                month: 1970 * 12
            }
        );
    }

    #[test]
    fn no_quota_is_unlimited() {
        let mut quota = Quota::new(0, 0, Period { day: 0, month: 0 });
        quota.record(Period { day: 0, month: 0 }, u64::MAX);
        assert_eq!(quota.exceeded(Period { day: 0, month: 0 }), None);
        assert_eq!(quota.percent_used(Period { day: 0, month: 0 }), 0);
    }
}
