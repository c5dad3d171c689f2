//! Charts drawn by the server as inline SVG (no JavaScript): counts over time as step lines, and
//! counts by label as horizontal bars. Pure: the data and the time come in, markup goes out;
//! every text is escaped by maud.

use maud::{Markup, html};

/// One line: a label and (time in epoch ms, value) points, sorted by time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(i64, f64)>,
}

/// Colour-blind-friendly (Okabe and Ito), cycled.
const PALETTE: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#000000",
];
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
const BAR_HEIGHT: f64 = 22.0;
const BAR_LABEL_WIDTH: f64 = 300.0;
const LABEL_CHARS: usize = 60;
const DAY_MS: i64 = 86_400_000;

/// The smallest of 1, 2, 5 × 10^k at or above `max` (at least 1), for the y axis.
pub fn nice_max(max: f64) -> f64 {
    if !max.is_finite() || max <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * magnitude)
}

/// (year, month, day) of a day number since 1970-01-01 (Howard Hinnant's civil_from_days).
pub fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A tick label: HH:MM (UTC) when the chart spans less than two days, else YYYY-MM-DD.
fn tick_label(ms: i64, span_ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    if span_ms < 2 * DAY_MS {
        let minutes = ms.rem_euclid(DAY_MS) / 60_000;
        format!("{:02}:{:02}", minutes / 60, minutes % 60)
    } else {
        let (y, m, d) = civil_date(days);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// A finite coordinate with one decimal (the SVG never sees NaN or infinity).
fn coord(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "0".into()
    }
}

fn finite(v: f64) -> f64 {
    if v.is_finite() { v.max(0.0) } else { 0.0 }
}

/// Counts over time as step lines (a count holds until its next point), with a y axis from 0
/// to a nice maximum, time ticks and a legend; "no data yet" when every series is empty.
pub fn line_chart(title: &str, y_label: &str, series: &[Series]) -> Markup {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut t0, mut t1, mut vmax) = (i64::MAX, i64::MIN, 0f64);
    for &(t, v) in points {
        t0 = t0.min(t);
        t1 = t1.max(t);
        vmax = vmax.max(finite(v));
    }
    if t0 > t1 {
        return html! { figure.chart { figcaption { (title) } p { "no data yet" } } };
    }
    let span = (t1 - t0).max(1);
    let ymax = nice_max(vmax);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: i64| LEFT + (t - t0) as f64 / span as f64 * plot_w;
    let y = |v: f64| TOP + plot_h - finite(v) / ymax * plot_h;
    let ticks = 4;
    html! {
        figure.chart {
            figcaption { (title) }
            svg width="100%" style="max-width:720px" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
                role="img" aria-label=(title) font-family="system-ui,sans-serif" font-size="11" {
                title { (title) }
                @for i in 0..=ticks {
                    @let v = ymax * f64::from(i) / f64::from(ticks);
                    line x1=(coord(LEFT)) x2=(coord(WIDTH - RIGHT)) y1=(coord(y(v))) y2=(coord(y(v))) stroke="#ddd" {}
                    text x=(coord(LEFT - 4.0)) y=(coord(y(v) + 4.0)) text-anchor="end" { (v) }
                }
                text x="4" y=(coord(TOP + 8.0)) { (y_label) }
                @for i in 0..=ticks {
                    @let t = t0 + span * i64::from(i) / i64::from(ticks);
                    text x=(coord(x(t))) y=(coord(HEIGHT - 8.0)) text-anchor="middle" { (tick_label(t, span)) }
                }
                @for (i, s) in series.iter().enumerate().filter(|(_, s)| !s.points.is_empty()) {
                    path fill="none" stroke-width="2" stroke=(PALETTE[i % PALETTE.len()])
                        d=(step_path(&s.points, &x, &y, t1)) {
                        title { (s.label) }
                    }
                }
            }
            ul.legend {
                @for (i, s) in series.iter().enumerate() {
                    li { span style={ "color:" (PALETTE[i % PALETTE.len()]) } { "■ " } (s.label) }
                }
            }
        }
    }
}

