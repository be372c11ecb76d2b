//! The report's SVG charts (plotters): throughput against connections,
//! server CPU per message, and latency at the fixed rate.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::peers::Protocol;
use crate::report::Report;
use crate::scenarios::{Scenario, Workload};
use crate::stats::{median, values};

impl Report<'_> {
    /// Writes the three charts; one result per chart.
    pub(crate) fn charts(&self, out: &Path) -> Vec<Result<(), String>> {
        vec![
            self.throughput_chart(&out.join("throughput.svg")),
            self.cpu_chart(&out.join("cpu_per_message.svg")),
            self.latency_chart(&out.join("latency.svg")),
        ]
    }

    /// Median msg/s against connections, log-log: one panel per (size,
    /// depth) pair, one line per server, the same colour for a server in
    /// every panel (all 24 lines in one plot could not be read).
    fn throughput_chart(&self, path: &Path) -> Result<(), String> {
        let mut panels: BTreeMap<(usize, usize), Lines> = BTreeMap::new();
        for s in self.scenarios {
            let Workload::Throughput { conns, size, depth } = s.workload else {
                continue;
            };
            // Plain echo only: a TLS echo row is another comparison.
            if s.protocol != Protocol::Echo {
                continue;
            }
            for (peer_index, p) in self.peers.iter().enumerate() {
                let v = values(self.runs, &s.name, p.name, |m| Some(m.msgs_per_sec));
                if let Some(m) = median(&v) {
                    panels
                        .entry((size, depth))
                        .or_default()
                        .entry(peer_index)
                        .or_default()
                        .push((conns as f64, m));
                }
            }
        }
        if panels.is_empty() {
            return Ok(());
        }
        let columns = panels.len().min(2);
        let rows = panels.len().div_ceil(columns);
        let root = SVGBackend::new(path, (560 * columns as u32, 380 * rows as u32 + 40))
            .into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(
                "Echo throughput vs connections (median msg/s)",
                ("sans-serif", 24),
            )
            .map_err(|e| e.to_string())?;
        let areas = root.split_evenly((rows, columns));
        for (area, ((size, depth), lines)) in areas.iter().zip(panels) {
            let points: Vec<(f64, f64)> = lines.values().flatten().copied().collect();
            let (x0, x1) = bounds(points.iter().map(|p| p.0));
            let (y0, y1) = bounds(points.iter().map(|p| p.1));
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{size} B, depth {depth}"), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    (x0 / 2.0..x1 * 2.0).log_scale(),
                    (y0 / 1.5..y1 * 1.5).log_scale(),
                )
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("connections")
                .y_desc("msg/s")
                .draw()
                .map_err(|e| e.to_string())?;
            let lines = lines
                .into_iter()
                .map(|(peer_index, mut pts)| {
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                    (self.peers[peer_index].name, peer_index, pts)
                })
                .collect();
            draw_lines(&mut chart, lines, 3, SeriesLabelPosition::LowerRight)?;
        }
        root.present().map_err(|e| e.to_string())
    }

    /// Median server CPU µs per message for every scenario but idle (echo,
    /// HTTP and RESP alike), one category per scenario.
    fn cpu_chart(&self, path: &Path) -> Result<(), String> {
        let names: Vec<&Scenario> = self
            .scenarios
            .iter()
            .filter(|s| !matches!(s.workload, Workload::Idle { .. }))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let mut top: f64 = 0.0;
        let mut lines = Vec::new();
        for (peer_index, p) in self.peers.iter().enumerate() {
            let pts: Vec<(f64, f64)> = names
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let v = values(self.runs, &s.name, p.name, |m| {
                        (m.server_us_per_msg > 0.0).then_some(m.server_us_per_msg)
                    });
                    median(&v).map(|m| (i as f64, m))
                })
                .collect();
            top = pts.iter().map(|p| p.1).fold(top, f64::max);
            lines.push((p.name, peer_index, pts));
        }
        let root = SVGBackend::new(path, (1200, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let labels: Vec<String> = names.iter().map(|s| s.name.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Server CPU per message (median µs, lower is better)",
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..names.len() as f64 - 0.5, 0.0..top.max(1.0) * 1.15)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(names.len())
            .x_label_formatter(&|x: &f64| category_label(&labels, *x))
            .y_desc("server CPU µs per message")
            .draw()
            .map_err(|e| e.to_string())?;
        draw_lines(&mut chart, lines, 4, SeriesLabelPosition::MiddleRight)?;
        root.present().map_err(|e| e.to_string())
    }

    /// Latency percentiles of the fixed-rate scenarios, one line per server.
    fn latency_chart(&self, path: &Path) -> Result<(), String> {
        let Some(s) = self
            .scenarios
            .iter()
            .find(|s| matches!(s.workload, Workload::FixedRate { .. }))
        else {
            return Ok(());
        };
        let mut lines = Vec::new();
        for (peer_index, p) in self.peers.iter().enumerate() {
            let pts: Vec<(f64, f64)> = (0..5)
                .filter_map(|i| {
                    median(&values(self.runs, &s.name, p.name, |m| {
                        Some(m.latency_us[i])
                    }))
                    .filter(|v| *v > 0.0)
                    .map(|v| (i as f64, v))
                })
                .collect();
            if !pts.is_empty() {
                lines.push((p.name, peer_index, pts));
            }
        }
        let all: Vec<f64> = lines.iter().flat_map(|l| l.2.iter().map(|p| p.1)).collect();
        if all.is_empty() {
            return Ok(());
        }
        let (y0, y1) = bounds(all.into_iter());
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let names = ["p50", "p90", "p99", "p99.9", "max"];
        let rate = self.rates.get(&s.name).copied().unwrap_or(0.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Latency at a fixed {rate:.0} msg/s ({}), µs", s.name),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..4.5, (y0 / 2.0..y1 * 2.0).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x: &f64| category_label(&names, *x))
            .y_desc("latency µs (from intended send time)")
            .draw()
            .map_err(|e| e.to_string())?;
        draw_lines(&mut chart, lines, 4, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(|e| e.to_string())
    }
}

/// One chart panel's lines: (x, y) points by index into the peer list.
type Lines = BTreeMap<usize, Vec<(f64, f64)>>;

/// Smallest and largest positive values (for log axes).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo.is_finite() {
        (lo, hi)
    } else {
        (1.0, 10.0)
    }
}

/// One server's line in a chart: its legend label, its index in
/// [`Report::peers`] (which picks its colour, so a server has the same
/// colour in every chart and panel), and its (x, y) points.
type Line = (&'static str, usize, Vec<(f64, f64)>);

/// Draws each [`Line`] as a line with a dot of `radius` at every point,
/// then the legend at `position`. All three charts draw their servers this
/// way, so a server looks the same in each.
fn draw_lines<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    lines: Vec<Line>,
    radius: i32,
    position: SeriesLabelPosition,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (label, palette_index, pts) in lines {
        let color = Palette99::pick(palette_index).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, radius, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(|e| e.to_string())
}

/// The label of the category at `x` on an axis with one category at each
/// whole number from 0: plotters also asks at fractional positions, which
/// stay blank, as do positions past the last label.
fn category_label<S: ToString>(labels: &[S], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 0.01 && i >= 0.0 {
        labels
            .get(i as usize)
            .map(ToString::to_string)
            .unwrap_or_default()
    } else {
        String::new()
    }
}
