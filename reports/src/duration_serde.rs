//! Serialises a `Duration` as fractional seconds, the unit report readers expect.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// Writes the duration as seconds (`1.25`).
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// Reads seconds back, rounding to whole nanoseconds so values written by `serialize` round-trip.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(deserializer)?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(D::Error::custom(format!(
            "duration must be a finite, non-negative number of seconds, got {secs}"
        )));
    }
    let nanos = (secs * 1e9).round();
    if nanos > u64::MAX as f64 {
        return Err(D::Error::custom(format!(
            "duration of {secs} seconds is too large"
        )));
    }
    Ok(Duration::from_nanos(nanos as u64))
}
