//! Display windowing: the DICOM's own window and the standard CT presets.

/// A display window: centre (level) and width, in the volume's units (HU for CT).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Window centre (level).
    pub center: f64,
    /// Window width (> 0).
    pub width: f64,
}

impl Window {
    /// A window from centre and width.
    pub const fn new(center: f64, width: f64) -> Self {
        Self { center, width }
    }
}

/// A named window preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowPreset {
    /// Name shown in the UI.
    pub name: &'static str,
    /// The window.
    pub window: Window,
}

/// The standard CT presets (W/L in HU).
pub const PRESETS: [WindowPreset; 6] = [
    WindowPreset {
        name: "Brain",
        window: Window::new(40.0, 80.0),
    },
    WindowPreset {
        name: "Soft tissue",
        window: Window::new(40.0, 400.0),
    },
    WindowPreset {
        name: "Lung",
        window: Window::new(-600.0, 1500.0),
    },
    WindowPreset {
        name: "Bone",
        window: Window::new(400.0, 1800.0),
    },
    WindowPreset {
        name: "Liver",
        window: Window::new(30.0, 150.0),
    },
    WindowPreset {
        name: "Mediastinum",
        window: Window::new(50.0, 350.0),
    },
];

/// Look a preset up by name (case-insensitive).
pub fn preset(name: &str) -> Option<Window> {
    PRESETS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.window)
}

/// Map values through a linear window to 0..=255 (`lower = c - w/2 → 0`, `upper = c + w/2 → 255`).
///
/// Non-finite values map to 0. A non-positive width is treated as 1.
pub fn window_to_u8(values: &[f32], window: Window) -> Vec<u8> {
    let width = if window.width > 0.0 {
        window.width
    } else {
        1.0
    };
    let lower = window.center - width / 2.0;
    values
        .iter()
        .map(|&v| {
            if !v.is_finite() {
                return 0;
            }
            let t = (f64::from(v) - lower) * 255.0 / width;
            t.round().clamp(0.0, 255.0) as u8
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_documented_values() {
        assert_eq!(preset("brain"), Some(Window::new(40.0, 80.0)));
        assert_eq!(preset("Lung"), Some(Window::new(-600.0, 1500.0)));
        assert_eq!(preset("bone"), Some(Window::new(400.0, 1800.0)));
        assert_eq!(preset("liver"), Some(Window::new(30.0, 150.0)));
        assert_eq!(preset("mediastinum"), Some(Window::new(50.0, 350.0)));
        assert_eq!(preset("soft tissue"), Some(Window::new(40.0, 400.0)));
        assert_eq!(preset("nope"), None);
    }

    #[test]
    fn window_maps_ends_and_middle() {
        let w = Window::new(40.0, 400.0);
        let out = window_to_u8(&[-1000.0, -160.0, 40.0, 240.0, 3000.0, f32::NAN], w);
        assert_eq!(out, vec![0, 0, 128, 255, 255, 0]);
        // zero width does not divide by zero
        assert_eq!(
            window_to_u8(&[0.0, 1.0], Window::new(0.0, 0.0)),
            vec![128, 255]
        );
    }
}
