//! Fig. 5.1: encrypted accuracy against latency with the pruning ratio varying along each
//! line, one panel per dataset and one line per activation and packing (the paper's dashed
//! beside ours), drawn as SVG and PNG with plotters.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{ReportError, Row};
use crate::he::packing::PackingId;

/// The size of one dataset's panel.
const PANEL: (u32, u32) = (960, 640);
const FONT: &str = "sans-serif";
/// Line colours, one per activation × packing in a panel, readable on white.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(227, 119, 194),
];

/// A point: latency in seconds, accuracy in percent, and its label.
struct Point {
    latency_s: f64,
    accuracy: f64,
    label: String,
}

/// One line of the plot.
struct Series {
    name: String,
    points: Vec<Point>,
    /// The paper's line: dashed, hollow markers.
    paper: bool,
    color: usize,
}

fn label(row: &Row) -> String {
    match row.pruning_ratio() {
        Some(r) if r > 0.0 => format!("pruned {:.0}%", r * 100.0),
        Some(_) => "unpruned".into(),
        None => row.network.clone(),
    }
}

/// One panel per dataset: our line for each activation and packing (channel-wise and
/// batch-axis alike), and the paper's beside each where it measured the same networks.
fn panels(rows: &[Row]) -> Vec<(String, Vec<Series>)> {
    let shown: Vec<&Row> = rows
        .iter()
        .filter(|r| r.entry.summary.mean_latency_s > 0.0)
        .collect();
    let mut datasets: Vec<String> = shown.iter().map(|r| r.dataset()).collect();
    // the paper's order: MNIST, then CIFAR-10
    datasets.sort_by(|a, b| b.cmp(a));
    datasets.dedup();
    datasets
        .into_iter()
        .map(|d| {
            let of: Vec<&Row> = shown.iter().filter(|r| r.dataset() == d).copied().collect();
            let lines = series(&of);
            (d, lines)
        })
        .collect()
}

/// The lines of one dataset's rows.
fn series(shown: &[&Row]) -> Vec<Series> {
    let mut keys: Vec<(String, String, PackingId)> = shown
        .iter()
        .map(|r| (r.dataset(), r.activation.clone(), r.entry.packing))
        .collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    // the paper measured channel-wise and batch-axis: one dashed line each, beside the first
    // of our packings of that kind
    let mut paper_drawn = std::collections::BTreeSet::new();
    for (color, (dataset, activation, packing)) in keys.into_iter().enumerate() {
        let mut of: Vec<&Row> = shown
            .iter()
            .filter(|r| r.dataset() == dataset && r.activation == activation)
            .filter(|r| r.entry.packing == packing)
            .copied()
            .collect();
        of.sort_by_key(|r| std::cmp::Reverse(r.entry.conv2));
        let ours = of
            .iter()
            .map(|r| Point {
                latency_s: r.entry.summary.mean_latency_s,
                accuracy: r.entry.summary.he_accuracy * 100.0,
                label: label(r),
            })
            .collect();
        let paper: Vec<Point> = of
            .iter()
            .filter_map(|r| {
                Some(Point {
                    latency_s: r.paper?.latency_s,
                    accuracy: r.paper_he?,
                    label: label(r),
                })
            })
            .collect();
        let name = format!("{dataset} {activation}, {packing}");
        let kind = if packing.is_channel_wise() {
            "channel"
        } else {
            "batch"
        };
        if !paper.is_empty() && paper_drawn.insert((activation.clone(), kind)) {
            out.push(Series {
                name: format!("paper: {dataset} {activation}, {kind} (72 threads)"),
                points: paper,
                paper: true,
                color,
            });
        }
        out.push(Series {
            name,
            points: ours,
            paper: false,
            color,
        });
    }
    out
}