/// The SVG path of a step line through `points`, held to `end`.
fn step_path(
    points: &[(i64, f64)],
    x: &dyn Fn(i64) -> f64,
    y: &dyn Fn(f64) -> f64,
    end: i64,
) -> String {
    let mut d = String::new();
    for (i, &(t, v)) in points.iter().enumerate() {
        let cmd = if i == 0 { 'M' } else { 'H' };
        d.push_str(&format!("{cmd}{} ", coord(x(t))));
        if i == 0 {
            d.push_str(&format!("{} ", coord(y(v))));
        } else {
            d.push_str(&format!("V{} ", coord(y(v))));
        }
    }
    d.push_str(&format!("H{}", coord(x(end))));
    d
}

/// Counts by label as horizontal bars, in the order given, the count at each bar's end; long
/// labels are cut (the whole text in the bar's tooltip); "none" when there are no bars.
pub fn bar_chart(title: &str, bars: &[(String, i64)]) -> Markup {
    if bars.is_empty() {
        return html! { figure.chart { figcaption { (title) } p { "none" } } };
    }
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1) as f64;
    let height = TOP + BAR_HEIGHT * bars.len() as f64 + 4.0;
    let bar_w = WIDTH - BAR_LABEL_WIDTH - 60.0;
    html! {
        figure.chart {
            figcaption { (title) }
            svg width="100%" style="max-width:720px" viewBox={ "0 0 " (WIDTH) " " (coord(height)) }
                role="img" aria-label=(title) font-family="system-ui,sans-serif" font-size="11" {
                title { (title) }
                @for (i, (label, n)) in bars.iter().enumerate() {
                    @let top = TOP + BAR_HEIGHT * i as f64;
                    @let w = finite(*n as f64) / max * bar_w;
                    text x=(coord(BAR_LABEL_WIDTH - 6.0)) y=(coord(top + 14.0)) text-anchor="end" { (cut(label)) }
                    rect x=(coord(BAR_LABEL_WIDTH)) y=(coord(top + 3.0)) width=(coord(w)) height=(coord(BAR_HEIGHT - 6.0)) fill="#d55e00" {
                        title { (label) ": " (n) }
                    }
                    text x=(coord(BAR_LABEL_WIDTH + w + 4.0)) y=(coord(top + 14.0)) { (n) }
                }
            }
        }
    }
}

fn cut(label: &str) -> String {
    let label = if label.is_empty() {
        "(no reason given)"
    } else {
        label
    };
    if label.chars().count() > LABEL_CHARS {
        let mut short: String = label.chars().take(LABEL_CHARS - 1).collect();
        short.push('…');
        short
    } else {
        label.to_owned()
    }
}

/// Cumulative counts per key from (time, key) events: each key's series steps up by one per
/// event; keys in the order of their first event; with `start`, each series begins at 0 then.
pub fn cumulative(events: &[(i64, String)], start: Option<i64>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for (t, key) in events {
        let index = match out.iter().position(|s| &s.label == key) {
            Some(i) => i,
            None => {
                let mut points = Vec::new();
                if let Some(s) = start.filter(|s| s < t) {
                    points.push((s, 0.0));
                }
                out.push(Series {
                    label: key.clone(),
                    points,
                });
                out.len() - 1
            }
        };
        let series = &mut out[index];
        let next = series.points.last().map_or(0.0, |p| p.1) + 1.0;
        series.points.push((*t, next));
    }
    out
}

