//! Pictures of a run (throughput over time, latency distribution) and of
//! a sweep (throughput against regions, batched and naive), as SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::opts::Mode;
use crate::report::Report;

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e}")
}

/// Throughput per second of the run above, latency percentiles below.
pub fn draw_run(path: &Path, r: &Report) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(320);

    let secs = r.timeline_ops_per_sec.len().max(1) as f64;
    let peak = r.timeline_ops_per_sec.iter().copied().fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!(
                "{:?}, {} regions, {} in flight ({:?}): ops/s over time",
                r.workload, r.regions, r.concurrency, r.mode
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..secs, 0.0..peak * 1.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("second of the run")
        .y_desc("ops/s")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            r.timeline_ops_per_sec
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64 + 0.5, *v)),
            &BLUE,
        ))
        .map_err(err)?;

    // Percentiles at even spacing: 50, 75, 90, 95, 99, 99.9, 99.99, max.
    let n = r.latency_ms.len().max(1) as f64;
    let worst = r.latency_ms.iter().map(|(_, ms)| *ms).fold(0.001, f64::max);
    let labels: Vec<String> = r.latency_ms.iter().map(|(p, _)| format!("p{p}")).collect();
    let mut chart = ChartBuilder::on(&bottom)
        .caption("latency (ms) by percentile", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..(n - 0.5), 0.0..worst * 1.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(labels.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("ms")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            r.latency_ms
                .iter()
                .enumerate()
                .map(|(i, (_, ms))| (i as f64, *ms)),
            &RED,
        ))
        .map_err(err)?;
    chart
        .draw_series(
            r.latency_ms
                .iter()
                .enumerate()
                .map(|(i, (_, ms))| Circle::new((i as f64, *ms), 3, RED.filled())),
        )
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Throughput against regions (log scale), one line per mode.
pub fn draw_sweep(path: &Path, rows: &[Report]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max_regions = rows.iter().map(|r| r.regions).max().unwrap_or(1) as f64;
    let peak = rows.iter().map(|r| r.ops_per_sec).fold(1.0, f64::max);
    let first = rows.first();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "ops/s against regions ({}, {} in flight, {} stores)",
                first.map_or_else(String::new, |r| format!("{:?}", r.workload)),
                first.map_or(0, |r| r.concurrency),
                first.map_or(0, |r| r.stores)
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((0.8..max_regions * 1.25).log_scale(), 0.0..peak * 1.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("regions")
        .y_desc("ops/s")
        .draw()
        .map_err(err)?;
    for (mode, color) in [(Mode::Batched, BLUE), (Mode::Naive, RED)] {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.mode == mode)
            .map(|r| (r.regions as f64, r.ops_per_sec))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), &color))
            .map_err(err)?
            .label(format!("{mode:?}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
