//! The segment statistics table as CSV (RFC 4180), for a report or a spreadsheet.

use super::{ExportError, Segment};
use crate::Document;
use crate::statistics::{SegmentStatistics, StatisticsCache};
use lumen_study::{LabelVolume, Modality, Volume};
use std::fmt::Write as _;
use std::path::Path;

/// The header row: intensities are in `unit` (HU for CT, the stored values otherwise).
const COLUMNS: &str = "segment,label,voxels,volume_ml,mean,sd,min,max,unit,\
                       extent_right_left_mm,extent_anterior_posterior_mm,extent_inferior_superior_mm";

/// Writes one row per segment of `labels` on `volume`: what the statistics table shows.
pub fn write_statistics_csv(
    path: &Path,
    volume: &Volume,
    labels: &LabelVolume,
    segments: &[Segment],
) -> Result<(), ExportError> {
    if labels.dims != volume.dims {
        return Err(ExportError::invalid(
            path,
            "the label map is not on the volume's grid",
        ));
    }
    let (document, _) = Document::from_export(volume, labels, segments);
    let table = StatisticsCache::default()
        .update(&document, volume)
        .to_vec();
    let text = statistics_csv(&table, &volume.modality);
    super::write_atomic(path, |file| file.write_all(text.as_bytes()))
}

/// The CSV text; a segment without voxels has empty intensity fields.
pub fn statistics_csv(table: &[SegmentStatistics], modality: &Modality) -> String {
    let unit = modality.unit().unwrap_or("stored value");
    let mut text = format!("{COLUMNS}\r\n");
    for s in table {
        let number = |v: f64| {
            if v.is_finite() {
                format!("{v:.3}")
            } else {
                String::new()
            }
        };
        let [rl, ap, si] = s.extent_mm;
        let _ = write!(
            text,
            "{},{},{},{:.3},{},{},{},{},{unit},{rl:.2},{ap:.2},{si:.2}\r\n",
            quoted(&s.name),
            s.label,
            s.voxels,
            s.volume_ml,
            number(s.mean),
            number(s.sd),
            number(f64::from(s.min)),
            number(f64::from(s.max)),
        );
    }
    text
}

/// A field quoted where it holds a comma, a quote or a line break, quotes doubled.
fn quoted(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_an_empty_segment_has_no_intensities() {
        let empty = SegmentStatistics::empty(2, "Kidney, \"left\"");
        let text = statistics_csv(&[empty], &Modality::Mr);
        let rows: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(rows[0], COLUMNS);
        assert_eq!(
            rows[1],
            "\"Kidney, \"\"left\"\"\",2,0,0.000,,,,,stored value,0.00,0.00,0.00"
        );
    }
}
