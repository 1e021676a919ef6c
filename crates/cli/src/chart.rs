//! The charts of `orderflow bench` against offered rate, as SVG: latency, and throughput with p99.

use std::path::Path;

use plotters::prelude::*;

use crate::BoxError;
use crate::bench::OpenLoop;

pub fn latency_chart(points: &[OpenLoop], path: &Path) -> Result<(), BoxError> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_rate = points
        .iter()
        .map(|p| p.offered_per_second)
        .max()
        .unwrap_or(1) as f64;
    let max_ms = points
        .iter()
        .map(|p| p.end_to_end.p99_ms.max(p.post_latency.p99_ms))
        .fold(1.0_f64, f64::max);
    // Log scale: sub-millisecond POSTs and multi-second backlogs belong on one chart.
    let min_ms = points
        .iter()
        .map(|p| p.post_latency.p50_ms.min(p.end_to_end.p50_ms))
        .filter(|v| *v > 0.0)
        .fold(max_ms, f64::min)
        .max(0.01);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "End-to-end and POST latency against offered rate",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0.0..max_rate * 1.1,
            (min_ms / 2.0..max_ms * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("offered orders/s")
        .y_desc("latency (ms, log scale)")
        .draw()?;
    type Series = (&'static str, RGBColor, fn(&OpenLoop) -> f64);
    let series: [Series; 4] = [
        ("end to end p50", BLUE, |p| p.end_to_end.p50_ms),
        ("end to end p99", RED, |p| p.end_to_end.p99_ms),
        ("POST p50", GREEN, |p| p.post_latency.p50_ms),
        ("POST p99", MAGENTA, |p| p.post_latency.p99_ms),
    ];
    for (label, color, value) in series {
        draw_line_series(&mut chart, points, label, color, value)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Orders/s (offered, accepted, stored, delivered) on the left axis and end-to-end p99 on
/// the right one, against offered rate: where delivered/s leaves the diagonal, p99 climbs.
pub fn throughput_chart(points: &[OpenLoop], path: &Path) -> Result<(), BoxError> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_rate = points
        .iter()
        .map(|p| f64::from(p.offered_per_second))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let max_per_second = points
        .iter()
        .flat_map(|p| {
            [
                p.achieved_per_second,
                p.throughput.stored_per_second,
                p.throughput.delivered_per_second,
            ]
        })
        .fold(max_rate, f64::max)
        * 1.05;
    let p99s: Vec<f64> = points
        .iter()
        .map(|p| p.end_to_end.p99_ms)
        .filter(|v| *v > 0.0)
        .collect();
    // Log scale, always showing the 50 ms target: a few ms and a backlog of seconds both fit.
    let max_ms = p99s.iter().copied().fold(TARGET_MS, f64::max) * 2.0;
    let min_ms = p99s.iter().copied().fold(TARGET_MS, f64::min).max(0.01) / 2.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput and end-to-end p99 against offered rate",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .right_y_label_area_size(64)
        .build_cartesian_2d(0.0..max_rate, 0.0..max_per_second)?
        .set_secondary_coord(0.0..max_rate, (min_ms..max_ms).log_scale());
    chart
        .configure_mesh()
        .x_desc("offered orders/s")
        .y_desc("orders/s")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE)
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("end-to-end p99 (ms, log scale)")
        .y_label_formatter(&|v| {
            if *v >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .draw()?;

    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (max_rate, max_rate)],
            6,
            6,
            grey.stroke_width(1),
        ))?
        .label("offered (the diagonal)")
        .legend(legend_line(grey.stroke_width(1)));
    let orange = RGBColor(230, 140, 0);
    type Series = (&'static str, RGBColor, fn(&OpenLoop) -> f64);
    let series: [Series; 2] = [
        ("accepted/s (202)", GREEN, |p| p.achieved_per_second),
        ("stored/s", orange, |p| p.throughput.stored_per_second),
    ];
    for (label, color, value) in series {
        draw_line_series(&mut chart, points, label, color, value)?;
    }
    let delivered: Vec<(f64, f64, bool)> = points
        .iter()
        .map(|p| {
            (
                f64::from(p.offered_per_second),
                p.throughput.delivered_per_second,
                p.throughput.kept_up,
            )
        })
        .collect();
    chart
        .draw_series(LineSeries::new(
            delivered.iter().map(|(x, y, _)| (*x, *y)),
            BLUE.stroke_width(3),
        ))?
        .label("delivered/s (dot: kept up; cross: did not)")
        .legend(legend_line(BLUE.stroke_width(3)));
    chart.draw_series(
        delivered
            .iter()
            .filter(|d| d.2)
            .map(|(x, y, _)| Circle::new((*x, *y), 5, BLUE.filled())),
    )?;
    chart.draw_series(
        delivered
            .iter()
            .filter(|d| !d.2)
            .map(|(x, y, _)| Cross::new((*x, *y), 7, BLUE.stroke_width(3))),
    )?;

    let p99: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.end_to_end.p99_ms > 0.0)
        .map(|p| (f64::from(p.offered_per_second), p.end_to_end.p99_ms))
        .collect();
    chart
        .draw_secondary_series(LineSeries::new(p99.clone(), RED.stroke_width(2)))?
        .label("end-to-end p99 (right axis)")
        .legend(legend_line(RED.stroke_width(2)));
    chart.draw_secondary_series(
        p99.into_iter()
            .map(|pt| TriangleMarker::new(pt, 5, RED.filled())),
    )?;
    let pink = RGBColor(240, 120, 120);
    chart
        .draw_secondary_series(DashedLineSeries::new(
            [(0.0, TARGET_MS), (max_rate, TARGET_MS)],
            4,
            4,
            pink.stroke_width(1),
        ))?
        .label("p99 target, 50 ms (right axis)")
        .legend(legend_line(pink.stroke_width(1)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Draws `value` of each point against its offered rate: a line, labelled in the legend,
/// with a dot at each rate. `CT` is the chart's coordinates: offered orders/s across on
/// both, and up log milliseconds on one, linear orders/s on the other.
fn draw_line_series<CT>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, CT>,
    points: &[OpenLoop],
    label: &str,
    color: RGBColor,
    value: fn(&OpenLoop) -> f64,
) -> Result<(), BoxError>
where
    CT: CoordTranslate<From = (f64, f64)>,
{
    let data: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (f64::from(p.offered_per_second), value(p)))
        .collect();
    chart
        .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
        .label(label)
        .legend(legend_line(color.stroke_width(2)));
    chart.draw_series(
        data.into_iter()
            .map(|pt| Circle::new(pt, 3, color.filled())),
    )?;
    Ok(())
}

/// A legend's sample of a series: a short line in its style, at a point in pixels.
fn legend_line(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style)
}

