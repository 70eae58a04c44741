//! Plots for bench reports: small SVG charts with no dependencies.
//!
//! Two kinds are enough for the suite: a line chart (latency CDFs, sweeps;
//! linear or log axes) and a horizontal bar chart (throughput per
//! forwarder). Every chart is a standalone SVG document that browsers,
//! GitHub's Markdown view and image viewers show as is. Values that cannot
//! be drawn (NaN, infinities, non-positive values on a log axis) are left
//! out, never drawn at a made-up place.

use std::fmt::Write;

const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 210.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 56.0;
const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Linear, from 0 when every value is non-negative.
    Linear,
    /// Base-10 logarithmic, whole decades.
    Log,
    /// Percentiles (values in 0..1) spaced by their nines, as HdrHistogram
    /// plots latency: 0%, 90%, 99%, 99.9% are equally far apart, so the tail
    /// gets as much room as the median.
    Nines,
}

/// One axis: its title and scale.
#[derive(Debug, Clone)]
pub struct Axis {
    /// Title, with the unit.
    pub title: String,
    /// Scale.
    pub scale: Scale,
}

impl Axis {
    /// A linear axis.
    pub fn linear(title: &str) -> Axis {
        Axis { title: title.into(), scale: Scale::Linear }
    }
    /// A logarithmic axis.
    pub fn log(title: &str) -> Axis {
        Axis { title: title.into(), scale: Scale::Log }
    }
    /// A percentile axis spaced by nines.
    pub fn nines(title: &str) -> Axis {
        Axis { title: title.into(), scale: Scale::Nines }
    }
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points `(x, y)`, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// Escapes text for SVG.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// A compact number: 1.5M, 350k, 12, 0.25.
pub fn si(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    let (d, suffix) = if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / d;
    let s = if x.fract().abs() < 1e-9 {
        format!("{x:.0}")
    } else if (x * 10.0).fract().abs() < 1e-6 || x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    format!("{s}{suffix}")
}

/// A 1-2-5 step that splits `span` into about `n` parts.
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// The drawn range of an axis and its ticks.
#[derive(Debug, Clone, PartialEq)]
struct Range {
    lo: f64,
    hi: f64,
    scale: Scale,
    ticks: Vec<f64>,
}

impl Range {
    fn of(values: impl Iterator<Item = f64>, scale: Scale) -> Range {
        let vals: Vec<f64> = values
            .filter(|v| match scale {
                Scale::Linear => v.is_finite(),
                Scale::Log => v.is_finite() && *v > 0.0,
                Scale::Nines => (0.0..1.0).contains(v),
            })
            .collect();
        let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        match scale {
            Scale::Nines => {
                let k = vals.iter().map(|v| -(1.0 - v).log10()).fold(1.0f64, f64::max);
                let k = (k - 1e-9).ceil().clamp(1.0, 9.0);
                let ticks = (0..=k as i32).map(|i| 1.0 - 10f64.powi(-i)).collect();
                Range { lo: 0.0, hi: 1.0 - 10f64.powi(-(k as i32)), scale, ticks }
            }
            Scale::Log => {
                let (lo, hi) = if vals.is_empty() {
                    (0.0, 1.0)
                } else {
                    ((min.log10() + 1e-9).floor(), (max.log10() - 1e-9).ceil())
                };
                let hi = if hi <= lo { lo + 1.0 } else { hi };
                let ticks = (lo as i32..=hi as i32).map(|e| 10f64.powi(e)).collect();
                Range { lo: 10f64.powf(lo), hi: 10f64.powf(hi), scale, ticks }
            }
            Scale::Linear => {
                let (mut lo, mut hi) = if vals.is_empty() { (0.0, 1.0) } else { (min.min(0.0), max) };
                if hi <= lo {
                    hi = lo + 1.0;
                }
                let step = nice_step(hi - lo, 5.0);
                lo = (lo / step).floor() * step;
                hi = (hi / step).ceil() * step;
                let n = ((hi - lo) / step).round() as usize;
                let ticks = (0..=n).map(|i| lo + step * i as f64).collect();
                Range { lo, hi, scale, ticks }
            }
        }
    }

    /// Where `v` falls between 0 and 1 (`None`: not drawable).
    fn frac(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        match self.scale {
            Scale::Linear => Some((v - self.lo) / (self.hi - self.lo)),
            Scale::Log if v > 0.0 => Some((v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())),
            Scale::Log => None,
            Scale::Nines if (0.0..1.0).contains(&v) => Some(-(1.0 - v).log10() / -(1.0 - self.hi).log10()),
            Scale::Nines => None,
        }
    }