/// Draws the plot as `out/fig-5-1.svg` and `out/fig-5-1.png`.
pub fn draw(rows: &[Row], out: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let panels = panels(rows);
    let size = (PANEL.0 * panels.len().max(1) as u32, PANEL.1);
    let svg = out.join("fig-5-1.svg");
    let png = out.join("fig-5-1.png");
    let fail = |path: &Path, e: String| ReportError::Write {
        path: path.to_path_buf(),
        reason: format!("{e} (the plot needs a TrueType font; Debian: fonts-dejavu-core)"),
    };
    figure(SVGBackend::new(&svg, size).into_drawing_area(), &panels).map_err(|e| fail(&svg, e))?;
    figure(BitMapBackend::new(&png, size).into_drawing_area(), &panels)
        .map_err(|e| fail(&png, e))?;
    Ok(vec![svg, png])
}

/// The panels side by side under one title.
fn figure<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[(String, Vec<Series>)],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let body = root
        .titled(
            "Encrypted accuracy against latency under channel pruning (Fig. 5.1)",
            (FONT, 22),
        )
        .map_err(e)?;
    let areas = body.split_evenly((1, panels.len().max(1)));
    for (area, (dataset, lines)) in areas.into_iter().zip(panels) {
        plot(area, dataset, lines)?;
    }
    root.present().map_err(e)
}

/// The axis ranges: latency (log scale, padded by a factor) and accuracy (padded, within 0–100).
fn ranges(lines: &[Series]) -> ((f64, f64), (f64, f64)) {
    let points = lines.iter().flat_map(|s| &s.points);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in points {
        x0 = x0.min(p.latency_s);
        x1 = x1.max(p.latency_s);
        y0 = y0.min(p.accuracy);
        y1 = y1.max(p.accuracy);
    }
    if x0 > x1 {
        return ((0.1, 10.0), (0.0, 100.0)); // nothing to plot: an empty frame
    }
    let pad = ((y1 - y0) * 0.15).max(0.5);
    (
        (x0 / 1.6, x1 * 1.6),
        ((y0 - pad).max(0.0), (y1 + pad).min(100.0 + pad / 2.0)),
    )
}

/// A dataset's name as the paper writes it.
fn panel_title(dataset: &str) -> &str {
    match dataset {
        "mnist" => "MNIST",
        "cifar10" => "CIFAR-10",
        other => other,
    }
}

/// One dataset's panel.
fn plot<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    dataset: &str,
    lines: &[Series],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let ((x0, x1), (y0, y1)) = ranges(lines);
    let mut chart = ChartBuilder::on(&area)
        .caption(panel_title(dataset), (FONT, 18))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("latency per inference [s] (log scale)")
        .y_desc("encrypted test accuracy [%]")
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(TRANSPARENT)
        .x_labels(8)
        .x_label_formatter(&|x| format!("{}", (x * 1000.0).round() / 1000.0))
        .draw()
        .map_err(e)?;
    for s in lines {
        let color = COLORS[s.color % COLORS.len()];
        let xy: Vec<(f64, f64)> = s.points.iter().map(|p| (p.latency_s, p.accuracy)).collect();
        let stroke = color.stroke_width(2);
        // the paper's lines dashed with hollow markers, ours solid with filled ones
        let (drawn, gap) = if s.paper {
            let dashed = DashedLineSeries::new(xy.clone(), 6, 4, stroke);
            (chart.draw_series(dashed), 6)
        } else {
            (chart.draw_series(LineSeries::new(xy.clone(), stroke)), 0)
        };
        drawn
            .map_err(e)?
            .label(&s.name)
            .legend(move |(x, y): (i32, i32)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (11 - gap / 2, 0)], stroke)
                    + PathElement::new(vec![(11 + gap / 2, 0), (22, 0)], stroke)
            });
        let marker = if s.paper { stroke } else { color.filled() };
        chart
            .draw_series(xy.iter().map(|&p| Circle::new(p, 5, marker)))
            .map_err(e)?;
        chart
            .draw_series(s.points.iter().map(|p| {
                Text::new(
                    format!(" {}", p.label),
                    (p.latency_s, p.accuracy),
                    (FONT, 12).into_font().color(&BLACK),
                )
            }))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(e)
}
