//! DICOM Segmentation (binary, multi-segment, bit-packed frames): what the writer and the
//! reader share, and the value encodings (decimal strings, CIELab colours, dates).

mod read;
mod write;

pub use read::read_seg;
pub use write::write_seg;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::Code;

/// SOP Class UID of Segmentation Storage.
pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const IMPLEMENTATION_CLASS_UID: &str = "2.25.223842964716394712871293645791620374461";

/// What to record about how the segmentation was made.
#[derive(Debug, Clone, PartialEq)]
pub struct SegOptions {
    /// Algorithm name (Segment Algorithm Name), e.g. "Lumen SAM".
    pub algorithm_name: String,
    /// Algorithm version: the model (name + precision), e.g. "lumen-starter int8".
    pub algorithm_version: String,
    /// Series Description of the new SEG series.
    pub series_description: String,
    /// Series Number of the new SEG series.
    pub series_number: i32,
    /// Content Creator's Name (the radiologist), may be empty.
    pub content_creator: String,
}

impl Default for SegOptions {
    fn default() -> Self {
        Self {
            algorithm_name: "Lumen SAM".into(),
            algorithm_version: "unknown model".into(),
            series_description: "Lumen segmentation".into(),
            series_number: 901,
            content_creator: String::new(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct SegSummary {
    /// SOP Instance UID of the SEG object.
    pub sop_instance_uid: String,
    /// Series Instance UID of the new SEG series.
    pub series_instance_uid: String,
    /// Number of frames (one per segment and slice holding that segment).
    pub frames: usize,
    /// Segments written (segments with no voxels are left out).
    pub segments: Vec<u16>,
    /// Things the user should know (missing source UIDs replaced, …).
    pub warnings: Vec<String>,
}

fn s(obj: &mut InMemDicomObject, tag: Tag, vr: VR, v: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
}

fn seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// A decimal string of at most 16 characters.
fn ds(v: f64) -> String {
    let v = if v.abs() < 1e-12 { 0.0 } else { v };
    let plain = format!("{v}");
    if plain.len() <= 16 {
        return plain;
    }
    for prec in (0..=15).rev() {
        let t = format!("{v:.prec$}");
        let t = if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        };
        if t.len() <= 16 {
            return t;
        }
    }
    format!("{v:.6e}")
}

fn ds_multi(v: &[f64]) -> String {
    v.iter().map(|&x| ds(x)).collect::<Vec<_>>().join("\\")
}

fn code_item(c: &Code) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    s(&mut o, tags::CODE_VALUE, VR::SH, &c.value);
    s(&mut o, tags::CODING_SCHEME_DESIGNATOR, VR::SH, &c.scheme);
    s(&mut o, tags::CODE_MEANING, VR::LO, &c.meaning);
    o
}

/// sRGB (0..255) → DICOM scaled CIELab (0..65535), D65.
pub fn rgb_to_dicom_lab(rgb: [u8; 3]) -> [u16; 3] {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(rgb[0]), lin(rgb[1]), lin(rgb[2]));
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let l = 116.0 * f(y) - 16.0;
    let a = 500.0 * (f(x) - f(y));
    let bb = 200.0 * (f(y) - f(z));
    [
        (l / 100.0 * 65535.0).round().clamp(0.0, 65535.0) as u16,
        ((a + 128.0) / 255.0 * 65535.0).round().clamp(0.0, 65535.0) as u16,
        ((bb + 128.0) / 255.0 * 65535.0).round().clamp(0.0, 65535.0) as u16,
    ]
}

/// DICOM scaled CIELab → sRGB.
pub fn dicom_lab_to_rgb(lab: [u16; 3]) -> [u8; 3] {
    let l = f64::from(lab[0]) / 65535.0 * 100.0;
    let a = f64::from(lab[1]) / 65535.0 * 255.0 - 128.0;
    let b = f64::from(lab[2]) / 65535.0 * 255.0 - 128.0;
    let fy = (l + 16.0) / 116.0;
    let fx = fy + a / 500.0;
    let fz = fy - b / 200.0;
    let inv = |t: f64| {
        if t.powi(3) > 0.008856 {
            t.powi(3)
        } else {
            (t - 16.0 / 116.0) / 7.787
        }
    };
    let (x, y, z) = (inv(fx) * 0.95047, inv(fy), inv(fz) * 1.08883);
    let r = 3.2406 * x - 1.5372 * y - 0.4986 * z;
    let g = -0.9689 * x + 1.8758 * y + 0.0415 * z;
    let bl = 0.0557 * x - 0.2040 * y + 1.0570 * z;
    let gamma = |c: f64| {
        let c = c.clamp(0.0, 1.0);
        let v = if c <= 0.0031308 {
            12.92 * c
        } else {
            1.055 * c.powf(1.0 / 2.4) - 0.055
        };
        (v * 255.0).round().clamp(0.0, 255.0) as u8
    };
    [gamma(r), gamma(g), gamma(bl)]
}

fn dicom_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, (rem % 3600) / 60, rem % 60),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