    /// A tick's label.
    fn label(&self, t: f64) -> String {
        match self.scale {
            Scale::Nines => {
                let pct = 100.0 * t;
                let digits = (-(1.0 - t).log10()).round().max(2.0) as usize - 2;
                format!("{pct:.digits$}%")
            }
            _ => si(t),
        }
    }
}

struct Doc {
    s: String,
    /// Left edge of the plot area.
    left: f64,
}

impl Doc {
    fn new(title: &str, left: f64) -> Doc {
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r##"<rect width="{W}" height="{H}" fill="#ffffff"/>"##);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            left + (W - left - RIGHT) / 2.0,
            escape(title)
        );
        Doc { s, left }
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, extra: &str, t: &str) {
        let _ = writeln!(self.s, r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}"{extra}>{}</text>"#, escape(t));
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str) {
        let _ = writeln!(self.s, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}"/>"#);
    }

    /// Grid, ticks and titles for both axes of the plot area.
    fn axes(&mut self, x: &Range, x_title: &str, y: Option<&Range>, y_title: &str) {
        let (x0, x1, y0, y1) = (self.left, W - RIGHT, H - BOTTOM, TOP);
        for &t in &x.ticks {
            if let Some(f) = x.frac(t) {
                let px = x0 + f * (x1 - x0);
                self.line(px, y0, px, y1, "#e4e4e4");
                self.text(px, y0 + 16.0, "middle", "", &x.label(t));
            }
        }
        if let Some(y) = y {
            for &t in &y.ticks {
                if let Some(f) = y.frac(t) {
                    let py = y0 - f * (y0 - y1);
                    self.line(x0, py, x1, py, "#e4e4e4");
                    self.text(x0 - 6.0, py + 4.0, "end", "", &y.label(t));
                }
            }
        }
        self.line(x0, y0, x1, y0, "#333333");
        self.line(x0, y0, x0, y1, "#333333");
        self.text(x0 + (x1 - x0) / 2.0, H - 14.0, "middle", "", x_title);
        let ym = y1 + (y0 - y1) / 2.0;
        self.text(18.0, ym, "middle", &format!(r#" transform="rotate(-90 18 {ym:.1})""#), y_title);
    }

    fn finish(mut self) -> String {
        self.s.push_str("</svg>\n");
        self.s
    }
}

/// A line chart of `series` (one colour each, with a legend).
pub fn line_chart(title: &str, x: &Axis, y: &Axis, series: &[Series]) -> String {
    let xr = Range::of(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)), x.scale);
    let yr = Range::of(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), y.scale);
    let mut d = Doc::new(title, LEFT);
    d.axes(&xr, &x.title, Some(&yr), &y.title);
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .filter_map(|&(px, py)| Some((xr.frac(px)?, yr.frac(py)?)))
            .map(|(fx, fy)| format!("{:.1},{:.1}", x0 + fx * (x1 - x0), y0 - fy * (y0 - y1)))
            .collect();
        if !pts.is_empty() {
            let _ = writeln!(
                d.s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
            if pts.len() <= 12 {
                for p in &pts {
                    let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                    let _ = writeln!(d.s, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>"#);
                }
            }
        }
        let ly = TOP + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            d.s,
            r#"<rect x="{:.1}" y="{:.1}" width="14" height="4" fill="{colour}"/>"#,
            W - RIGHT + 14.0,
            ly - 4.0
        );
        d.text(W - RIGHT + 34.0, ly + 2.0, "start", "", &s.label);
    }
    d.finish()
}

/// One bar of a bar chart.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Label on the left.
    pub label: String,
    /// Length.
    pub value: f64,
    /// Text after the bar (e.g. the ratio to a baseline).
    pub note: String,
}

/// A horizontal bar chart, one bar per row, in the order given.
pub fn bar_chart(title: &str, value_title: &str, bars: &[Bar]) -> String {
    let xr = Range::of(bars.iter().map(|b| b.value), Scale::Linear);
    let x0 = LEFT + 60.0; // room for the labels
    let mut d = Doc::new(title, x0);
    d.axes(&xr, value_title, None, "");
    let (x1, y0, y1) = (W - RIGHT, H - BOTTOM, TOP);
    let n = bars.len().max(1) as f64;
    let slot = (y0 - y1) / n;
    for (i, b) in bars.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let w = xr.frac(b.value).unwrap_or(0.0).clamp(0.0, 1.0) * (x1 - x0);
        let y = y1 + slot * i as f64 + slot * 0.15;
        let _ = writeln!(
            d.s,
            r#"<rect class="bar" x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{colour}"/>"#,
            slot * 0.7
        );
        d.text(x0 - 6.0, y + slot * 0.35 + 4.0, "end", "", &b.label);
        d.text(x0 + w + 6.0, y + slot * 0.35 + 4.0, "start", "", &format!("{} {}", si(b.value), b.note));
    }
    d.finish()
}

