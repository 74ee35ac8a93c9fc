//! Growth over time: which series grow steadily (leak suspects), which churn, which stepped once.
//!
//! # The verdict rule
//!
//! A series is the count (or the bytes) of one type, sampled at times `t` (seconds). It is
//! classified in this order:
//!
//! 1. **too-short** — fewer than [`MIN_SAMPLES`] samples: no verdict (eight samples are also the
//!    fewest with which a perfectly monotone series can pass the significance test below).
//! 2. **flat** — the range (max − min) is within the noise floor: `min_rise` (16 objects, or
//!    16 KiB for bytes) or 0.5 % of the largest value, whichever is larger.
//! 3. **growing** — a *trend*, not two endpoints:
//!    * the Mann–Kendall statistic (the number of rising pairs of samples minus the falling
//!      ones, ties accounted for) is significant at one-sided p < 0.001 (z ≥ [`Z_SIGNIFICANT`]),
//!    * the Theil–Sen slope (the median of the slopes between every pair of samples, which
//!      ignores outliers such as a census cut short) is positive and rises at least `min_rise`
//!      over the recording, and
//!    * both still hold after the single largest rise between two consecutive samples is taken
//!      out of the series. Growth that one jump explains is a **step** (a cache filled once, a
//!      lazy import, a batch loaded at startup), not a leak; growth in several jumps (a staircase)
//!      survives the removal and stays **growing**.
//!
//!    Jumps are looked for on a running median of three samples, so a single odd sample (a
//!    census cut short) and its recovery are not mistaken for a jump.
//! 4. **shrinking** — the same test in the falling direction.
//! 5. **step** also when there is no significant trend but one jump between two consecutive
//!    samples makes at least half the range and the rest of the series moves by at most a
//!    quarter of that jump.
//! 6. **churn** — everything else: the series moves by more than the noise floor but up and down
//!    with no significant monotone trend (objects allocated and freed in bursts).
//!
//! A type is a *leak suspect* when its count or its bytes are **growing** (see
//! [`TypeGrowth::suspect`]); bytes catch a container that keeps one identity and grows (a list
//! that is appended to forever).
//!
//! For long recordings both tests run on at most [`MAX_POINTS`] evenly spaced samples, which
//! keeps the pairwise statistics cheap (at most ~45 000 pairs per series).

use serde::Serialize;

/// Fewest samples for a verdict.
pub const MIN_SAMPLES: usize = 8;
/// One-sided p < 0.001 for the Mann–Kendall z score.
pub const Z_SIGNIFICANT: f64 = 3.09;
/// Samples used by the pairwise statistics (evenly spaced over the recording).
pub const MAX_POINTS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trend {
    TooShort,
    Flat,
    Growing,
    Step,
    Churn,
    Shrinking,
}

impl Trend {
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::TooShort => "too-short",
            Trend::Flat => "flat",
            Trend::Growing => "growing",
            Trend::Step => "step",
            Trend::Churn => "churn",
            Trend::Shrinking => "shrinking",
        }
    }
}

/// The noise floor of one kind of series.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Smallest change that counts, in the series' unit.
    pub min_rise: f64,
    /// Smallest change that counts, as a fraction of the largest value.
    pub rel_floor: f64,
}

pub const COUNT_THRESHOLDS: Thresholds = Thresholds {
    min_rise: 16.0,
    rel_floor: 0.005,
};

pub const BYTES_THRESHOLDS: Thresholds = Thresholds {
    min_rise: 16.0 * 1024.0,
    rel_floor: 0.005,
};

/// What the trend tests found for one series.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TrendFit {
    pub trend: Trend,
    /// Theil–Sen slope, units per second (0 when too short).
    pub slope_per_s: f64,
    /// Mann–Kendall z score (positive: rising).
    pub mk_z: f64,
    pub samples: usize,
}

