//! The owner's schedule: the hours in which lending is allowed, written as rules such as
//! `"Mon-Fri 22:00-07:00"` or `"Sat,Sun"`.
//!
//! Pure: it is given the owner's local wall-clock time and never reads a clock.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDateTime, NaiveTime, Timelike};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const FULL_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const EXAMPLE: &str = r#"e.g. "Mon-Fri 22:00-07:00", "Sat,Sun" or "daily 01:00-06:30""#;
const DAY_SECONDS: u32 = 24 * 60 * 60;

/// One rule like `"Mon-Fri 22:00-07:00"`, `"Sat,Sun"`, `"daily 01:00-06:30"` or
/// `"Mon 09:00-17:00"`.
///
/// Days are `Mon` … `Sun` (or written out, any case), in ranges with `-` (`Fri-Mon`
/// wraps over the weekend) and lists with `,`; `daily` is every day. The time range is
/// optional and means the whole day when left out. An end before the start wraps past
/// midnight into the next day, so `"Fri 22:00-02:00"` also allows Saturday 01:00;
/// `24:00` may end a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Indexed by days from Monday.
    days: [bool; 7],
    /// Seconds from midnight, `start` in `0..86400`, `end` in `1..=86400`, never equal.
    start: u32,
    end: u32,
}

impl Rule {
    /// Whether the rule allows lending at `day` (days from Monday) and `second` of it.
    fn allows(&self, day: usize, second: u32) -> bool {
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&second)
        } else {
            // Wraps: the evening of a listed day, or the early hours after one.
            let yesterday = (day + 6) % 7;
            (self.days[day] && second >= self.start) || (self.days[yesterday] && second < self.end)
        }
    }
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut words = text.split_whitespace();
        let Some(days_word) = words.next() else {
            return Err(format!(
                "a schedule rule is empty; write days and hours, {EXAMPLE}"
            ));
        };
        let time_word = words.next();
        if let Some(extra) = words.next() {
            return Err(format!(
                "\"{text}\": unexpected \"{extra}\" (a rule is days, then optionally one time \
                 range, with no spaces inside either; {EXAMPLE})"
            ));
        }
        if days_word.contains(':') {
            return Err(format!(
                "\"{text}\": a rule starts with its days (\"daily {days_word}\" for every \
                 day; {EXAMPLE})"
            ));
        }
        let days = parse_days(days_word).map_err(|why| format!("\"{text}\": {why}; {EXAMPLE}"))?;
        let (start, end) = match time_word {
            None => (0, DAY_SECONDS),
            Some(range) => {
                parse_time_range(range).map_err(|why| format!("\"{text}\": {why}; {EXAMPLE}"))?
            }
        };
        Ok(Rule { days, start, end })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days.iter().all(|d| *d) {
            f.write_str("daily")?;
        } else {
            let listed: Vec<&str> = (0..7).filter(|d| self.days[*d]).map(|d| DAYS[d]).collect();
            f.write_str(&listed.join(","))?;
        }
        if (self.start, self.end) != (0, DAY_SECONDS) {
            let hm = |s: u32| format!("{:02}:{:02}", s / 3600, s % 3600 / 60);
            write!(f, " {}-{}", hm(self.start), hm(self.end))?;
        }
        Ok(())
    }
}

fn parse_day(word: &str) -> Result<usize, String> {
    (0..7)
        .find(|d| word.eq_ignore_ascii_case(DAYS[*d]) || word.eq_ignore_ascii_case(FULL_DAYS[*d]))
        .ok_or_else(|| {
            format!("\"{word}\" is not a day (days are Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
        })
}

fn parse_days(word: &str) -> Result<[bool; 7], String> {
    if word.eq_ignore_ascii_case("daily") {
        return Ok([true; 7]);
    }
    let mut days = [false; 7];
    for item in word.split(',') {
        if item.is_empty() {
            return Err(format!("the day list \"{word}\" has an empty entry"));
        }
        match item.split_once('-') {
            None => days[parse_day(item)?] = true,
            Some((first, last)) => {
                let (first, last) = (parse_day(first)?, parse_day(last)?);
                let mut day = first;
                loop {
                    days[day] = true;
                    if day == last {
                        break;
                    }
                    day = (day + 1) % 7;
                }
            }
        }
    }
    Ok(days)
}

/// `HH:MM`, in seconds from midnight; `24:00` only when `is_end`.
fn parse_time(word: &str, is_end: bool) -> Result<u32, String> {
    let bad = || format!("\"{word}\" is not a time (write HH:MM, 00:00 to 24:00)");
    let (hours, minutes) = word.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours) || minutes.len() != 2 || !digits(minutes) {
        return Err(bad());
    }
    let hours: u32 = hours.parse().map_err(|_| bad())?;
    let minutes: u32 = minutes.parse().map_err(|_| bad())?;
    if minutes > 59 {
        return Err(format!("\"{word}\": minutes go up to 59"));
    }
    match hours {
        0..=23 => Ok(hours * 3600 + minutes * 60),
        24 if minutes == 0 && is_end => Ok(DAY_SECONDS),
        24 if minutes == 0 => Err(format!("\"{word}\" can only end a range; start at 00:00")),
        _ => Err(format!(
            "\"{word}\": hours go up to 23 (24:00 may end a range)"
        )),
    }
}

