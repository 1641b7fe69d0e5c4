//! The rate type: a model's list prices, USD per 1M tokens.

/// The date of the built-in prices (LiteLLM price snapshots).
pub const RATES_DATE: &str = "2026-08";

/// One model's prices, USD per 1M tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rate {
    /// Prompt tokens.
    pub input: f64,
    /// Completion tokens.
    pub output: f64,
    /// Prompt tokens read from the provider's prompt cache, when it prices them apart.
    pub cached_input: Option<f64>,
}

impl Rate {
    /// Parses `in/out[/cached]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let nums: Vec<&str> = s.split('/').map(str::trim).collect();
        let num = |t: &str| -> Result<f64, String> {
            t.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("{t:?} is not a price (a number >= 0, USD per 1M tokens)"))
        };
        match nums.as_slice() {
            [i, o] => Ok(Self {
                input: num(i)?,
                output: num(o)?,
                cached_input: None,
            }),
            [i, o, c] => Ok(Self {
                input: num(i)?,
                output: num(o)?,
                cached_input: Some(num(c)?),
            }),
            _ => Err(format!("{s:?} is not input/output[/cached_input]")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_or_say_why() {
        assert!(Rate::parse("0.1/0.2").is_ok());
        assert!(Rate::parse("0.1").unwrap_err().contains("input/output"));
        assert!(Rate::parse("-1/2").unwrap_err().contains("price"));
        assert!(Rate::parse("x/2").is_err());
    }
}
