//! Horizontal bar charts as SVG, the one drawing code of the workspace: `c3dc inspect --svg`
//! (a plan's per-layer cost) and `c3d-bench` (bench results, c3d-run reports) fill a
//! [`Chart`] and call [`svg`]. One row per group (a layer), one panel per quantity, each
//! panel with its own linear scale from 0 to its largest stacked bar.

use std::fmt::Write;

/// Colours for categories (protocols), distinguishable and printable.
pub const PALETTE: [&str; 8] = [
    "#2b5d8a", "#d9822b", "#3a9e5c", "#b8403a", "#7d5ba6", "#8c6d46", "#c55ca0", "#6f7b85",
];

/// The colour of a protocol, one per protocol whatever its spelling: the plan's names
/// (`HeLinear`, `OtComparison`) and the runtime's (`he-linear`, `ot-comparison`, with their
/// `-gpu` and `-streamed` variants) get the same one, so a plan's plot and a run's match.
pub fn protocol_colour(name: &str) -> &'static str {
    let key: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let i = match key.as_str() {
        "input" => 0,
        "local" => 1,
        "helinear" | "helineargpu" => 2,
        "garbledcircuit" | "garbled" | "garbledstreamed" => 3,
        "beaversquare" => 4,
        "client" => 5,
        "otcomparison" => 6,
        _ => 7,
    };
    PALETTE[i]
}

/// One part of a stacked bar.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Length in the panel's unit (negative or non-finite values draw as 0).
    pub value: f64,
    /// Fill, an SVG colour.
    pub fill: String,
}

/// One row: a label and one stacked bar per panel.
#[derive(Clone, Debug)]
pub struct Group {
    /// Row label (a layer name); shortened to [`LABEL_CHARS`] on the chart, whole in its
    /// tooltip.
    pub label: String,
    /// `bars[i]` is drawn in panel `i`; missing bars are empty.
    pub bars: Vec<Vec<Segment>>,
}

/// One quantity, drawn side by side with the others.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Axis label, with the unit ("MB both ways").
    pub axis: String,
}

/// A whole chart.
#[derive(Clone, Debug, Default)]
pub struct Chart {
    /// Title line.
    pub title: String,
    /// Panels, left to right.
    pub panels: Vec<Panel>,
    /// Rows, top to bottom.
    pub groups: Vec<Group>,
    /// Legend entries: name and colour.
    pub legend: Vec<(String, String)>,
    /// Lines of text below the chart.
    pub notes: Vec<String>,
}

/// The longest row label drawn, in characters.
pub const LABEL_CHARS: usize = 28;

/// Escapes text for SVG element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 has no way to write most control characters: they are dropped.
            c if c.is_control() && c != '\t' && c != '\n' => {}
            c => o.push(c),
        }
    }
    o
}

/// `colour` (#rrggbb) mixed with white by `amount` in [0, 1]: the lighter shade of a category.
pub fn tint(colour: &str, amount: f64) -> String {
    let hex = colour.trim_start_matches('#');
    let Ok(v) = u32::from_str_radix(hex, 16) else {
        return colour.to_string();
    };
    if hex.len() != 6 {
        return colour.to_string();
    }
    let a = amount.clamp(0.0, 1.0);
    let mix = |c: u32| (c as f64 + (255.0 - c as f64) * a).round() as u32;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(v >> 16 & 255),
        mix(v >> 8 & 255),
        mix(v & 255)
    )
}

/// A tick value, short: 1234 -> "1234", 12.5 -> "12.5", 0.0123 -> "0.0123".
fn num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3e}")
            .parse::<f64>()
            .map_or_else(|_| format!("{v}"), |x| format!("{x}"))
    }
}

