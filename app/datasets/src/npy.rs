//! `.npy` arrays (NumPy's format 1.0–3.0): the header is parsed here, the data read as it lies.
//! Only C-order arrays of booleans, integers, floats and fixed-width Unicode strings are needed.

use std::fmt;

/// A decoded array: its shape (C order) and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

/// The values of an array, widened to a few storage types.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `u1` and `b1` (booleans are 0/1).
    U8(Vec<u8>),
    /// Every other integer type.
    Int(Vec<i64>),
    /// `f2` is not supported; `f4` and `f8` become f64.
    Float(Vec<f64>),
    /// `U<n>` strings, trailing NULs removed.
    Str(Vec<String>),
}

impl NpyData {
    /// The element type in words, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            NpyData::U8(_) => "8-bit integers",
            NpyData::Int(_) => "integers",
            NpyData::Float(_) => "floats",
            NpyData::Str(_) => "strings",
        }
    }
}

/// Why an `.npy` could not be read (the caller adds the file name).
#[derive(Debug, Clone, PartialEq)]
pub struct NpyError(pub String);

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(reason: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(reason.into()))
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses a whole `.npy` file held in memory.
pub fn parse(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return err("not a NumPy .npy array (bad magic)");
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return err(format!("unsupported .npy format version {v}")),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or_else(|| NpyError("the header is truncated".into()))?;
    let header =
        std::str::from_utf8(header).map_err(|_| NpyError("the header is not text".into()))?;
    let header = Header::parse(header)?;
    let body = &bytes[start + header_len..];
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| NpyError(format!("shape {:?} is too large", header.shape)))?;
    let expected = count
        .checked_mul(header.dtype.size)
        .ok_or_else(|| NpyError(format!("shape {:?} is too large", header.shape)))?;
    if body.len() < expected {
        return err(format!(
            "the data is truncated: shape {:?} of {} needs {expected} bytes, the file has {}",
            header.shape,
            header.dtype.descr,
            body.len()
        ));
    }
    let data = header.dtype.decode(&body[..expected])?;
    Ok(NpyArray {
        shape: header.shape,
        data,
    })
}

#[derive(Debug)]
struct Header {
    dtype: Dtype,
    shape: Vec<usize>,
}

impl Header {
    /// The header is a Python dict literal, e.g.
    /// `{'descr': '|u1', 'fortran_order': False, 'shape': (148, 257, 257), }`.
    fn parse(text: &str) -> Result<Self, NpyError> {
        let descr = value_after(text, "descr")
            .and_then(quoted)
            .ok_or_else(|| NpyError(format!("the header has no dtype: {text:?}")))?;
        let fortran = value_after(text, "fortran_order")
            .ok_or_else(|| NpyError(format!("the header has no fortran_order: {text:?}")))?;
        if fortran.starts_with("True") {
            return err("Fortran-order arrays are not supported");
        }
        let shape = value_after(text, "shape")
            .and_then(tuple)
            .ok_or_else(|| NpyError(format!("the header has no readable shape: {text:?}")))?;
        Ok(Self {
            dtype: Dtype::parse(descr)?,
            shape,
        })
    }
}

/// The text after `'key':` (or `"key":`), leading spaces removed.
fn value_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    ["'", "\""].iter().find_map(|q| {
        let pattern = format!("{q}{key}{q}");
        let at = text.find(&pattern)? + pattern.len();
        let rest = text[at..].trim_start().strip_prefix(':')?;
        Some(rest.trim_start())
    })
}

/// The contents of a leading `'…'` or `"…"`.
fn quoted(text: &str) -> Option<&str> {
    let q = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &text[1..];
    rest.find(q).map(|end| &rest[..end])
}