fn parse_time_range(word: &str) -> Result<(u32, u32), String> {
    let Some((start, end)) = word.split_once('-') else {
        return Err(format!(
            "\"{word}\" is not a time range (write HH:MM-HH:MM)"
        ));
    };
    let (start, end) = (parse_time(start, false)?, parse_time(end, true)?);
    if start == end {
        return Err(format!(
            "\"{word}\" starts and ends at the same time (leave the hours out for the whole day)"
        ));
    }
    // 24:00 as an end is midnight; a range that ends there does not wrap.
    Ok((start, end))
}

/// The owner's schedule: lending is allowed when any rule matches; an empty schedule
/// allows any time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    rules: Vec<Rule>,
}

impl Schedule {
    /// Parses every rule; the first bad one is reported with what is wrong.
    pub fn parse(rules: &[String]) -> Result<Schedule, String> {
        let rules = rules
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<Rule>, String>>()?;
        Ok(Schedule { rules })
    }

    /// The rules, as parsed.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether `local` (the owner's local wall-clock time) is inside the schedule;
    /// `None` when the schedule is empty.
    pub fn allows(&self, local: NaiveDateTime) -> Option<bool> {
        if self.rules.is_empty() {
            return None;
        }
        let day = local.weekday().num_days_from_monday() as usize;
        let second = local.num_seconds_from_midnight();
        Some(self.rules.iter().any(|r| r.allows(day, second)))
    }

