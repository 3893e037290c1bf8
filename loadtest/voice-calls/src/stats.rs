//! Percentile summaries of measured durations (sans-IO).

use serde::Serialize;

/// p50/p95/p99/max of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median (nearest rank).
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none. NaNs are ignored.
    #[must_use]
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        Some(Self {
            n: sorted.len(),
            p50: nearest_rank(&sorted, 50.0),
            p95: nearest_rank(&sorted, 95.0),
            p99: nearest_rank(&sorted, 99.0),
            max: sorted[sorted.len() - 1],
            mean,
        })
    }
}

/// The nearest-rank percentile of sorted, non-empty data: the smallest sample with at least
/// `p` % of the samples at or below it. Unlike interpolation it always reports a value that
/// was actually measured, which is what a latency table should show.
#[must_use]
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// `"p50 412 / p95 530 / p99 610 / max 640 ms (n=20)"`, or `"none"`.
#[must_use]
pub fn describe(summary: Option<&Summary>) -> String {
    match summary {
        Some(s) => format!(
            "p50 {:.0} / p95 {:.0} / p99 {:.0} / max {:.0} ms (n={})",
            s.p50, s.p95, s.p99, s.max, s.n
        ),
        None => "none".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let data: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&data).unwrap();
        assert_eq!((s.p50, s.p95, s.p99, s.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(s.n, 100);
        assert!((s.mean - 50.5).abs() < 1e-9);
    }

    #[test]
    fn order_does_not_matter_and_small_sets_report_measured_values() {
        let s = Summary::of(&[30.0, 10.0, 20.0]).unwrap();
        assert_eq!((s.p50, s.p95, s.p99, s.max), (20.0, 30.0, 30.0, 30.0));
        let one = Summary::of(&[7.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
    }

    #[test]
    fn empty_or_nan_only_data_has_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
        assert_eq!(describe(None), "none");
        let s = Summary::of(&[f64::NAN, 5.0]).unwrap();
        assert_eq!(s.n, 1);
    }
}
