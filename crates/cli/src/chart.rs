//! The latency-against-offered-rate chart of `orderflow bench`, as SVG.

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
