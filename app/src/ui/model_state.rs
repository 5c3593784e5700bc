//! What the UI knows of the segmenter's model: typed, so readiness and the model's name never
//! have to be read back out of the status text.

/// The open model, as the segmenter announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    pub precision: String,
    pub input_size: u32,
}

impl ModelInfo {
    /// "NAME (precision, S×S)", as the model line and the SEG's algorithm name give it.
    pub fn describe(&self) -> String {
        let (name, precision, size) = (&self.name, &self.precision, self.input_size);
        format!("{name} ({precision}, {size}×{size})")
    }
}

/// Where the model stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelState {
    Opening,
    Ready(ModelInfo),
    /// It could not be started or opened: the reason in words.
    Failed(String),
}

impl ModelState {
    /// The model line of the panel.
    pub fn status(&self) -> String {
        match self {
            Self::Opening => "Opening the model…".into(),
            Self::Ready(info) => format!("Model {}", info.describe()),
            Self::Failed(reason) => reason.clone(),
        }
    }

    /// The open model, once ready.
    pub fn ready(&self) -> Option<&ModelInfo> {
        match self {
            Self::Ready(info) => Some(info),
            _ => None,
        }
    }
}
