//! Aggregating samples into per-organ and overall scores, as JSON and as a text table.

use super::protocol::{Organ, ProtocolOptions, Sample};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Mean scores of one organ over the slices where it was scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganScore {
    pub label: u16,
    pub name: String,
    /// Number of (slice, organ) samples.
    pub n: usize,
    pub dice: f64,
    pub iou: f64,
    /// Dice against the whole organ on the slice rather than its largest component.
    pub dice_whole_organ: f64,
    pub dice_jittered: Option<f64>,
    pub iou_jittered: Option<f64>,
    /// Mean Dice after 1, 2, … clicks of the click session (empty without one).
    #[serde(default)]
    pub dice_clicks: Vec<f64>,
}

/// Means over organs (each organ weighs the same, however many slices it has).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    pub organs: usize,
    pub samples: usize,
    pub dice: f64,
    pub iou: f64,
    pub dice_whole_organ: f64,
    pub dice_jittered: Option<f64>,
    pub iou_jittered: Option<f64>,
    #[serde(default)]
    pub dice_clicks: Vec<f64>,
}

/// The result of an evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The model's name (from its manifest).
    pub model: String,
    /// What was evaluated (data set, cases, stride).
    pub data: String,
    pub options: ProtocolOptions,
    /// Slices that had at least one scored organ.
    pub slices: usize,
    /// Wall time of the run in seconds.
    pub seconds: f64,
    /// Organs with at least one sample, by label.
    pub organs: Vec<OrganScore>,
    pub overall: Overall,
}

impl Report {
    /// The organ named `name`, if it was scored.
    pub fn organ(&self, name: &str) -> Option<&OrganScore> {
        self.organs.iter().find(|o| o.name == name)
    }

    /// How many Dice points (×100) this report's overall mean lies below `baseline`'s: the
    /// paper's measure of a quantized model against its FP model on the same prompts.
    pub fn dice_drop_points(&self, baseline: &Report) -> f64 {
        (baseline.overall.dice - self.overall.dice) * 100.0
    }
}

#[derive(Debug, Default, Clone)]
struct Sums {
    n: usize,
    dice: f64,
    iou: f64,
    whole: f64,
    jittered_n: usize,
    dice_jittered: f64,
    iou_jittered: f64,
    /// Dice summed per click of the session.
    dice_clicks: Vec<f64>,
}

/// Collects samples slice by slice; [`Accumulator::finish`] averages them.
#[derive(Debug, Default, Clone)]
pub struct Accumulator {
    /// Keyed by (label, name) so organs list in label order and cases with the same names pool.
    sums: BTreeMap<(u16, String), Sums>,
    slices: usize,
}

