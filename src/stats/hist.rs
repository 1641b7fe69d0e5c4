//! A fixed-size log-scale histogram of milliseconds: four bins per doubling from 1 ms to about
//! twelve minutes, so any quantile it reports is within one bin (a factor of 2^(1/4), 19%) of the
//! true value, and within a few percent once interpolated over a spread of samples.

/// Bins: `[0, 1)` ms, then `[2^((i-1)/4), 2^(i/4))` ms, the last one open-ended.
pub(crate) const BINS: usize = 80;

/// Bins per doubling.
const PER_OCTAVE: f64 = 4.0;

/// Counts of values per bin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hist {
    counts: [u32; BINS],
}

impl Default for Hist {
    fn default() -> Self {
        Self { counts: [0; BINS] }
    }
}

/// The bin of `ms` (NaN and negatives go to the first).
fn bin(ms: f64) -> usize {
    if ms.is_nan() || ms < 1.0 {
        return 0;
    }
    let i = (ms.log2() * PER_OCTAVE).floor() as usize + 1;
    i.min(BINS - 1)
}

/// The lower and upper bound of bin `i`, in milliseconds.
fn bounds(i: usize) -> (f64, f64) {
    if i == 0 {
        (0.0, 1.0)
    } else {
        let lo = ((i - 1) as f64 / PER_OCTAVE).exp2();
        let hi = (i as f64 / PER_OCTAVE).exp2();
        (lo, hi)
    }
}

impl Hist {
    /// Counts one value.
    pub(crate) fn add(&mut self, ms: f64) {
        let c = &mut self.counts[bin(ms)];
        *c = c.saturating_add(1);
    }

    /// Adds every count of `other`.
    pub(crate) fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// How many values were counted.
    pub(crate) fn len(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// The `q` quantile (0..=1) in milliseconds, interpolated geometrically inside its bin;
    /// `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            let c = u64::from(c);
            if c == 0 {
                continue;
            }
            if seen + c >= rank {
                let (lo, hi) = bounds(i);
                if i == BINS - 1 {
                    return Some(lo);
                }
                // Where the rank falls among this bin's values, spread evenly (in log space).
                let f = (rank - seen) as f64 / c as f64;
                return Some(if i == 0 {
                    lo + (hi - lo) * f
                } else {
                    lo * (hi / lo).powf(f)
                });
            }
            seen += c;
        }
        None
    }

    /// Forgets every count.
    pub(crate) fn clear(&mut self) {
        self.counts = [0; BINS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_the_range_in_order() {
        assert_eq!(bin(0.0), 0);
        assert_eq!(bin(0.99), 0);
        assert_eq!(bin(f64::NAN), 0);
        assert_eq!(bin(-3.0), 0);
        assert_eq!(bin(1.0), 1);
        assert_eq!(bin(2.0), 5);
        assert_eq!(bin(1e12), BINS - 1);
        let mut last = 0;
        for ms in 1..200_000 {
            let b = bin(ms as f64);
            assert!(b >= last, "{ms}");
            let (lo, hi) = bounds(b);
            assert!(
                b == BINS - 1 || (lo <= ms as f64 && (ms as f64) < hi * 1.000_001),
                "{ms} in {lo}..{hi}"
            );
            last = b;
        }
    }

    #[test]
    fn quantiles_of_a_spread_are_close() {
        let mut h = Hist::default();
        for ms in 1..=1000 {
            h.add(ms as f64);
        }
        assert_eq!(h.len(), 1000);
        for (q, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = h.quantile(q).unwrap();
            assert!((got - want).abs() / want < 0.08, "p{q}: {got} vs {want}");
        }
    }

    #[test]
    fn one_value_is_reported_within_its_bin() {
        let mut h = Hist::default();
        h.add(250.0);
        let got = h.quantile(0.99).unwrap();
        assert!((got / 250.0 - 1.0).abs() < 0.19, "{got}");
        assert_eq!(Hist::default().quantile(0.5), None);
    }

    #[test]
    fn merge_adds_and_clear_forgets() {
        let mut a = Hist::default();
        let mut b = Hist::default();
        a.add(10.0);
        b.add(1000.0);
        b.add(1000.0);
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert!(a.quantile(0.9).unwrap() > 800.0);
        a.clear();
        assert_eq!(a.len(), 0);
    }
}