/// One series per key from (time, key, value) samples, keys sorted; beyond `max_series` keys,
/// those with the smallest latest value are summed into one series named "other".
pub fn snapshot_series(rows: &[(i64, String, i64)], max_series: usize) -> Vec<Series> {
    let mut keys: Vec<&String> = rows.iter().map(|(_, k, _)| k).collect();
    keys.sort();
    keys.dedup();
    let latest = |key: &String| {
        rows.iter()
            .filter(|(_, k, _)| k == key)
            .max_by_key(|(t, _, _)| *t)
            .map_or(0, |(_, _, v)| *v)
    };
    let mut ranked = keys.clone();
    ranked.sort_by_key(|k| std::cmp::Reverse(latest(k)));
    let kept: Vec<&String> = if keys.len() > max_series {
        ranked[..max_series.saturating_sub(1)].to_vec()
    } else {
        ranked
    };
    let mut out: Vec<Series> = keys
        .iter()
        .filter(|k| kept.contains(k))
        .map(|k| Series {
            label: (*k).clone(),
            points: rows
                .iter()
                .filter(|(_, key, _)| key == *k)
                .map(|(t, _, v)| (*t, *v as f64))
                .collect(),
        })
        .collect();
    if keys.len() > kept.len() {
        let mut other: Vec<(i64, f64)> = Vec::new();
        for (t, _, v) in rows.iter().filter(|(_, k, _)| !kept.contains(&k)) {
            match other.iter_mut().find(|(ot, _)| ot == t) {
                Some(p) => p.1 += *v as f64,
                None => other.push((*t, *v as f64)),
            }
        }
        other.sort_by_key(|p| p.0);
        out.push(Series {
            label: "other".into(),
            points: other,
        });
    }
    for s in &mut out {
        s.points.sort_by_key(|p| p.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_the_axis_to_nice_numbers() {
        for (max, nice) in [
            (0.0, 1.0),
            (3.0, 5.0),
            (7.0, 10.0),
            (11.0, 20.0),
            (120.0, 200.0),
        ] {
            assert_eq!(nice_max(max), nice, "{max}");
        }
        assert_eq!(nice_max(f64::NAN), 1.0);
    }

    #[test]
    fn converts_days_to_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(1_764_547_200_000 / DAY_MS), (2025, 12, 1));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(
            tick_label(1_764_547_200_000 + 3_660_000, 3_600_000),
            "01:01"
        );
        assert_eq!(tick_label(1_764_547_200_000, 10 * DAY_MS), "2025-12-01");
    }

    #[test]
    fn counts_events_per_key_in_order() {
        let events = [
            (10, "b".to_owned()),
            (20, "a".to_owned()),
            (30, "b".to_owned()),
        ];
        let series = cumulative(&events, Some(5));
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].label, "b");
        assert_eq!(series[0].points, [(5, 0.0), (10, 1.0), (30, 2.0)]);
        assert_eq!(series[1].points, [(5, 0.0), (20, 1.0)]);
    }

    #[test]
    fn folds_small_keys_into_other() {
        let rows = [
            (1, "1.0".to_owned(), 5),
            (1, "2.0".to_owned(), 1),
            (1, "3.0".to_owned(), 2),
            (2, "1.0".to_owned(), 1),
            (2, "2.0".to_owned(), 6),
            (2, "3.0".to_owned(), 3),
        ];
        let series = snapshot_series(&rows, 2);
        let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["2.0", "other"]);
        assert_eq!(series[1].points, [(1, 7.0), (2, 4.0)]);
        assert_eq!(snapshot_series(&rows, 8).len(), 3);
    }

    #[test]
    fn draws_escaped_finite_svg() {
        let series = [
            Series {
                label: "<script>x</script>".into(),
                points: vec![(1_000, 1.0), (2_000, f64::INFINITY), (2_000, 3.0)],
            },
            Series {
                label: "one point".into(),
                points: vec![(1_500, 0.0)],
            },
        ];
        let svg = line_chart("t", "devices", &series).into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let bars = bar_chart("f", &[("disk full".into(), 3), ("x".repeat(100), 1)]).into_string();
        assert_eq!(bars.matches("<rect").count(), 2);
        assert!(bars.contains('…'));
        assert!(
            line_chart("t", "d", &[])
                .into_string()
                .contains("no data yet")
        );
        assert!(bar_chart("f", &[]).into_string().contains("none"));
    }
}
