//! The organ catalogue every part shares: the names offered for new segments, each organ's
//! SNOMED CT codes (DICOM SEG) and usual colour, and a palette for names Lumen does not know.

use crate::export::Code;

/// The organs offered for a new segment, in the order the list shows them.
pub const OFFERED: [&str; 13] = [
    "Liver",
    "Spleen",
    "Right kidney",
    "Left kidney",
    "Gallbladder",
    "Oesophagus",
    "Stomach",
    "Aorta",
    "Inferior vena cava",
    "Portal vein",
    "Pancreas",
    "Right adrenal gland",
    "Left adrenal gland",
];

/// Default palette for segments without a known organ colour.
pub(crate) const PALETTE: [[u8; 3]; 8] = [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
];

struct Organ {
    keys: &'static [&'static str],
    code: &'static str,
    meaning: &'static str,
    side: Option<bool>, // Some(true) = right, Some(false) = left
    color: [u8; 3],
}

const ORGANS: &[Organ] = &[
    Organ {
        keys: &["liver"],
        code: "10200004",
        meaning: "Liver",
        side: None,
        color: [221, 130, 101],
    },
    Organ {
        keys: &["spleen"],
        code: "78961009",
        meaning: "Spleen",
        side: None,
        color: [157, 108, 162],
    },
    Organ {
        keys: &["kidney_right", "right kidney", "kidney right"],
        code: "64033007",
        meaning: "Kidney",
        side: Some(true),
        color: [185, 102, 83],
    },
    Organ {
        keys: &["kidney_left", "left kidney", "kidney left"],
        code: "64033007",
        meaning: "Kidney",
        side: Some(false),
        color: [185, 102, 83],
    },
    Organ {
        keys: &["kidney", "kidneys"],
        code: "64033007",
        meaning: "Kidney",
        side: None,
        color: [185, 102, 83],
    },
    Organ {
        keys: &["pancreas"],
        code: "15776009",
        meaning: "Pancreas",
        side: None,
        color: [249, 180, 111],
    },
    Organ {
        keys: &["stomach"],
        code: "69695003",
        meaning: "Stomach",
        side: None,
        color: [216, 132, 105],
    },
    Organ {
        keys: &["aorta"],
        code: "15825003",
        meaning: "Aorta",
        side: None,
        color: [224, 97, 76],
    },
    Organ {
        keys: &["gallbladder", "gall bladder"],
        code: "28231008",
        meaning: "Gallbladder",
        side: None,
        color: [139, 150, 98],
    },
    Organ {
        keys: &["esophagus", "oesophagus"],
        code: "32849002",
        meaning: "Esophagus",
        side: None,
        color: [211, 171, 143],
    },
    Organ {
        keys: &["inferior_vena_cava", "inferior vena cava", "ivc"],
        code: "64131007",
        meaning: "Inferior vena cava",
        side: None,
        color: [0, 151, 206],
    },
    Organ {
        keys: &[
            "portal_vein_and_splenic_vein",
            "portal vein",
            "portal_vein",
            "portal/splenic vein",
        ],
        code: "32764006",
        meaning: "Portal vein",
        side: None,
        color: [0, 112, 165],
    },
    Organ {
        keys: &[
            "adrenal_gland_right",
            "right adrenal",
            "right adrenal gland",
        ],
        code: "23451007",
        meaning: "Adrenal gland",
        side: Some(true),
        color: [244, 214, 49],
    },
    Organ {
        keys: &["adrenal_gland_left", "left adrenal", "left adrenal gland"],
        code: "23451007",
        meaning: "Adrenal gland",
        side: Some(false),
        color: [244, 214, 49],
    },
    Organ {
        keys: &["adrenal gland", "adrenal glands", "adrenal_gland"],
        code: "23451007",
        meaning: "Adrenal gland",
        side: None,
        color: [244, 214, 49],
    },
    Organ {
        keys: &["lung_right", "right lung"],
        code: "39607008",
        meaning: "Lung",
        side: Some(true),
        color: [197, 165, 145],
    },
    Organ {
        keys: &["lung_left", "left lung"],
        code: "39607008",
        meaning: "Lung",
        side: Some(false),
        color: [197, 165, 145],
    },
    Organ {
        keys: &["lung", "lungs"],
        code: "39607008",
        meaning: "Lung",
        side: None,
        color: [197, 165, 145],
    },
    Organ {
        keys: &["heart"],
        code: "80891009",
        meaning: "Heart",
        side: None,
        color: [206, 110, 84],
    },
    Organ {
        keys: &["urinary_bladder", "bladder", "urinary bladder"],
        code: "89837001",
        meaning: "Urinary bladder",
        side: None,
        color: [222, 154, 132],
    },
    Organ {
        keys: &["vertebrae", "vertebra", "spine"],
        code: "51282000",
        meaning: "Vertebra",
        side: None,
        color: [241, 214, 145],
    },
    Organ {
        keys: &["duodenum"],
        code: "38848004",
        meaning: "Duodenum",
        side: None,
        color: [255, 253, 229],
    },
    Organ {
        keys: &["colon"],
        code: "71854001",
        meaning: "Colon",
        side: None,
        color: [204, 168, 143],
    },
    Organ {
        keys: &["small_bowel", "small bowel", "small intestine"],
        code: "30315005",
        meaning: "Small intestine",
        side: None,
        color: [205, 167, 142],
    },
    Organ {
        keys: &["trachea"],
        code: "44567001",
        meaning: "Trachea",
        side: None,
        color: [182, 228, 255],
    },
    Organ {
        keys: &["splenic vein", "splenic_vein"],
        code: "35819009",
        meaning: "Splenic vein",
        side: None,
        color: [0, 112, 165],
    },
    Organ {
        keys: &["prostate"],
        code: "41216001",
        meaning: "Prostate",
        side: None,
        color: [230, 158, 140],
    },
    Organ {
        keys: &["sacrum"],
        code: "54735007",
        meaning: "Sacrum",
        side: None,
        color: [241, 214, 145],
    },
];

fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase().replace('-', " ")
}

/// SNOMED-CT category (Anatomical Structure) and type (with laterality modifier) for an organ
/// name Lumen knows (`liver`, `kidney_left`, `right adrenal`, `oesophagus`, `vertebrae_L3`, …).
pub fn organ_codes(name: &str) -> Option<(Code, Code, Option<Code>)> {
    let n = normalize_name(name);
    let n_us = n.replace(' ', "_");
    let organ = ORGANS.iter().find(|o| {
        o.keys.iter().any(|k| {
            let k_us = k.replace(' ', "_");
            n == *k || n_us == k_us
        })
    });
    let organ = organ.or_else(|| {
        if n_us.starts_with("vertebrae") || n_us.starts_with("vertebra_") {
            ORGANS.iter().find(|o| o.code == "51282000")
        } else if n_us.starts_with("lung_") {
            let right = n_us.contains("right");
            ORGANS
                .iter()
                .find(|o| o.code == "39607008" && o.side == Some(right))
        } else {
            None
        }
    })?;
    let modifier = organ.side.map(|right| {
        if right {
            Code::sct("24028007", "Right")
        } else {
            Code::sct("7771000", "Left")
        }
    });
    Some((
        anatomical_structure(),
        Code::sct(organ.code, organ.meaning),
        modifier,
    ))
}

pub(crate) fn anatomical_structure() -> Code {
    Code::sct("91723000", "Anatomical Structure")
}

/// The usual colour of the organ `name`, or the palette's colour for segment `label`.
pub fn colour(name: &str, label: u16) -> [u8; 3] {
    ORGANS
        .iter()
        .find(|o| organ_codes(name).is_some_and(|(_, t, _)| t.value == o.code))
        .map(|o| o.color)
        .unwrap_or(PALETTE[usize::from(label.saturating_sub(1)) % PALETTE.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offered_organ_has_its_codes_and_its_own_colour() {
        for name in OFFERED {
            assert!(organ_codes(name).is_some(), "{name} has no SNOMED CT code");
            let colour = colour(name, 1);
            assert!(!PALETTE.contains(&colour), "{name} takes a palette colour");
        }
    }
}
