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
        let data: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (f64::from(p.offered_per_second), value(p)))
            .collect();
        chart
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            data.into_iter()
                .map(|pt| Circle::new(pt, 3, color.filled())),
        )?;
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
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    let orange = RGBColor(230, 140, 0);
    type Series = (&'static str, RGBColor, fn(&OpenLoop) -> f64);
    let series: [Series; 2] = [
        ("accepted/s (202)", GREEN, |p| p.achieved_per_second),
        ("stored/s", orange, |p| p.throughput.stored_per_second),
    ];
    for (label, color, value) in series {
        let data: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (f64::from(p.offered_per_second), value(p)))
            .collect();
        chart
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            data.into_iter()
                .map(|pt| Circle::new(pt, 3, color.filled())),
        )?;
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
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(3)));
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
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
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
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], pink.stroke_width(1)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Issue 17's end-to-end p99 target, drawn for reference.
const TARGET_MS: f64 = 50.0;