/// Classify one series (see the module documentation for the rule).
pub fn classify(t: &[f64], y: &[f64], th: &Thresholds) -> TrendFit {
    let n = t.len().min(y.len());
    let (t, y) = (&t[..n], &y[..n]);
    let (pt, py) = spread(t, y, MAX_POINTS);
    let slope = theil_sen(&pt, &py).unwrap_or(0.0);
    let z = mann_kendall_z(&py);
    let fit = |trend| TrendFit {
        trend,
        slope_per_s: slope,
        mk_z: z,
        samples: n,
    };
    if n < MIN_SAMPLES {
        return fit(Trend::TooShort);
    }
    let (lo, hi) = y
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let floor = th.min_rise.max(th.rel_floor * hi.abs().max(lo.abs()));
    if hi - lo <= floor {
        return fit(Trend::Flat);
    }
    let span = t[n - 1] - t[0];
    let trending = |slope: f64, z: f64, sign: f64| {
        sign * z >= Z_SIGNIFICANT && sign * slope > 0.0 && sign * slope * span >= th.min_rise
    };
    // Jumps are judged on a running median of three, so that one odd sample (a census cut
    // short) and its recovery do not pass for a jump.
    let smooth = median_of_three(y);
    for (sign, trend) in [(1.0, Trend::Growing), (-1.0, Trend::Shrinking)] {
        if !trending(slope, z, sign) {
            continue;
        }
        // Does the trend survive without its biggest jump?
        let rest = without_largest_jump(&smooth, sign);
        let (rt, ry) = spread(t, &rest, MAX_POINTS);
        let rest_slope = theil_sen(&rt, &ry).unwrap_or(0.0);
        let rest_z = mann_kendall_z(&ry);
        return fit(if trending(rest_slope, rest_z, sign) {
            trend
        } else {
            Trend::Step
        });
    }
    // No trend: a clean step (one jump, little else) is still a step; the rest is churn.
    if is_clean_step(&smooth) {
        return fit(Trend::Step);
    }
    fit(Trend::Churn)
}

/// One jump between consecutive samples makes at least half the range, and what is left once
/// it is taken out moves by at most a quarter of it.
fn is_clean_step(y: &[f64]) -> bool {
    let Some(jump) = y
        .windows(2)
        .map(|w| w[1] - w[0])
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
    else {
        return false;
    };
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        hi - lo
    };
    let rest = without_largest_jump(y, jump.signum());
    jump.abs() >= 0.5 * range(y) && range(&rest) <= 0.25 * jump.abs()
}

/// Each sample replaced by the median of itself and its two neighbours (ends kept).
fn median_of_three(y: &[f64]) -> Vec<f64> {
    let mut out = y.to_vec();
    for i in 1..y.len().saturating_sub(1) {
        let mut w = [y[i - 1], y[i], y[i + 1]];
        w.sort_by(f64::total_cmp);
        out[i] = w[1];
    }
    out
}

/// The series with its largest move in direction `sign` between consecutive samples taken out
/// (every later sample shifted back by that move).
fn without_largest_jump(y: &[f64], sign: f64) -> Vec<f64> {
    let jump = y
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i + 1, sign * (w[1] - w[0])))
        .filter(|&(_, d)| d > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let mut out = y.to_vec();
    if let Some((at, d)) = jump {
        for v in &mut out[at..] {
            *v -= sign * d;
        }
    }
    out
}

/// At most `max` evenly spaced samples, first and last always kept.
fn spread(t: &[f64], y: &[f64], max: usize) -> (Vec<f64>, Vec<f64>) {
    let n = t.len().min(y.len());
    if n <= max || max < 2 {
        return (t[..n].to_vec(), y[..n].to_vec());
    }
    (0..max)
        .map(|k| {
            let i = (k * (n - 1) + (max - 1) / 2) / (max - 1);
            (t[i], y[i])
        })
        .unzip()
}

/// Theil–Sen estimator: the median of the slopes between every pair of samples.
pub fn theil_sen(t: &[f64], y: &[f64]) -> Option<f64> {
    let n = t.len().min(y.len());
    let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let dt = t[j] - t[i];
            if dt > 0.0 && dt.is_finite() {
                let s = (y[j] - y[i]) / dt;
                if s.is_finite() {
                    slopes.push(s);
                }
            }
        }
    }
    median(&mut slopes)
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    // Selection, not a full sort: tens of thousands of pairwise slopes per series.
    let (n, m) = (v.len(), v.len() / 2);
    let (below, &mut upper, _) = v.select_nth_unstable_by(m, f64::total_cmp);
    Some(if n % 2 == 1 {
        upper
    } else {
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    })
}

/// Mann–Kendall trend test: z score of S = #rising pairs − #falling pairs, with the variance
/// corrected for tied values and the usual continuity correction. 0 when it cannot be computed.
pub fn mann_kendall_z(y: &[f64]) -> f64 {
    let n = y.len();
    if n < 3 {
        return 0.0;
    }
    let mut s: i64 = 0;
    for i in 0..n {
        for j in i + 1..n {
            s += match y[j].partial_cmp(&y[i]) {
                Some(std::cmp::Ordering::Greater) => 1,
                Some(std::cmp::Ordering::Less) => -1,
                _ => 0,
            };
        }
    }
    let mut sorted = y.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut run = 1.0f64;
    for k in 1..=n {
        if k < n && sorted[k] == sorted[k - 1] {
            run += 1.0;
        } else {
            ties += run * (run - 1.0) * (2.0 * run + 5.0);
            run = 1.0;
        }
    }
    let nf = n as f64;
    let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - ties) / 18.0;
    if var <= 0.0 || s == 0 {
        return 0.0;
    }
    let s = s as f64;
    (s - s.signum()) / var.sqrt()
}

/// Smallest and largest value seen, kept exactly while a long timeline is thinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub min: u64,
    pub max: u64,
}

