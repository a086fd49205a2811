//! Charts as SVG, drawn on the server by plotters. Readable without colour: each series
//! has its own stroke pattern and marker and is named in the legend; every chart has a
//! title for screen readers and, under it, its numbers in a table (the page's job).

use chrono::NaiveDate;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One line of a chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(NaiveDate, f64)>,
}

/// A horizontal line to compare against (a target).
pub struct Rule<'a> {
    pub name: &'a str,
    pub value: f64,
}

const WIDTH: u32 = 560;
const HEIGHT: u32 = 260;
/// Dark, distinguishable without colour by their patterns too.
const INKS: [RGBColor; 4] = [
    RGBColor(11, 87, 208),
    RGBColor(164, 18, 27),
    RGBColor(29, 107, 48),
    RGBColor(90, 60, 140),
];

/// Days along x, values along y from 0; `title` is what a screen reader says of it.
pub fn lines(title: &str, series: &[Series<'_>], rule: Option<Rule<'_>>) -> String {
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, series, rule.as_ref()) {
        tracing::warn!(error = %e, title, "a chart could not be drawn");
        return String::new();
    }
    // plotters writes a bare <svg>; the console names it for assistive technology.
    svg.replacen(
        "<svg ",
        &format!(
            "<svg role=\"img\" aria-label=\"{}\" ",
            coachloop_core::html::escape(title)
        ),
        1,
    )
}

fn draw(
    svg: &mut String,
    series: &[Series<'_>],
    rule: Option<&Rule<'_>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let dates = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (Some(first), Some(last)) = (dates.clone().min(), dates.max()) else {
        return Err("no points".into());
    };
    let days = (last - first).num_days().max(1) as f64;
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(rule.map(|r| r.value))
        .fold(0.0_f64, f64::max);
    let top = if top <= 0.0 { 1.0 } else { top * 1.1 };
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .margin_right(28)
        .x_label_area_size(28)
        .y_label_area_size(52)
        .build_cartesian_2d::<RangedCoordf64, RangedCoordf64>(
            (0.0..days).into(),
            (0.0..top).into(),
        )?;
    let day = |x: &f64| {
        (first + chrono::Days::new(x.round().max(0.0) as u64))
            .format("%-d %b")
            .to_string()
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels((days as usize + 1).min(6))
        .y_labels(5)
        .x_label_formatter(&day)
        .y_label_formatter(&|y| {
            if top < 10.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.0}")
            }
        })
        .label_style(("sans-serif", 15).into_font().color(&BLACK))
        .axis_style(BLACK)
        .light_line_style(RGBColor(225, 228, 233))
        .draw()?;
    let x_of = |date: NaiveDate| (date - first).num_days() as f64;
    for (i, s) in series.iter().enumerate() {
        let ink = INKS[i % INKS.len()];
        let style = ShapeStyle::from(&ink).stroke_width(2);
        let points: Vec<(f64, f64)> = s.points.iter().map(|&(d, v)| (x_of(d), v)).collect();
        let drawn = match i % 3 {
            0 => chart.draw_series(LineSeries::new(points.clone(), style))?,
            1 => chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))?,
            _ => chart.draw_series(DashedLineSeries::new(points.clone(), 2, 3, style))?,
        };
        drawn
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        // Markers tell the series apart where lines cross, and show single days.
        if points.len() <= 62 {
            match i % 3 {
                0 => chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, ink.filled())))?,
                1 => chart.draw_series(
                    points
                        .iter()
                        .map(|&p| TriangleMarker::new(p, 4, ink.filled())),
                )?,
                _ => chart.draw_series(points.iter().map(|&p| Cross::new(p, 3, ink)))?,
            };
        }
    }
    if let Some(rule) = rule {
        let style = ShapeStyle::from(&BLACK).stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, rule.value), (days, rule.value)],
                10,
                5,
                style,
            ))?
            .label(rule.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15).into_font().color(&BLACK))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_its_title_and_legend() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
        let svg = lines(
            "Events <per> day",
            &[
                Series {
                    name: "compromised",
                    points: vec![(d(1), 3.0), (d(2), 5.0), (d(3), 1.0)],
                },
                Series {
                    name: "weak",
                    points: vec![(d(1), 1.0), (d(3), 2.0)],
                },
            ],
            Some(Rule {
                name: "target",
                value: 4.0,
            }),
        );
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"Events &lt;per&gt; day\""),
            "{svg}"
        );
        for text in ["compromised", "weak", "target", "1 Nov"] {
            assert!(svg.contains(text), "{text} in {svg}");
        }
        assert!(lines("empty", &[], None).is_empty());
    }
}
