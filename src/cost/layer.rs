use std::sync::Arc;

use tower::Layer;

use super::{Cost, RateTable};
use crate::usage::UsageSink;

/// Applies [`Cost`] to a service.
#[derive(Clone, Debug)]
pub struct CostLayer {
    rates: Arc<RateTable>,
    sink: Option<UsageSink>,
}

impl CostLayer {
    /// Costs replies with `rates`; records go to `sink` when there is one.
    pub fn new(rates: Arc<RateTable>, sink: Option<UsageSink>) -> Self {
        Self { rates, sink }
    }
}

impl<S> Layer<S> for CostLayer {
    type Service = Cost<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cost::new(inner, self.rates.clone(), self.sink.clone())
    }
}