impl Accumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one slice's samples; `organs` names their labels (labels without a name are skipped).
    pub fn add_slice(&mut self, organs: &[Organ], samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        self.slices += 1;
        for sample in samples {
            let Some(organ) = organs.iter().find(|o| o.label == sample.label) else {
                continue;
            };
            let sums = self
                .sums
                .entry((organ.label, organ.name.clone()))
                .or_default();
            sums.n += 1;
            sums.dice += sample.tight.dice;
            sums.iou += sample.tight.iou;
            sums.whole += sample.whole_organ_dice;
            if let Some(j) = sample.jittered {
                sums.jittered_n += 1;
                sums.dice_jittered += j.dice;
                sums.iou_jittered += j.iou;
            }
            if sums.dice_clicks.len() < sample.clicks.len() {
                sums.dice_clicks.resize(sample.clicks.len(), 0.0);
            }
            for (sum, click) in sums.dice_clicks.iter_mut().zip(&sample.clicks) {
                *sum += click.dice;
            }
        }
    }

    /// Per-organ means and their mean over organs.
    pub fn finish(
        &self,
        model: &str,
        data: &str,
        options: &ProtocolOptions,
        seconds: f64,
    ) -> Report {
        let organs: Vec<OrganScore> = self
            .sums
            .iter()
            .filter(|(_, s)| s.n > 0)
            .map(|((label, name), s)| {
                let n = s.n as f64;
                let jn = s.jittered_n as f64;
                OrganScore {
                    label: *label,
                    name: name.clone(),
                    n: s.n,
                    dice: s.dice / n,
                    iou: s.iou / n,
                    dice_whole_organ: s.whole / n,
                    dice_jittered: (s.jittered_n > 0).then(|| s.dice_jittered / jn),
                    iou_jittered: (s.jittered_n > 0).then(|| s.iou_jittered / jn),
                    dice_clicks: s.dice_clicks.iter().map(|d| d / n).collect(),
                }
            })
            .collect();
        let mean = |f: &dyn Fn(&OrganScore) -> f64| {
            if organs.is_empty() {
                0.0
            } else {
                organs.iter().map(f).sum::<f64>() / organs.len() as f64
            }
        };
        let mean_opt = |f: &dyn Fn(&OrganScore) -> Option<f64>| {
            let values: Option<Vec<f64>> = organs.iter().map(f).collect();
            values
                .filter(|v| !v.is_empty())
                .map(|v| v.iter().sum::<f64>() / v.len() as f64)
        };
        let overall = Overall {
            organs: organs.len(),
            samples: organs.iter().map(|o| o.n).sum(),
            dice: mean(&|o| o.dice),
            iou: mean(&|o| o.iou),
            dice_whole_organ: mean(&|o| o.dice_whole_organ),
            dice_jittered: mean_opt(&|o| o.dice_jittered),
            iou_jittered: mean_opt(&|o| o.iou_jittered),
            dice_clicks: (0..clicks_scored(&organs))
                .map(|k| mean(&|o| o.dice_clicks[k]))
                .collect(),
        };
        Report {
            model: model.to_string(),
            data: data.to_string(),
            options: options.clone(),
            slices: self.slices,
            seconds,
            organs,
            overall,
        }
    }
}

/// How many clicks every organ was scored at (a session is the same length for all).
fn clicks_scored(organs: &[OrganScore]) -> usize {
    organs
        .iter()
        .map(|o| o.dice_clicks.len())
        .min()
        .unwrap_or(0)
}

