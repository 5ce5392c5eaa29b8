//! Business hours: when the helpdesk works, for rules that count working
//! time ("escalate after 4 working hours").
//!
//! The calendar is one weekly window in a fixed UTC offset, with
//! holidays. A fixed offset keeps the arithmetic exact and dependency
//! free; a region with daylight saving sets the offset it wants.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::validation::ValidationErrors;

/// A working calendar, stored as the `business_hours` setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessCalendar {
    /// Minutes east of UTC (e.g. 60 for CET, -300 for EST).
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// Working weekdays, 1 = Monday ... 7 = Sunday.
    pub days: Vec<u32>,
    /// Start and end of the working day, "HH:MM" local time.
    pub start: String,
    pub end: String,
    /// Days off, "YYYY-MM-DD".
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
}

impl Default for BusinessCalendar {
    /// Monday to Friday, 09:00 to 17:00 UTC.
    fn default() -> Self {
        BusinessCalendar {
            utc_offset_minutes: 0,
            days: vec![1, 2, 3, 4, 5],
            start: "09:00".into(),
            end: "17:00".into(),
            holidays: Vec::new(),
        }
    }
}

fn minutes_of(value: &str) -> Option<u32> {
    let (h, m) = value.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

impl BusinessCalendar {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            errors.add("utc_offset_minutes", "must be between -840 and 840");
        }
        if self.days.is_empty() || self.days.iter().any(|d| !(1..=7).contains(d)) {
            errors.add("days", "list weekdays as 1 (Monday) to 7 (Sunday), at least one");
        }
        match (minutes_of(&self.start), minutes_of(&self.end)) {
            (Some(start), Some(end)) if start < end => {}
            (None, _) => errors.add("start", "use HH:MM"),
            (_, None) => errors.add("end", "use HH:MM"),
            _ => errors.add("end", "must be after the start"),
        }
        errors.into_result()
    }

    fn window(&self) -> (i64, i64) {
        // Validated calendars always parse; a broken stored one works no hours.
        (minutes_of(&self.start).unwrap_or(0) as i64, minutes_of(&self.end).unwrap_or(0) as i64)
    }

    fn offset(&self) -> Duration {
        Duration::minutes(self.utc_offset_minutes as i64)
    }

    fn is_working_day(&self, day: NaiveDate) -> bool {
        self.days.contains(&day.weekday().number_from_monday()) && !self.holidays.contains(&day)
    }

    /// Whether the helpdesk works at this instant.
    pub fn is_working_time(&self, at: DateTime<Utc>) -> bool {
        let local = at + self.offset();
        let (start, end) = self.window();
        let minute = (local.hour() * 60 + local.minute()) as i64;
        self.is_working_day(local.date_naive()) && minute >= start && minute < end
    }

    /// The working intervals of a local day, as UTC instants.
    fn day_interval(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.is_working_day(day) {
            return None;
        }
        let (start, end) = self.window();
        let midnight = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0)?) - self.offset();
        Some((midnight + Duration::minutes(start), midnight + Duration::minutes(end)))
    }

    /// The instant `seconds` of working time after `from`. Gives up (and
    /// returns `None`) after ten years without working time.
    pub fn add_working_seconds(&self, from: DateTime<Utc>, seconds: i64) -> Option<DateTime<Utc>> {
        let mut left = seconds.max(0);
        let mut day = (from + self.offset()).date_naive();
        for _ in 0..3660 {
            if let Some((start, end)) = self.day_interval(day) {
                let begin = start.max(from);
                if begin < end {
                    let available = (end - begin).num_seconds();
                    if left <= available {
                        return Some(begin + Duration::seconds(left));
                    }
                    left -= available;
                }
            }
            day = day.succ_opt()?;
        }
        None
    }

    /// The start of the working day `days` working days after `from`'s
    /// day, at the same local time of day clamped into working hours.
    pub fn add_working_days(&self, from: DateTime<Utc>, days: i64) -> Option<DateTime<Utc>> {
        let local = from + self.offset();
        let (start, end) = self.window();
        let minute = ((local.hour() * 60 + local.minute()) as i64).clamp(start, end);
        let mut day = local.date_naive();
        let mut left = days.max(0);
        for _ in 0..3660 {
            if left == 0 && self.is_working_day(day) {
                let midnight = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0)?) - self.offset();
                return Some(midnight + Duration::minutes(minute));
            }
            day = day.succ_opt()?;
            if self.is_working_day(day) {
                left -= 1;
                if left < 0 {
                    left = 0;
                }
            }
        }
        None
    }

    /// Working seconds between two instants (0 when `to` is not later);
    /// `None` when they are more than ten years apart (the walk is a day
    /// at a time, and scripts must stay cheap).
    pub fn working_seconds_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<i64> {
        if to <= from {
            return Some(0);
        }
        if to - from > Duration::days(3660) {
            return None;
        }
        let mut total = 0;
        let mut day = (from + self.offset()).date_naive();
        let last = (to + self.offset()).date_naive();
        while day <= last {
            if let Some((start, end)) = self.day_interval(day) {
                let (begin, finish) = (start.max(from), end.min(to));
                if begin < finish {
                    total += (finish - begin).num_seconds();
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("valid time").with_timezone(&Utc)
    }

    #[test]
    fn working_hours_skip_nights_and_weekends() {
        let calendar = BusinessCalendar::default();
        // Friday 15:00 + 4 working hours = Monday 11:00.
        let friday = at("2026-11-27T15:00:00Z");
        assert_eq!(calendar.add_working_seconds(friday, 4 * 3600), Some(at("2026-11-30T11:00:00Z")));
        // Saturday counts from Monday's start.
        assert_eq!(calendar.add_working_seconds(at("2026-11-28T12:00:00Z"), 3600), Some(at("2026-11-30T10:00:00Z")));
        assert_eq!(calendar.working_seconds_between(friday, at("2026-11-30T11:00:00Z")), Some(4 * 3600));
        assert_eq!(calendar.working_seconds_between(friday, at("2046-11-30T11:00:00Z")), None, "bounded");
        assert!(!calendar.is_working_time(at("2026-11-28T12:00:00Z")));
        assert!(calendar.is_working_time(at("2026-11-27T16:59:00Z")));
    }

    #[test]
    fn holidays_and_offsets_are_respected() {
        let calendar = BusinessCalendar {
            utc_offset_minutes: 60,
            holidays: vec![NaiveDate::from_ymd_opt(2026, 11, 30).expect("date")],
            ..BusinessCalendar::default()
        };
        // 09:00 CET is 08:00 UTC; Monday is a holiday, so Tuesday.
        assert_eq!(calendar.add_working_seconds(at("2026-11-28T12:00:00Z"), 0), Some(at("2026-12-01T08:00:00Z")));
        assert_eq!(calendar.add_working_days(at("2026-11-27T10:00:00Z"), 1), Some(at("2026-12-01T10:00:00Z")));
    }

    #[test]
    fn calendars_without_working_time_are_refused_or_give_up() {
        let broken = BusinessCalendar { start: "18:00".into(), end: "09:00".into(), ..BusinessCalendar::default() };
        assert!(broken.validate().is_err());
        let never = BusinessCalendar { days: vec![], ..BusinessCalendar::default() };
        assert!(never.validate().is_err());
        assert_eq!(never.add_working_seconds(at("2026-11-27T10:00:00Z"), 60), None);
    }
}
