//! Short human-readable durations for progress lines and summaries.

use std::time::Duration;

/// Formats a duration as `0.4s`, `12.3s` or `2m05s`, the precision people read at a glance.
pub fn format_duration(duration: Duration) -> String {
    let tenths = (duration.as_millis() + 50) / 100;
    if tenths < 600 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else {
        let secs = (duration.as_millis() + 500) / 1000;
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sub_minute_with_one_decimal_and_longer_as_minutes() {
        assert_eq!(format_duration(Duration::ZERO), "0.0s");
        assert_eq!(format_duration(Duration::from_millis(1249)), "1.2s");
        assert_eq!(format_duration(Duration::from_millis(1250)), "1.3s");
        assert_eq!(format_duration(Duration::from_millis(59_940)), "59.9s");
        assert_eq!(format_duration(Duration::from_millis(59_960)), "1m00s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
