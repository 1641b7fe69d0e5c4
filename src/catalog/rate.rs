//! The rate type: a model's list prices, USD per 1M tokens.

/// The date of the built-in list prices (LiteLLM's price table as published in August 2026;
/// cache-read and cache-write prices follow each provider's pricing page).
pub const RATES_DATE: &str = "2026-08";

/// One model's prices, USD per 1M tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Rate {
    /// Prompt tokens.
    pub input: f64,
    /// Completion tokens (reasoning tokens included).
    pub output: f64,
    /// Prompt tokens read from the provider's prompt cache, when it prices them apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Prompt tokens written to the provider's cache (Anthropic's 5-minute lifetime), when it
    /// prices them apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Prompt tokens written to the provider's cache for one hour, when priced apart from
    /// `cache_write`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<f64>,
}

impl Rate {
    /// A rate of `input` and `output` with no cache prices.
    pub const fn new(input: f64, output: f64) -> Self {
        Self {
            input,
            output,
            cached_input: None,
            cache_write: None,
            cache_write_1h: None,
        }
    }

    /// Parses `in/out[/cached_input[/cache_write[/cache_write_1h]]]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let nums: Vec<&str> = s.split('/').map(str::trim).collect();
        let num = |t: &str| -> Result<f64, String> {
            t.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("{t:?} is not a price (a number >= 0, USD per 1M tokens)"))
        };
        if !(2..=5).contains(&nums.len()) {
            return Err(format!(
                "{s:?} is not input/output[/cached_input[/cache_write[/cache_write_1h]]]"
            ));
        }
        let opt = |i: usize| nums.get(i).map(|t| num(t)).transpose();
        Ok(Self {
            input: num(nums[0])?,
            output: num(nums[1])?,
            cached_input: opt(2)?,
            cache_write: opt(3)?,
            cache_write_1h: opt(4)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_or_say_why() {
        assert!(Rate::parse("0.1/0.2").is_ok());
        assert!(Rate::parse("0.1").unwrap_err().contains("input/output"));
        assert!(
            Rate::parse("1/2/3/4/5/6")
                .unwrap_err()
                .contains("input/output")
        );
        assert!(Rate::parse("-1/2").unwrap_err().contains("price"));
        assert!(Rate::parse("x/2").is_err());
        let r = Rate::parse("3/15/0.3/3.75/6").unwrap();
        assert_eq!(
            (r.cached_input, r.cache_write, r.cache_write_1h),
            (Some(0.3), Some(3.75), Some(6.0))
        );
    }
}
