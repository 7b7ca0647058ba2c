//! The PNG chart: answered SYN-ACKs per second and legitimate connections completed
//! within 1 s, against the offered SYN rate, one line per contender. Text is drawn with
//! the DejaVu Sans the `dejavu` crate embeds, so no system font is needed.

use std::path::Path;

use anyhow::anyhow;
use plotters::{
    prelude::*,
    style::{FontStyle, register_font},
};

use super::{contender::Contender, step::StepResult};

const COLOURS: [RGBColor; 5] = [RED, BLUE, MAGENTA, GREEN, BLACK];

pub fn draw(path: &Path, steps: &[StepResult]) -> anyhow::Result<()> {
    register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow!("the embedded DejaVu Sans font did not load"))?;
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let max_offered = steps
        .iter()
        .map(|step| step.offered_per_s)
        .fold(1.0, f64::max)
        / 1000.0;
    let max_answered = steps
        .iter()
        .map(|step| step.answered_per_s)
        .fold(1.0, f64::max)
        / 1000.0;
    panel(
        &left,
        "SYN-ACKs answered (k/s)",
        max_offered,
        max_answered * 1.1,
        steps,
        |step| step.answered_per_s / 1000.0,
    )?;
    panel(
        &right,
        "legitimate connections done within 1 s (%)",
        max_offered,
        105.0,
        steps,
        |step| step.client.percent(step.client.within_1s),
    )?;
    root.present()?;
    Ok(())
}

fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    max_x: f64,
    max_y: f64,
    steps: &[StepResult],
    value: impl Fn(&StepResult) -> f64,
) -> anyhow::Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_x * 1.05, 0.0..max_y)?;
    chart
        .configure_mesh()
        .x_desc("offered SYNs (k/s)")
        .label_style(("sans-serif", 13))
        .draw()?;
    for (contender, colour) in Contender::ALL.iter().zip(COLOURS) {
        let points: Vec<(f64, f64)> = steps
            .iter()
            .filter(|step| step.contender == *contender)
            .map(|step| (step.offered_per_s / 1000.0, value(step)))
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(contender.name())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
        chart.draw_series(
            points
                .into_iter()
                .map(|point| Circle::new(point, 3, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()?;
    Ok(())
}