/// Issue 17's end-to-end p99 target, drawn for reference.
const TARGET_MS: f64 = 50.0;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::bench::{Latency, Throughput};

    fn latency(p50_ms: f64, p99_ms: f64) -> Latency {
        Latency {
            count: 100,
            p50_ms,
            p99_ms,
            max_ms: p99_ms * 2.0,
        }
    }

    /// Three phases: the pipeline keeps up at 250 and 500 orders/s, not at 1,000.
    fn points() -> Vec<OpenLoop> {
        [
            (250, 4.0, 0.8, true),
            (500, 9.0, 1.1, true),
            (1_000, 900.0, 2.5, false),
        ]
        .into_iter()
        .map(|(rate, e2e_p99, post_p99, kept_up)| OpenLoop {
            offered_per_second: rate,
            sent: rate as usize,
            accepted: rate as usize,
            achieved_per_second: f64::from(rate),
            post_latency: latency(post_p99 / 2.0, post_p99),
            end_to_end: latency(e2e_p99 / 3.0, e2e_p99),
            undelivered: 0,
            backlog_at_start: 0,
            throughput: Throughput {
                stored: rate as usize,
                stored_per_second: f64::from(rate) * 0.99,
                delivered: rate as usize,
                delivered_per_second: f64::from(rate) * if kept_up { 0.98 } else { 0.7 },
                drain_lag_ms: Some(10.0),
                every_order_delivered: true,
                kept_up,
            },
            slowest: None,
            slowest_journeys: Vec::new(),
        })
        .collect()
    }

    /// An SVG's elements, each as its name and attributes, and its text nodes.
    struct Svg {
        elements: Vec<(String, HashMap<String, String>)>,
        texts: Vec<String>,
    }

    impl Svg {
        /// Reads `path` as XML, failing on a malformed document.
        fn read(path: &Path) -> Svg {
            let text = std::fs::read_to_string(path).unwrap();
            let mut reader = quick_xml::Reader::from_str(&text);
            let (mut elements, mut texts) = (Vec::new(), Vec::new());
            loop {
                match reader.read_event() {
                    Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                        let attributes = e
                            .attributes()
                            .map(|a| {
                                let a = a.expect("a well-formed attribute");
                                (a.key.0.to_owned(), a.value.into_owned())
                            })
                            .collect();
                        elements.push((e.name().0.to_owned(), attributes));
                    }
                    Ok(quick_xml::events::Event::Text(t)) => {
                        texts.push(t.into_inner().trim().to_owned())
                    }
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(_) => {}
                    Err(e) => panic!("not well-formed XML: {e}"),
                }
            }
            assert_eq!(elements.first().map(|e| e.0.as_str()), Some("svg"));
            Svg { elements, texts }
        }

        fn has_text(&self, label: &str) -> bool {
            self.texts.iter().any(|t| t == label)
        }

        /// How many points each polyline stroked in `color` joins, in drawing order.
        fn lines(&self, color: RGBColor) -> Vec<usize> {
            self.elements
                .iter()
                .filter(|(name, a)| name == "polyline" && a["stroke"] == hex(color))
                .map(|(_, a)| a["points"].split_whitespace().count())
                .collect()
        }

        /// The radius of each circle filled with `color`.
        fn dots(&self, color: RGBColor) -> Vec<String> {
            self.elements
                .iter()
                .filter(|(name, a)| name == "circle" && a["fill"] == hex(color))
                .map(|(_, a)| a["r"].clone())
                .collect()
        }

        /// What [`draw_line_series`] draws: the label, the line through the three rates,
        /// its two-point legend sample, and a dot at each rate.
        fn assert_line_series(&self, label: &str, color: RGBColor) {
            assert!(self.has_text(label), "{label} in {:?}", self.texts);
            assert_eq!(self.lines(color), [3, 2], "{label}");
            assert_eq!(self.dots(color), ["3"; 3], "{label}");
        }
    }

    /// Draws `chart` of [`points`] into a temporary file, and reads it back.
    fn render(chart: fn(&[OpenLoop], &Path) -> Result<(), BoxError>) -> Svg {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        chart(&points(), &path).unwrap();
        Svg::read(&path)
    }

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    #[test]
    fn the_latency_chart_draws_each_series_as_a_labelled_line_with_a_dot_per_rate() {
        let svg = render(latency_chart);
        svg.assert_line_series("end to end p50", BLUE);
        svg.assert_line_series("end to end p99", RED);
        svg.assert_line_series("POST p50", GREEN);
        svg.assert_line_series("POST p99", MAGENTA);
        assert!(svg.has_text("latency (ms, log scale)"), "{:?}", svg.texts);
    }

    #[test]
    fn the_throughput_chart_draws_its_series_with_dots_and_marks_the_rates_not_kept_up() {
        let svg = render(throughput_chart);
        svg.assert_line_series("accepted/s (202)", GREEN);
        svg.assert_line_series("stored/s", RGBColor(230, 140, 0));
        // Delivered/s: a dot where the phase kept up (two of three), a cross where not.
        assert!(svg.has_text("delivered/s (dot: kept up; cross: did not)"));
        assert_eq!(svg.lines(BLUE), [3, 2]);
        assert_eq!(svg.dots(BLUE), ["5"; 2]);
        // p99 on the right axis, with the 50 ms target.
        assert!(svg.has_text("end-to-end p99 (right axis)"));
        assert!(svg.has_text("p99 target, 50 ms (right axis)"));
        assert_eq!(svg.lines(RED), [3, 2]);
        assert!(svg.has_text("offered (the diagonal)"));
    }
}