/// Latency-by-percentile points of sorted samples for a [`Scale::Nines`]
/// x axis: about `per_nine` points per nine, from the minimum (0%) to the
/// maximum (plotted at (n−1)/n).
pub fn percentile_points<T: Copy + Into<f64>>(sorted: &[T], per_nine: usize) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let max_nines = (n as f64).log10();
    let steps = ((max_nines * per_nine.max(1) as f64).ceil() as usize).max(1);
    let mut v: Vec<(f64, f64)> = Vec::with_capacity(steps + 1);
    let mut last = None;
    for j in 0..=steps {
        let p = 1.0 - 10f64.powf(-max_nines * j as f64 / steps as f64);
        let i = ((p * n as f64).floor() as usize).min(n - 1);
        if last != Some(i) {
            v.push((i as f64 / n as f64, sorted[i].into()));
            last = Some(i);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn well_formed(svg: &str) {
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(12.0), "12");
        assert_eq!(si(0.25), "0.25");
        assert_eq!(si(350_000.0), "350k");
        assert_eq!(si(1_500_000.0), "1.5M");
        assert_eq!(si(2_000_000_000.0), "2G");
        assert_eq!(si(469_123.0), "469.1k");
        assert_eq!(si(f64::NAN), "n/a");
    }

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        let r = Range::of([3.0, 467_000.0].into_iter(), Scale::Linear);
        assert_eq!(r.lo, 0.0);
        assert!(r.hi >= 467_000.0);
        assert_eq!(r.ticks, vec![0.0, 100_000.0, 200_000.0, 300_000.0, 400_000.0, 500_000.0]);
        let r = Range::of([40.0, 2300.0, -1.0, f64::NAN].into_iter(), Scale::Log);
        assert_eq!((r.lo, r.hi), (10.0, 10_000.0));
        assert_eq!(r.ticks.len(), 4);
        assert_eq!(r.frac(-1.0), None);
        assert_eq!(r.frac(100.0), Some(1.0 / 3.0));
        // Nothing to draw still gives a usable range.
        assert_eq!(Range::of(std::iter::empty(), Scale::Linear).ticks.len(), 6);
        assert_eq!(Range::of([5.0].into_iter(), Scale::Log).ticks, vec![1.0, 10.0]);
    }

    #[test]
    fn line_chart_draws_each_series_and_skips_what_cannot_be_drawn() {
        let series = vec![
            Series { label: "a <b> & c".into(), points: vec![(1.0, 0.1), (100.0, 0.5), (1000.0, 1.0)] },
            Series { label: "zeros".into(), points: vec![(0.0, 0.5), (f64::NAN, 0.2)] },
            Series { label: "empty".into(), points: vec![] },
        ];
        let svg = line_chart("CDF", &Axis::log("latency (us)"), &Axis::linear("fraction"), &series);
        well_formed(&svg);
        assert_eq!(svg.matches("<polyline").count(), 1, "only the drawable series");
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains(">zeros<") && svg.contains(">empty<"), "every series is in the legend");
    }

    #[test]
    fn bar_chart_has_one_bar_per_row() {
        let bars: Vec<Bar> = [("corecast", 469_000.0), ("ideal", 727_000.0), ("none", f64::NAN)]
            .iter()
            .map(|&(l, v)| Bar { label: l.into(), value: v, note: "(1.00x)".into() })
            .collect();
        let svg = bar_chart("pps per core", "egress packets/s per core", &bars);
        well_formed(&svg);
        assert_eq!(svg.matches("class=\"bar\"").count(), 3);
        well_formed(&bar_chart("nothing", "x", &[]));
    }

    #[test]
    fn percentiles_reach_the_tail() {
        let s: Vec<u32> = (1..=10_000).collect();
        let p = percentile_points(&s, 10);
        assert!(p.len() <= 41 && p.len() >= 30, "{}", p.len());
        assert_eq!(p[0], (0.0, 1.0));
        assert_eq!(*p.last().unwrap(), (0.9999, 10_000.0));
        assert!(p.iter().any(|&(q, _)| (0.98..0.995).contains(&q)), "points near p99");
        assert!(p.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert!(percentile_points::<u32>(&[], 10).is_empty());
        assert_eq!(percentile_points(&[2.5f64, 1e3], 1), vec![(0.0, 2.5), (0.5, 1e3)]);
        assert_eq!(percentile_points(&[7], 10), vec![(0.0, 7.0)]);
        let r = Range::of(p.iter().map(|q| q.0), Scale::Nines);
        assert_eq!(
            r.ticks.iter().map(|&t| r.label(t)).collect::<Vec<_>>(),
            vec!["0%", "90%", "99%", "99.9%", "99.99%"]
        );
        assert!((r.frac(0.99).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(r.frac(1.0), None);
    }
}