fn clean(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

/// Draws the chart. Each row is a `<g class="bar-group">` (its tooltip the full label), each
/// panel has an axis line with ticks at 0, half and the maximum and its label under it.
pub fn svg(c: &Chart) -> String {
    let row = 16.0;
    let (left, panel, gap) = (200.0, 260.0, 40.0);
    let legend_rows = c
        .legend
        .len()
        .div_ceil(4)
        .max(usize::from(!c.legend.is_empty()));
    let top = 30.0 + 16.0 * legend_rows as f64 + 10.0;
    let np = c.panels.len().max(1);
    let width = left + np as f64 * (panel + gap) + 10.0;
    let rows_h = row * c.groups.len() as f64;
    let axis_y = top + rows_h + 4.0;
    let height = axis_y + 38.0 + 16.0 * c.notes.len() as f64;
    let max: Vec<f64> = (0..c.panels.len())
        .map(|i| {
            c.groups
                .iter()
                .filter_map(|g| g.bars.get(i))
                .map(|b| b.iter().map(|s| clean(s.value)).sum::<f64>())
                .fold(0.0, f64::max)
        })
        .map(|m| if m > 0.0 { m } else { 1.0 })
        .collect();
    let x0 = |i: usize| left + i as f64 * (panel + gap);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="8" y="18" font-size="13" font-weight="bold">{}</text>"#,
        escape(&c.title)
    );
    for (k, (name, fill)) in c.legend.iter().enumerate() {
        let (lx, ly) = (8.0 + 180.0 * (k % 4) as f64, 28.0 + 16.0 * (k / 4) as f64);
        let _ = writeln!(
            s,
            r#"<g class="legend"><rect x="{lx:.0}" y="{ly:.0}" width="10" height="10" fill="{}"/><text x="{:.0}" y="{:.0}">{}</text></g>"#,
            escape(fill),
            lx + 14.0,
            ly + 9.0,
            escape(name)
        );
    }
    for (i, g) in c.groups.iter().enumerate() {
        let y = top + row * i as f64;
        let short: String = g.label.chars().take(LABEL_CHARS).collect();
        let _ = write!(
            s,
            r#"<g class="bar-group"><title>{}</title><text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
            escape(&g.label),
            left - 6.0,
            y + 11.0,
            escape(&short)
        );
        for (p, bar) in g.bars.iter().enumerate().take(c.panels.len()) {
            let mut x = x0(p);
            for seg in bar {
                let w = clean(seg.value) / max[p] * panel;
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{w:.2}" height="12" fill="{}"/>"#,
                    y + 1.0,
                    escape(&seg.fill)
                );
                x += w;
            }
        }
        s.push_str("</g>\n");
    }
    for (p, pn) in c.panels.iter().enumerate() {
        let x = x0(p);
        let _ = write!(
            s,
            r##"<g class="axis"><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{axis_y:.1}" stroke="#999"/><line x1="{x:.1}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#333"/>"##,
            top - 2.0,
            x + panel
        );
        for f in [0.0, 0.5, 1.0] {
            let tx = x + f * panel;
            let anchor = if f == 0.0 { "start" } else { "middle" };
            let _ = write!(
                s,
                r##"<line x1="{tx:.1}" y1="{axis_y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#333"/><text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"##,
                axis_y + 4.0,
                axis_y + 15.0,
                num(f * max[p])
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text></g>"#,
            x + panel / 2.0,
            axis_y + 30.0,
            escape(&pn.axis)
        );
    }
    for (k, n) in c.notes.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="8" y="{:.0}">{}</text>"#,
            axis_y + 50.0 + 16.0 * k as f64,
            escape(n)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_drops_control_characters() {
        assert_eq!(escape(r#"a<b>&"c"'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;");
        assert_eq!(escape("x\u{1b}y"), "xy");
    }

    #[test]
    fn a_protocol_has_one_colour_in_the_plans_and_the_runtimes_spelling() {
        for (plan, run) in [
            ("HeLinear", "he-linear-gpu"),
            ("GarbledCircuit", "garbled-streamed"),
            ("OtComparison", "ot-comparison"),
            ("BeaverSquare", "beaver-square"),
        ] {
            assert_eq!(protocol_colour(plan), protocol_colour(run));
        }
        let all: std::collections::BTreeSet<_> = ["Input", "Local", "HeLinear", "GarbledCircuit"]
            .iter()
            .chain(&["BeaverSquare", "Client", "OtComparison", "unknown"])
            .map(|p| protocol_colour(p))
            .collect();
        assert_eq!(all.len(), 8, "distinct protocols, distinct colours");
    }

    #[test]
    fn tint_mixes_with_white() {
        assert_eq!(tint("#000000", 0.5), "#808080");
        assert_eq!(tint("#2b5d8a", 0.0), "#2b5d8a");
        assert_eq!(tint("#2b5d8a", 1.0), "#ffffff");
        assert_eq!(tint("red", 0.5), "red");
    }

    #[test]
    fn bars_scale_to_the_panel_maximum() {
        let seg = |v: f64| Segment {
            value: v,
            fill: "#000000".into(),
        };
        let c = Chart {
            title: "t".into(),
            panels: vec![Panel { axis: "x".into() }],
            groups: vec![
                Group {
                    label: "a".into(),
                    bars: vec![vec![seg(1.0), seg(1.0)]],
                },
                Group {
                    label: "b".into(),
                    bars: vec![vec![seg(1.0), seg(f64::NAN)]],
                },
            ],
            ..Chart::default()
        };
        let s = svg(&c);
        // The stacked maximum is 2: each unit is half the 260-pixel panel; NaN draws as 0.
        assert_eq!(s.matches(r#"width="130.00""#).count(), 3, "{s}");
        assert_eq!(s.matches(r#"width="0.00""#).count(), 1, "{s}");
        assert_eq!(s.matches(r#"<g class="bar-group">"#).count(), 2);
    }
}