    /// When the state `allows` gives at `local` next changes, if that is within a week
    /// (for "waiting: outside your schedule until 22:00"). `None` for an empty schedule
    /// or one that never changes.
    pub fn next_change(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        let now = self.allows(local)?;
        let horizon = local + Duration::days(7);
        // The state can only change where some rule starts or ends; try each such moment
        // over the coming week, in order.
        let mut moments: Vec<NaiveDateTime> = (0..=8)
            .flat_map(|offset| {
                let midnight = local.date().and_time(NaiveTime::MIN) + Duration::days(offset);
                self.rules.iter().flat_map(move |r| {
                    [r.start, r.end].map(|s| midnight + Duration::seconds(i64::from(s)))
                })
            })
            .filter(|m| *m > local && *m <= horizon)
            .collect();
        moments.sort_unstable();
        moments.dedup();
        moments.into_iter().find(|m| self.allows(*m) != Some(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    /// 2026-11-23 is a Monday.
    fn at(day: u32, hour: u32, minute: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_hms_opt(hour, minute, 0)
            .unwrap()
    }

    fn schedule(rules: &[&str]) -> Schedule {
        Schedule::parse(&rules.iter().map(|r| r.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parses_valid_rules() {
        let cases = [
            ("Mon-Fri 22:00-07:00", "Mon,Tue,Wed,Thu,Fri 22:00-07:00"),
            ("Sat,Sun", "Sat,Sun"),
            ("daily 01:00-06:30", "daily 01:00-06:30"),
            ("DAILY", "daily"),
            ("Mon 09:00-17:00", "Mon 09:00-17:00"),
            ("mon-sun", "daily"),
            ("Fri-Mon", "Mon,Fri,Sat,Sun"),
            ("Saturday,sunday 8:00-24:00", "Sat,Sun 08:00-24:00"),
            ("Tue,Thu-Fri 00:00-24:00", "Tue,Thu,Fri"),
            ("  Wed   23:59-00:01  ", "Wed 23:59-00:01"),
        ];
        for (text, shown) in cases {
            let rule: Rule = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(rule.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn every_error_says_what_is_wrong_and_shows_an_example() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("22:00-07:00", "starts with its days"),
            ("Mon-Fri 22:00-07:00 extra", "unexpected \"extra\""),
            ("Mon - Fri", "unexpected \"Fri\""),
            ("Mo", "\"Mo\" is not a day"),
            ("Mon,,Tue", "empty entry"),
            ("Mon-Funday", "\"Funday\" is not a day"),
            ("weekdays", "\"weekdays\" is not a day"),
            ("Mon 22:00", "not a time range"),
            ("Mon 22-07", "\"22\" is not a time"),
            ("Mon 25:00-07:00", "hours go up to 23"),
            ("Mon 22:60-07:00", "minutes go up to 59"),
            ("Mon 22:5-07:00", "\"22:5\" is not a time"),
            ("Mon 24:00-07:00", "can only end a range"),
            ("Mon 07:00-24:30", "24:00 may end a range"),
            ("Mon 07:00-07:00", "same time"),
            ("Mon +7:00-08:00", "\"+7:00\" is not a time"),
            ("Mon 007:00-08:00", "\"007:00\" is not a time"),
        ];
        for (text, expected) in cases {
            let err = text.parse::<Rule>().unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(
                err.contains("e.g. \"Mon-Fri 22:00-07:00\""),
                "{text:?}: {err}"
            );
        }
        let rules = vec!["Sat,Sun".to_string(), "Mon 25:00-26:00".to_string()];
        let err = Schedule::parse(&rules).unwrap_err();
        assert!(err.contains("Mon 25:00-26:00"), "{err}");
    }

    #[test]
    fn matches_days_and_hours_including_wraps_past_midnight() {
        let weeknights = schedule(&["Mon-Fri 22:00-07:00"]);
        let weekend = schedule(&["Sat,Sun"]);
        let friday_late = schedule(&["Fri 22:00-02:00"]);
        let to_midnight = schedule(&["Sun 20:00-24:00"]);
        let cases = [
            // (schedule, day of November 2026, hour, minute, allowed)
            (&weeknights, 23, 22, 0, true), // Monday 22:00: the start is inside
            (&weeknights, 23, 21, 59, false), // Monday 21:59
            (&weeknights, 24, 6, 59, true), // Tuesday early, after Monday night
            (&weeknights, 24, 7, 0, false), // the end is outside
            (&weeknights, 23, 3, 0, false), // Monday early: Sunday night is not listed
            (&weeknights, 28, 3, 0, true),  // Saturday early: after Friday night
            (&weeknights, 28, 22, 30, false), // Saturday night is not listed
            (&weekend, 28, 0, 0, true),
            (&weekend, 29, 23, 59, true),
            (&weekend, 30, 0, 0, false),
            (&friday_late, 27, 23, 0, true),
            (&friday_late, 28, 1, 0, true), // Saturday 01:00
            (&friday_late, 28, 2, 0, false),
            (&friday_late, 27, 1, 0, false), // Friday 01:00: Thursday is not listed
            (&to_midnight, 29, 23, 59, true),
            (&to_midnight, 30, 0, 0, false), // 24:00 ends, it does not wrap
        ];
        for (schedule, day, hour, minute, allowed) in cases {
            assert_eq!(
                schedule.allows(at(day, hour, minute)),
                Some(allowed),
                "{:?} on the {day} at {hour:02}:{minute:02}",
                schedule.rules()
            );
        }
    }

    #[test]
    fn any_rule_allows_and_an_empty_schedule_has_no_opinion() {
        let both = schedule(&["Mon 09:00-10:00", "Mon 12:00-13:00"]);
        assert_eq!(both.allows(at(23, 9, 30)), Some(true));
        assert_eq!(both.allows(at(23, 12, 30)), Some(true));
        assert_eq!(both.allows(at(23, 11, 0)), Some(false));

        let empty = Schedule::parse(&[]).unwrap();
        assert_eq!(empty.allows(at(23, 11, 0)), None);
        assert_eq!(empty.next_change(at(23, 11, 0)), None);
    }

    #[test]
    fn says_when_the_state_next_changes() {
        let weeknights = schedule(&["Mon-Fri 22:00-07:00"]);
        // Monday afternoon: outside until 22:00.
        assert_eq!(weeknights.next_change(at(23, 15, 0)), Some(at(23, 22, 0)));
        // Monday 23:00: inside until Tuesday 07:00.
        assert_eq!(weeknights.next_change(at(23, 23, 0)), Some(at(24, 7, 0)));
        // Exactly at a boundary: the next one.
        assert_eq!(weeknights.next_change(at(23, 22, 0)), Some(at(24, 7, 0)));
        // Saturday 08:00: outside until Monday 22:00.
        assert_eq!(weeknights.next_change(at(28, 8, 0)), Some(at(30, 22, 0)));

        // Touching rules are one stretch: Sat 00:00 to Mon 00:00.
        let weekend = schedule(&["Sat", "Sun"]);
        assert_eq!(weekend.next_change(at(28, 12, 0)), Some(at(30, 0, 0)));

        // A rule for one day a week: the change is up to a week away.
        let mondays = schedule(&["Mon 09:00-10:00"]);
        assert_eq!(mondays.next_change(at(23, 10, 0)), Some(at(30, 9, 0)));
        // A schedule that always allows never changes.
        assert_eq!(schedule(&["daily"]).next_change(at(23, 10, 0)), None);
        assert_eq!(
            schedule(&["daily 00:00-24:00"]).next_change(at(23, 10, 0)),
            None
        );
    }
}
