//! Parsers of setting values, shared by the configuration and by the adapters that read
//! their own provider settings. Each error names the key and shows a valid value.

use std::time::Duration;

/// Parses milliseconds as a plain whole number.
pub fn parse_ms(key: &str, v: &str) -> Result<Duration, String> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("{key}={v:?} is not a duration in milliseconds; use a whole number such as {key}=30000"))
}

/// Parses a rate in 0..=1.
pub fn parse_rate(key: &str, v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "{key}={v:?} is not a rate; use a number between 0 and 1"
        )),
    }
}

/// Splits a comma list, dropping blanks.
pub fn parse_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