impl fmt::Display for Report {
    /// A text table: one row per organ, then the mean over organs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jitter = self.overall.dice_jittered.is_some();
        let width = self
            .organs
            .iter()
            .map(|o| o.name.len())
            .chain([24])
            .max()
            .unwrap_or(24);
        write!(
            f,
            "{:<width$} {:>5} {:>7} {:>7} {:>11}",
            "organ", "n", "Dice", "IoU", "Dice whole"
        )?;
        if jitter {
            write!(f, " {:>11}", "Dice jitter")?;
        }
        let clicks = self.overall.dice_clicks.len();
        for k in 1..=clicks {
            write!(
                f,
                " {:>9}",
                format!("{k} click{}", if k == 1 { "" } else { "s" })
            )?;
        }
        writeln!(f)?;
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        for o in &self.organs {
            write!(
                f,
                "{:<width$} {:>5} {:>7.4} {:>7.4} {:>11.4}",
                o.name, o.n, o.dice, o.iou, o.dice_whole_organ
            )?;
            if jitter {
                write!(f, " {:>11}", opt(o.dice_jittered))?;
            }
            for d in o.dice_clicks.iter().take(clicks) {
                write!(f, " {d:>9.4}")?;
            }
            writeln!(f)?;
        }
        let all = &self.overall;
        let plural = if all.organs == 1 { "" } else { "s" };
        let label = format!("mean over {} organ{plural}", all.organs);
        write!(
            f,
            "{:<width$} {:>5} {:>7.4} {:>7.4} {:>11.4}",
            label, all.samples, all.dice, all.iou, all.dice_whole_organ
        )?;
        if jitter {
            write!(f, " {:>11}", opt(all.dice_jittered))?;
        }
        for d in &all.dice_clicks {
            write!(f, " {d:>9.4}")?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Overlap;

    fn sample(label: u16, dice: f64, jitter: Option<f64>) -> Sample {
        Sample {
            label,
            area: 100,
            tight: Overlap {
                dice,
                iou: dice / 2.0,
            },
            whole_organ_dice: dice,
            predicted_iou: 0.9,
            jittered: jitter.map(|d| Overlap { dice: d, iou: d }),
            clicks: Vec::new(),
        }
    }

    #[test]
    fn organs_are_averaged_over_slices_then_over_organs() {
        let organs = [Organ::new(1, "spleen"), Organ::new(6, "liver")];
        let mut acc = Accumulator::new();
        acc.add_slice(&organs, &[sample(6, 0.9, None), sample(1, 0.5, None)]);
        acc.add_slice(&organs, &[sample(6, 0.7, None)]);
        acc.add_slice(&organs, &[]);
        let report = acc.finish("m", "d", &ProtocolOptions::default(), 1.0);
        assert_eq!(report.slices, 2);
        assert_eq!(report.organs[0].name, "spleen", "label order");
        let liver = report.organ("liver").unwrap();
        assert_eq!(liver.n, 2);
        assert!((liver.dice - 0.8).abs() < 1e-12);
        // Each organ weighs the same: (0.8 + 0.5) / 2, not (0.9 + 0.7 + 0.5) / 3.
        assert!((report.overall.dice - 0.65).abs() < 1e-12);
        assert!((report.overall.iou - 0.325).abs() < 1e-12);
        assert_eq!(report.overall.samples, 3);
        assert!(report.overall.dice_jittered.is_none());
        let table = report.to_string();
        assert!(
            table.contains("liver") && table.contains("0.8000"),
            "{table}"
        );
        assert!(
            table.contains("mean over 2 organs") && table.contains("0.6500"),
            "{table}"
        );
        assert!(!table.contains("jitter"), "{table}");
    }

    #[test]
    fn jittered_scores_and_dice_drop() {
        let organs = [Organ::new(1, "spleen")];
        let mut acc = Accumulator::new();
        acc.add_slice(&organs, &[sample(1, 0.9, Some(0.8))]);
        let base = acc.finish("fp", "d", &ProtocolOptions::default(), 1.0);
        assert_eq!(base.overall.dice_jittered, Some(0.8));
        assert!(base.to_string().contains("Dice jitter"));
        let mut acc = Accumulator::new();
        acc.add_slice(&organs, &[sample(1, 0.88, None)]);
        let quant = acc.finish("w8a8", "d", &ProtocolOptions::default(), 1.0);
        assert!((quant.dice_drop_points(&base) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn click_sessions_are_averaged_per_click() {
        let organs = [Organ::new(1, "spleen"), Organ::new(6, "liver")];
        let with_clicks = |label, clicks: &[f64]| Sample {
            clicks: clicks
                .iter()
                .map(|&dice| Overlap { dice, iou: dice })
                .collect(),
            ..sample(label, 0.9, None)
        };
        let mut acc = Accumulator::new();
        acc.add_slice(
            &organs,
            &[with_clicks(1, &[0.5, 0.7]), with_clicks(6, &[0.9, 0.95])],
        );
        acc.add_slice(&organs, &[with_clicks(6, &[0.7, 0.85])]);
        let report = acc.finish("m", "d", &ProtocolOptions::default(), 1.0);
        let liver = report.organ("liver").unwrap();
        assert!(
            (liver.dice_clicks[0] - 0.8).abs() < 1e-12
                && (liver.dice_clicks[1] - 0.9).abs() < 1e-12
        );
        // organs weigh the same: (0.8 + 0.5) / 2 after one click, (0.9 + 0.7) / 2 after two
        assert!((report.overall.dice_clicks[0] - 0.65).abs() < 1e-12);
        assert!((report.overall.dice_clicks[1] - 0.8).abs() < 1e-12);
        let table = report.to_string();
        assert!(
            table.contains("1 click") && table.contains("2 clicks"),
            "{table}"
        );
        assert!(table.contains("0.8000"), "{table}");
    }

    #[test]
    fn an_empty_run_reports_zero_organs() {
        let report = Accumulator::new().finish("m", "d", &ProtocolOptions::default(), 0.0);
        assert_eq!(report.overall.organs, 0);
        assert!(report.to_string().contains("mean over 0 organs"));
        let mut one = Accumulator::new();
        one.add_slice(&[Organ::new(1, "liver")], &[sample(1, 0.9, None)]);
        let one = one.finish("m", "d", &ProtocolOptions::default(), 0.0);
        assert!(one.to_string().contains("mean over 1 organ "), "{one}");
    }
}
