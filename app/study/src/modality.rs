//! What kind of scan a volume is, which decides its intensity unit, its first window and the
//! model's intensity rule.

use std::fmt;

/// A volume's modality. DICOM says it (0008,0060); a NIfTI file does not, so it is inferred
/// from the values there (see [`Modality::infer_from_values`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Modality {
    /// Computed tomography: voxels are Hounsfield units.
    Ct,
    /// Magnetic resonance: voxels are the scanner's arbitrary signal.
    Mr,
    /// Another DICOM modality code (PT, US, CR, …), kept as written.
    Other(String),
    /// Nothing says, and the values do not look like HU.
    #[default]
    Unknown,
}

impl Modality {
    /// The modality of a DICOM Modality code, case and padding ignored.
    pub fn from_dicom(code: &str) -> Self {
        let code = code.trim();
        if code.eq_ignore_ascii_case("CT") {
            Self::Ct
        } else if code.eq_ignore_ascii_case("MR") {
            Self::Mr
        } else if code.is_empty() {
            Self::Unknown
        } else {
            Self::Other(code.to_ascii_uppercase())
        }
    }

    /// CT when the values look like Hounsfield units: a scan of a body holds air around it,
    /// about −1000 HU, where MR and the other modalities store no values. Air must be at least
    /// 1 % of the voxels, so a few stray values do not decide it.
    pub fn infer_from_values(values: &[f32]) -> Self {
        let air = values
            .iter()
            .filter(|v| (-1100.0..=-900.0).contains(*v))
            .count();
        if !values.is_empty() && air * 100 >= values.len() {
            Self::Ct
        } else {
            Self::Unknown
        }
    }

    /// The DICOM code ("CT", "MR", …; empty when unknown).
    pub fn code(&self) -> &str {
        match self {
            Self::Ct => "CT",
            Self::Mr => "MR",
            Self::Other(code) => code,
            Self::Unknown => "",
        }
    }

    /// The unit of the voxel values, to print after a value ("HU" for CT, else none: MR signal
    /// and the rest have no physical unit).
    pub fn unit(&self) -> Option<&'static str> {
        match self {
            Self::Ct => Some("HU"),
            _ => None,
        }
    }

    /// What the values are called on an axis or in a legend.
    pub fn value_name(&self) -> &'static str {
        match self {
            Self::Ct => "HU",
            _ => "signal",
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => f.write_str("unknown modality"),
            known => f.write_str(known.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_codes_are_read_whatever_their_case_and_padding() {
        assert_eq!(Modality::from_dicom("CT"), Modality::Ct);
        assert_eq!(Modality::from_dicom("mr "), Modality::Mr);
        assert_eq!(Modality::from_dicom("pt"), Modality::Other("PT".into()));
        assert_eq!(Modality::from_dicom("  "), Modality::Unknown);
        assert_eq!(Modality::Mr.unit(), None);
        assert_eq!(Modality::Ct.unit(), Some("HU"));
        assert_eq!(Modality::Unknown.to_string(), "unknown modality");
    }

    #[test]
    fn only_values_with_air_in_hounsfield_units_are_taken_for_ct() {
        let mut ct: Vec<f32> = vec![-1000.0; 30];
        ct.extend((0..70).map(|i| i as f32 * 10.0));
        assert_eq!(Modality::infer_from_values(&ct), Modality::Ct);
        let mr: Vec<f32> = (0..100).map(|i| i as f32 * 7.0).collect();
        assert_eq!(Modality::infer_from_values(&mr), Modality::Unknown);
        // CT padded outside its field of view with −3024 is still CT
        ct.extend([-3024.0; 40]);
        assert_eq!(Modality::infer_from_values(&ct), Modality::Ct);
        assert_eq!(Modality::infer_from_values(&[]), Modality::Unknown);
    }
}