/// A leading `(a, b, c)` tuple of sizes.
fn tuple(text: &str) -> Option<Vec<usize>> {
    let inner = text.strip_prefix('(')?;
    let inner = &inner[..inner.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Unsigned,
    Signed,
    Float,
    Unicode,
}

#[derive(Debug, Clone)]
struct Dtype {
    descr: String,
    kind: Kind,
    big_endian: bool,
    /// Bytes per element.
    size: usize,
}

impl Dtype {
    fn parse(descr: &str) -> Result<Self, NpyError> {
        let unsupported = || NpyError(format!("unsupported dtype '{descr}'"));
        let mut chars = descr.chars();
        let big_endian = match chars.next() {
            Some('<' | '|' | '=') => false,
            Some('>') => true,
            _ => return Err(unsupported()),
        };
        let kind = match chars.next() {
            Some('b') => Kind::Bool,
            Some('u') => Kind::Unsigned,
            Some('i') => Kind::Signed,
            Some('f') => Kind::Float,
            Some('U') => Kind::Unicode,
            _ => return Err(unsupported()),
        };
        let n: usize = chars.as_str().parse().map_err(|_| unsupported())?;
        let size = match (kind, n) {
            (Kind::Bool, 1)
            | (Kind::Unsigned | Kind::Signed, 1 | 2 | 4 | 8)
            | (Kind::Float, 4 | 8) => n,
            (Kind::Unicode, n) if n > 0 => n.checked_mul(4).ok_or_else(unsupported)?,
            _ => return Err(unsupported()),
        };
        Ok(Self {
            descr: descr.to_string(),
            kind,
            big_endian,
            size,
        })
    }

    fn decode(&self, body: &[u8]) -> Result<NpyData, NpyError> {
        let words = body.chunks_exact(self.size);
        let word = |chunk: &[u8]| -> [u8; 8] {
            let mut b = [0u8; 8];
            if self.big_endian {
                for (i, v) in chunk.iter().rev().enumerate() {
                    b[i] = *v;
                }
            } else {
                b[..chunk.len()].copy_from_slice(chunk);
            }
            b
        };
        Ok(match (self.kind, self.size) {
            (Kind::Bool | Kind::Unsigned, 1) => NpyData::U8(body.to_vec()),
            (Kind::Unsigned, 8) => NpyData::Int(
                words
                    .map(|c| i64::try_from(u64::from_le_bytes(word(c))))
                    .collect::<Result<_, _>>()
                    .map_err(|_| NpyError("a uint64 value exceeds the int64 range".into()))?,
            ),
            (Kind::Unsigned, _) => {
                NpyData::Int(words.map(|c| u64::from_le_bytes(word(c)) as i64).collect())
            }
            (Kind::Signed, n) => {
                let shift = 64 - 8 * n as u32;
                // Sign-extend from n bytes.
                NpyData::Int(
                    words
                        .map(|c| (i64::from_le_bytes(word(c)) << shift) >> shift)
                        .collect(),
                )
            }
            (Kind::Float, 4) => NpyData::Float(
                words
                    .map(|c| f64::from(f32::from_bits(u64::from_le_bytes(word(c)) as u32)))
                    .collect(),
            ),
            (Kind::Float, _) => NpyData::Float(
                words
                    .map(|c| f64::from_bits(u64::from_le_bytes(word(c))))
                    .collect(),
            ),
            (Kind::Unicode, _) => NpyData::Str(
                words
                    .map(|c| self.decode_str(c))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return err(format!("unsupported dtype '{}'", self.descr)),
        })
    }

    /// UTF-32 code units, NUL-padded.
    fn decode_str(&self, chunk: &[u8]) -> Result<String, NpyError> {
        chunk
            .chunks_exact(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                if self.big_endian {
                    u32::from_be_bytes(b)
                } else {
                    u32::from_le_bytes(b)
                }
            })
            .take_while(|u| *u != 0)
            .map(|u| {
                char::from_u32(u).ok_or_else(|| NpyError(format!("invalid character U+{u:X}")))
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An `.npy` file as NumPy 1.0 writes it (header padded to a multiple of 64).
    pub(crate) fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend([1, 0]);
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn reads_u8_volumes_and_small_ints() {
        let a = parse(&npy("|u1", "(2, 3)", &[1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, NpyData::U8(vec![1, 2, 3, 4, 5, 6]));
        let body: Vec<u8> = [-2i16, 300].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = parse(&npy("<i2", "(2,)", &body)).unwrap();
        assert_eq!(b.data, NpyData::Int(vec![-2, 300]));
        let body: Vec<u8> = [7u16, 65535].iter().flat_map(|v| v.to_be_bytes()).collect();
        let c = parse(&npy(">u2", "(2,)", &body)).unwrap();
        assert_eq!(c.data, NpyData::Int(vec![7, 65535]));
    }

    #[test]
    fn reads_floats_and_unicode_names() {
        let body: Vec<u8> = [1.5f32, -3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<f4", "(2,)", &body)).unwrap();
        assert_eq!(a.data, NpyData::Float(vec![1.5, -3.0]));
        let mut body = Vec::new();
        for name in ["liver", "aorta"] {
            let mut units: Vec<u32> = name.chars().map(u32::from).collect();
            units.resize(6, 0);
            body.extend(units.iter().flat_map(|u| u.to_le_bytes()));
        }
        let s = parse(&npy("<U6", "(2,)", &body)).unwrap();
        assert_eq!(s.data, NpyData::Str(vec!["liver".into(), "aorta".into()]));
        let scalar = parse(&npy("<f8", "()", &2.0f64.to_le_bytes())).unwrap();
        assert!(scalar.shape.is_empty());
    }

    #[test]
    fn damaged_files_say_why() {
        let truncated = parse(&npy("|u1", "(4, 4)", &[0; 10])).unwrap_err();
        assert!(truncated.0.contains("truncated"), "{truncated}");
        assert!(
            parse(b"PK\x03\x04 not npy")
                .unwrap_err()
                .0
                .contains("magic")
        );
        assert!(
            parse(&npy("<c8", "(1,)", &[0; 8]))
                .unwrap_err()
                .0
                .contains("dtype")
        );
        let mut fortran = npy("|u1", "(1,)", &[0]);
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(parse(&fortran).unwrap_err().0.contains("Fortran"));
        let huge = parse(&npy("|u1", "(99999999999, 99999999999)", &[])).unwrap_err();
        assert!(
            huge.0.contains("too large") || huge.0.contains("truncated"),
            "{huge}"
        );
    }
}
