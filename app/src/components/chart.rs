//! Small line charts as SVG, rendered with the page (no chart library in the bundle). The drawing
//! is a pure function of the points, tested below.

use leptos::prelude::*;

/// Drawing area in SVG units; the element scales to its container.
const W: f64 = 240.0;
const H: f64 = 64.0;

/// A series scaled into a `width` × `height` box: time left to right, zero at the bottom, the
/// peak at the top.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// The line (`M x,y L x,y …`).
    pub line: String,
    /// The line closed down to the baseline, for the fill under it.
    pub area: String,
    pub peak: f64,
    pub last: f64,
}

pub fn plot(points: &[(i64, f64)], width: f64, height: f64) -> Option<Plot> {
    let (first, last) = (points.first()?, points.last()?);
    let span = (last.0 - first.0).max(1) as f64;
    let peak = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    // A flat zero line still needs a scale.
    let top = if peak > 0.0 { peak } else { 1.0 };
    let xy = |(t, v): (i64, f64)| {
        let x = if points.len() == 1 {
            width
        } else {
            (t - first.0) as f64 / span * width
        };
        let y = height - (v.max(0.0) / top) * height;
        format!("{x:.1},{y:.1}")
    };
    let mut line = String::new();
    for (i, p) in points.iter().enumerate() {
        line.push_str(if i == 0 { "M" } else { " L" });
        line.push_str(&xy(*p));
    }
    let x_first = if points.len() == 1 { width } else { 0.0 };
    let area = format!("{line} L{width:.1},{height:.1} L{x_first:.1},{height:.1} Z");
    Some(Plot {
        line,
        area,
        peak,
        last: last.1,
    })
}

/// One chart: a title, the latest value, and the last hour's line. `format` renders a value with
/// its unit.
#[component]
pub fn Sparkline(
    title: &'static str,
    points: Vec<(i64, f64)>,
    format: fn(f64) -> String,
    /// Tailwind stroke/fill colour classes.
    #[prop(default = "text-indigo-500")]
    tone: &'static str,
) -> impl IntoView {
    let drawn = plot(&points, W, H);
    let summary = match &drawn {
        Some(p) => format!(
            "{title} over the last hour: now {}, peak {}",
            format(p.last),
            format(p.peak)
        ),
        None => format!("{title}: no data in the last hour"),
    };
    view! {
        <figure class="rounded-xl border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900">
            <figcaption class="flex items-baseline justify-between text-sm">
                <span class="text-slate-500">{title}</span>
                <span class="font-semibold">{drawn.as_ref().map(|p| format(p.last)).unwrap_or_else(|| "–".into())}</span>
            </figcaption>
            <svg
                viewBox=format!("0 0 {W} {H}")
                preserveAspectRatio="none"
                role="img"
                aria-label=summary
                class=format!("mt-2 h-16 w-full {tone}")
            >
                {drawn
                    .map(|p| {
                        view! {
                            <path d=p.area fill="currentColor" fill-opacity="0.12" stroke="none" />
                            <path d=p.line fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke" />
                        }
                    })}
            </svg>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_scale_into_the_box_with_zero_at_the_bottom() {
        let p = plot(&[(0, 0.0), (30, 5.0), (60, 10.0)], 100.0, 50.0).unwrap();
        assert_eq!(p.line, "M0.0,50.0 L50.0,25.0 L100.0,0.0");
        assert_eq!(
            p.area,
            "M0.0,50.0 L50.0,25.0 L100.0,0.0 L100.0,50.0 L0.0,50.0 Z"
        );
        assert_eq!((p.peak, p.last), (10.0, 10.0));
    }

    #[test]
    fn flat_zero_single_and_empty_series() {
        let flat = plot(&[(0, 0.0), (10, 0.0)], 10.0, 10.0).unwrap();
        assert_eq!(flat.line, "M0.0,10.0 L10.0,10.0");
        let one = plot(&[(5, 2.0)], 10.0, 10.0).unwrap();
        assert_eq!(one.line, "M10.0,0.0");
        assert_eq!(plot(&[], 10.0, 10.0), None);
        // Negative values (a bad query) are drawn at zero rather than below the box.
        let neg = plot(&[(0, -1.0), (10, 1.0)], 10.0, 10.0).unwrap();
        assert_eq!(neg.line, "M0.0,10.0 L10.0,0.0");
    }
}
