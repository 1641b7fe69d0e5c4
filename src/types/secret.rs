//! Credentials that never print.

/// A credential. Prints as `***`; only adapters call [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(std::sync::Arc<str>);

impl Secret {
    /// Wraps a key.
    pub fn new(s: impl Into<std::sync::Arc<str>>) -> Self {
        Self(s.into())
    }

    /// The key itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `Bearer <key>` as a sensitive header value.
    pub fn bearer(&self) -> Result<http::HeaderValue, crate::error::GatewayError> {
        self.header_value_with_prefix("Bearer ")
    }

    /// The key as a sensitive header value.
    pub fn header_value(&self) -> Result<http::HeaderValue, crate::error::GatewayError> {
        self.header_value_with_prefix("")
    }

    fn header_value_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<http::HeaderValue, crate::error::GatewayError> {
        let mut v = http::HeaderValue::try_from(format!("{prefix}{}", self.0)).map_err(|_| {
            crate::error::GatewayError::Internal(
                "a configured provider key holds characters not allowed in a header".into(),
            )
        })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