impl Extent {
    pub fn of(v: u64) -> Extent {
        Extent { min: v, max: v }
    }

    pub fn add(&mut self, v: u64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// How one type's objects changed over a recording.
#[derive(Debug, Clone, Serialize)]
pub struct TypeGrowth {
    #[serde(rename = "type")]
    pub name: String,
    pub count_first: u64,
    pub count_last: u64,
    pub count_delta: i64,
    pub count_min: u64,
    pub count_max: u64,
    pub bytes_first: u64,
    pub bytes_last: u64,
    pub bytes_delta: i64,
    pub bytes_min: u64,
    pub bytes_max: u64,
    /// Objects per second (Theil–Sen slope of the count).
    pub rate_per_s: f64,
    /// Bytes per second (Theil–Sen slope of the bytes).
    pub bytes_per_s: f64,
    /// Verdict on the count series.
    pub trend: Trend,
    /// Verdict on the bytes series.
    pub bytes_trend: Trend,
    /// Leak suspect: the count or the bytes grow steadily (see the module documentation).
    pub suspect: bool,
    /// Samples the verdict is based on.
    pub samples: usize,
}

impl TypeGrowth {
    /// Analyse one type from its samples (`t` in seconds). `count_extent` / `bytes_extent` are
    /// the exact extremes when the caller kept them (the series may have been thinned).
    pub fn analyse(
        name: &str,
        t: &[f64],
        counts: &[u64],
        bytes: &[u64],
        count_extent: Option<Extent>,
        bytes_extent: Option<Extent>,
    ) -> TypeGrowth {
        let as_f64 = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let count_fit = classify(t, &as_f64(counts), &COUNT_THRESHOLDS);
        let bytes_fit = classify(t, &as_f64(bytes), &BYTES_THRESHOLDS);
        let extent = |v: &[u64], known: Option<Extent>| {
            known.or_else(|| {
                let (&first, rest) = v.split_first()?;
                let mut e = Extent::of(first);
                rest.iter().for_each(|&x| e.add(x));
                Some(e)
            })
        };
        let ce = extent(counts, count_extent).unwrap_or(Extent::of(0));
        let be = extent(bytes, bytes_extent).unwrap_or(Extent::of(0));
        let first = |v: &[u64]| v.first().copied().unwrap_or(0);
        let last = |v: &[u64]| v.last().copied().unwrap_or(0);
        let delta = |v: &[u64]| (last(v) as i128 - first(v) as i128) as i64;
        TypeGrowth {
            name: name.to_string(),
            count_first: first(counts),
            count_last: last(counts),
            count_delta: delta(counts),
            count_min: ce.min,
            count_max: ce.max,
            bytes_first: first(bytes),
            bytes_last: last(bytes),
            bytes_delta: delta(bytes),
            bytes_min: be.min,
            bytes_max: be.max,
            rate_per_s: count_fit.slope_per_s,
            bytes_per_s: bytes_fit.slope_per_s,
            trend: count_fit.trend,
            bytes_trend: bytes_fit.trend,
            suspect: count_fit.trend == Trend::Growing || bytes_fit.trend == Trend::Growing,
            samples: count_fit.samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic pseudo-random sequence in [-1, 1) (no dependency, same every run).
    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    fn times(n: usize, dt: f64) -> Vec<f64> {
        (0..n).map(|i| i as f64 * dt).collect()
    }

    fn verdict(y: &[f64], dt: f64) -> TrendFit {
        classify(&times(y.len(), dt), y, &COUNT_THRESHOLDS)
    }

    #[test]
    fn steady_growth_is_growing_with_the_right_rate() {
        // 2000 objects/s sampled every 0.5 s, with jitter of ±150 objects.
        let y: Vec<f64> = noise(13, 1)
            .iter()
            .enumerate()
            .map(|(i, e)| 5000.0 + 1000.0 * i as f64 + 150.0 * e)
            .collect();
        let f = verdict(&y, 0.5);
        assert_eq!(f.trend, Trend::Growing, "{f:?}");
        assert!((f.slope_per_s - 2000.0).abs() < 200.0, "{f:?}");
    }

    #[test]
    fn growth_survives_an_outlier_sample() {
        // A census cut short reads one sample far too low: still a steady leak.
        let mut y: Vec<f64> = (0..12).map(|i| 1000.0 + 500.0 * i as f64).collect();
        y[6] = 200.0;
        let f = verdict(&y, 1.0);
        assert_eq!(f.trend, Trend::Growing, "{f:?}");
        assert!((f.slope_per_s - 500.0).abs() < 50.0, "{f:?}");
    }

    #[test]
    fn slow_staircase_is_growing() {
        // One object every 3 s sampled every second, over two minutes: mostly flat intervals,
        // but the growth keeps coming.
        let y: Vec<f64> = (0..120).map(|i| 300.0 + (i / 3) as f64).collect();
        assert_eq!(verdict(&y, 1.0).trend, Trend::Growing);
    }

    #[test]
    fn sawtooth_churn_is_churn() {
        // Bursts: build up 3000 objects over a few samples, free them all, again.
        let y: Vec<f64> = (0..14)
            .map(|i| 200.0 + [0.0, 1000.0, 2000.0, 3000.0][i % 4])
            .collect();
        assert_eq!(verdict(&y, 0.5).trend, Trend::Churn);
    }

    #[test]
    fn random_churn_is_churn() {
        for seed in 0..50 {
            let y: Vec<f64> = noise(13, seed)
                .iter()
                .map(|e| 3000.0 + 2500.0 * e)
                .collect();
            let f = verdict(&y, 0.5);
            assert_eq!(f.trend, Trend::Churn, "seed {seed}: {f:?}");
        }
    }

    #[test]
    fn one_off_step_is_a_step() {
        let y: Vec<f64> = (0..12)
            .map(|i| if i < 5 { 1000.0 } else { 9000.0 })
            .collect();
        assert_eq!(verdict(&y, 0.5).trend, Trend::Step);
        // A long recording makes a single step highly "significant": still a step.
        let y: Vec<f64> = (0..200)
            .map(|i| if i < 80 { 1000.0 } else { 1500.0 })
            .collect();
        assert_eq!(verdict(&y, 1.0).trend, Trend::Step);
    }

    #[test]
    fn step_with_small_wobble_is_a_step() {
        let e = noise(16, 7);
        let y: Vec<f64> = (0..16)
            .map(|i| if i < 8 { 1000.0 } else { 6000.0 } + 5.0 * e[i])
            .collect();
        assert_eq!(verdict(&y, 0.5).trend, Trend::Step);
    }

    #[test]
    fn flat_and_jitter_are_flat() {
        assert_eq!(verdict(&[4200.0; 12], 0.5).trend, Trend::Flat);
        let y: Vec<f64> = noise(30, 3).iter().map(|e| 4200.0 + 5.0 * e).collect();
        assert_eq!(verdict(&y, 0.5).trend, Trend::Flat);
        // A very slow leak too small to matter over the recording stays flat.
        let y: Vec<f64> = (0..10).map(|i| 4200.0 + i as f64).collect();
        assert_eq!(verdict(&y, 1.0).trend, Trend::Flat);
    }

    #[test]
    fn steady_decline_is_shrinking() {
        let y: Vec<f64> = (0..12).map(|i| 9000.0 - 300.0 * i as f64).collect();
        let f = verdict(&y, 1.0);
        assert_eq!(f.trend, Trend::Shrinking);
        assert!((f.slope_per_s + 300.0).abs() < 1.0);
    }

    #[test]
    fn too_few_samples_have_no_verdict() {
        let y: Vec<f64> = (0..7).map(|i| 1000.0 * i as f64).collect();
        assert_eq!(verdict(&y, 1.0).trend, Trend::TooShort);
    }

    #[test]
    fn long_series_are_thinned_not_truncated() {
        let y: Vec<f64> = (0..5000).map(|i| 10.0 * i as f64).collect();
        let f = verdict(&y, 1.0);
        assert_eq!(f.trend, Trend::Growing);
        assert_eq!(f.samples, 5000);
        assert!((f.slope_per_s - 10.0).abs() < 1e-9);
    }

    #[test]
    fn type_growth_flags_a_growing_container_by_bytes() {
        // One list that keeps growing: its count is flat, its bytes are not.
        let t = times(12, 1.0);
        let counts = vec![1u64; 12];
        let bytes: Vec<u64> = (0..12).map(|i| 56 + 80_000 * i).collect();
        let g = TypeGrowth::analyse("list", &t, &counts, &bytes, None, None);
        assert_eq!(g.trend, Trend::Flat);
        assert_eq!(g.bytes_trend, Trend::Growing);
        assert!(g.suspect);
        assert_eq!(g.bytes_delta, 880_000);
        assert_eq!((g.bytes_min, g.bytes_max), (56, 56 + 880_000));
    }

    #[test]
    fn statistics_match_hand_computation() {
        assert_eq!(theil_sen(&[0.0, 1.0, 2.0], &[0.0, 2.0, 10.0]), Some(5.0));
        // S = 3 for a strictly rising series of 3; var = 3*2*11/18; z = 2/sqrt(var).
        let z = mann_kendall_z(&[1.0, 2.0, 3.0]);
        assert!((z - 2.0 / (66.0f64 / 18.0).sqrt()).abs() < 1e-12);
        assert_eq!(mann_kendall_z(&[5.0; 6]), 0.0);
        assert_eq!(theil_sen(&[1.0], &[1.0]), None);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
    }
}
