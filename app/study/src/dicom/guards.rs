//! Guards against damaged and hostile files, run before the parser allocates: declared lengths, sequence nesting, deflate size, pixel data size, values no scanner writes.

use super::FrameHeader;
use super::attrs::get_int;
use super::decode::transfer_syntax_name;
use crate::{Result, StudyError};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use std::path::Path;

/// Walk the element headers at the start of a DICOM stream (`head`, a prefix of a file of
/// `total_len` bytes) and refuse lengths that run past the end of the file: the parser would
/// otherwise try to allocate them (up to 4 GiB) before noticing the damage. Anything this simple
/// walker does not understand is left to the parser (no false alarms on valid files). A deflated
/// data set cannot be walked here: its offset in the file is returned, for [`check_deflated`].
pub(super) fn check_declared_lengths(
    name: &Path,
    head: &[u8],
    total_len: u64,
) -> Result<Option<usize>> {
    let pos: usize = if head.len() >= 132 && &head[128..132] == b"DICM" {
        132
    } else if head.starts_with(b"DICM") {
        4
    } else {
        return Ok(None);
    };
    walk_lengths(name, head, total_len, pos, true)
}

/// The walk of [`check_declared_lengths`] from `pos`, in the file meta group (`in_meta`) or in an
/// inflated data set (explicit VR little endian).
pub(super) fn walk_lengths(
    name: &Path,
    head: &[u8],
    total_len: u64,
    pos: usize,
    in_meta: bool,
) -> Result<Option<usize>> {
    let mut walk = LengthWalk {
        name,
        head,
        total_len,
        pos,
        explicit: true,
        big_endian: false,
        in_pixel_items: false,
        open: Vec::new(),
    };
    if in_meta {
        let Some(ts) = walk.meta_group()? else {
            return Ok(None);
        };
        match ts.as_str() {
            "1.2.840.10008.1.2" => walk.explicit = false,
            "1.2.840.10008.1.2.2" => walk.big_endian = true,
            DEFLATED => return Ok(Some(walk.pos)),
            _ => {}
        }
    }
    loop {
        walk.close_ended();
        if walk.open.len() > 2 * MAX_SEQUENCE_DEPTH {
            return Err(StudyError::invalid(
                name,
                format!("sequences nested more than {MAX_SEQUENCE_DEPTH} deep"),
            ));
        }
        if walk.pos + 8 > head.len() {
            return Ok(None);
        }
        let (group, elem) = (walk.u16_at(walk.pos), walk.u16_at(walk.pos + 2));
        // between a sequence's items the parser reads item headers; among an item's elements
        // only an item delimiter, and any other (FFFE,xxxx) as a plain element with a value
        let between_items =
            walk.in_pixel_items || matches!(walk.open.last(), Some((_, Open::Sequence)));
        if group == 0xFFFE && (between_items || elem == 0xE00D) {
            walk.item_or_delimiter(elem)?;
            continue;
        }
        let header = if group == 0xFFFE {
            Some((walk.tag_and_length(), false, 1))
        } else {
            walk.element_header()
        };
        let Some((len, is_sq, unit)) = header else {
            return Ok(None);
        };
        if len == u32::MAX {
            if (group, elem) == (0x7FE0, 0x0010) {
                walk.in_pixel_items = true;
            } else {
                walk.open.push((None, Open::Sequence)); // the parser takes it for a sequence
            }
            continue; // undefined length: walk into it
        }
        walk.check_fits(u64::from(len), || {
            format!("element ({group:04X},{elem:04X})")
        })?;
        let (pos, len) = (walk.pos, len as usize);
        if is_sq {
            walk.open.push((Some(pos + len), Open::Sequence));
        }
        if !is_sq {
            // the parser reads whole values only: an AT of 5 bytes leaves its 5th byte to be read
            // as the start of the next header, and so does the walk
            walk.pos = pos.saturating_add(len - len % unit);
        }
    }
}

/// Where the length walk is in `head`, how the data set is encoded, and the open sequences and
/// items by where they end (None: at a delimiter). The parser recurses once per level, so a file
/// nested deeply enough overflows its thread's stack.
struct LengthWalk<'a> {
    name: &'a Path,
    head: &'a [u8],
    total_len: u64,
    pos: usize,
    explicit: bool,
    big_endian: bool,
    in_pixel_items: bool,
    open: Vec<(Option<usize>, Open)>,
}

/// What an entry of [`LengthWalk::open`] is: the parser expects item headers inside a sequence
/// and elements inside an item.
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Sequence,
    Item,
}

impl LengthWalk<'_> {
    fn u16_at(&self, at: usize) -> u16 {
        let b = [self.head[at], self.head[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = [
            self.head[at],
            self.head[at + 1],
            self.head[at + 2],
            self.head[at + 3],
        ];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// Steps over the file meta group as the parser reads it: explicit VR little endian, for as
    /// many bytes as its group length (0002,0000) says, whatever group the elements in them
    /// belong to (the parser consumes an off-group element as meta), each value skipped whole;
    /// without a group length, while the group is 0002. The transfer syntax; None where the walk
    /// cannot follow (the parser fails there itself).
    fn meta_group(&mut self) -> Result<Option<String>> {
        let start = self.pos;
        let declared_end = (start + 12 <= self.head.len()
            && (self.u16_at(start), self.u16_at(start + 2)) == (0x0002, 0x0000)
            && self.u16_at(start + 6) == 4)
            .then(|| (start + 12).saturating_add(self.u32_at(start + 8) as usize));
        let mut ts = String::new();
        loop {
            let in_meta = match declared_end {
                Some(end) => self.pos < end,
                None => self.pos + 2 <= self.head.len() && self.u16_at(self.pos) == 0x0002,
            };
            if !in_meta {
                return Ok(Some(ts));
            }
            if self.pos + 8 > self.head.len() {
                return Ok(None);
            }
            let (group, elem) = (self.u16_at(self.pos), self.u16_at(self.pos + 2));
            let len = if group == 0xFFFE {
                self.tag_and_length()
            } else {
                match self.element_header() {
                    Some((len, _, _)) => len,
                    None => return Ok(None),
                }
            };
            if len == u32::MAX {
                return Ok(None); // the parser refuses an undefined length here
            }
            self.check_fits(u64::from(len), || {
                format!("meta element ({group:04X},{elem:04X})")
            })?;
            let (at, len) = (self.pos, len as usize);
            if (group, elem) == (0x0002, 0x0010) && at + len <= self.head.len() {
                ts = String::from_utf8_lossy(&self.head[at..at + len])
                    .trim_end_matches(['\0', ' '])
                    .to_string();
            }
            self.pos = at.saturating_add(len);
        }
    }

    /// Steps over a group FFFE header at `pos`, which has no VR: the tag and a 32-bit length.
    fn tag_and_length(&mut self) -> u32 {
        self.pos += 8;
        self.u32_at(self.pos - 4)
    }

    /// Closes the sequences and items of defined length that end at or before `pos`.
    fn close_ended(&mut self) {
        while let Some((Some(end), _)) = self.open.last()
            && self.pos >= *end
        {
            self.open.pop();
        }
    }

    /// Refuses `len` bytes (of `what`) declared at `pos` that run past the end of the file.
    fn check_fits(&self, len: u64, what: impl FnOnce() -> String) -> Result<()> {
        let remaining = self.total_len.saturating_sub(self.pos as u64);
        if len > remaining {
            return Err(StudyError::read(
                self.name,
                format!(
                    "damaged file: {} declares {len} bytes, only {remaining} remain",
                    what()
                ),
            ));
        }
        Ok(())
    }

    /// An item, item delimiter or sequence delimiter (group FFFE) at `pos`, stepped over; any
    /// other (FFFE,xxxx) element with its value.
    fn item_or_delimiter(&mut self, elem: u16) -> Result<()> {
        let len = self.tag_and_length();
        match elem {
            0xE000 if len != u32::MAX => {
                self.check_fits(u64::from(len), || "an item".to_string())?;
                if self.in_pixel_items {
                    self.pos += len as usize; // a compressed fragment
                } else {
                    self.open.push((Some(self.pos + len as usize), Open::Item));
                }
            }
            0xE000 => self.open.push((None, Open::Item)),
            0xE0DD if self.in_pixel_items => self.in_pixel_items = false,
            0xE00D | 0xE0DD => {
                self.open.pop();
            }
            // no item nor delimiter: the parser reads it as an element with a value of `len`
            _ if len != u32::MAX => {
                self.check_fits(u64::from(len), || format!("element (FFFE,{elem:04X})"))?;
                self.pos += len as usize;
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads the element header at `pos` and steps past it: the declared length, whether it is
    /// a sequence, and the size of one value of its VR ([`value_unit`]). None where the header
    /// runs past `head` or the walk cannot follow.
    fn element_header(&mut self) -> Option<(u32, bool, usize)> {
        const LONG_VRS: [&[u8; 2]; 13] = [
            b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
            b"UV",
        ];
        const SHORT_VRS: [&[u8; 2]; 21] = [
            b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
            b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
        ];
        let pos = self.pos;
        if !self.explicit {
            self.pos += 8;
            // the parser takes the VR from the dictionary: a sequence of defined length is
            // walked into, not over, so the lengths inside it are checked too
            let tag = dicom_core::Tag(self.u16_at(pos), self.u16_at(pos + 2));
            let vr = StandardDataDictionary
                .by_tag(tag)
                .map_or(dicom_core::VR::UN, |entry| entry.vr().relaxed());
            let unit = value_unit(vr.to_bytes());
            return Some((self.u32_at(pos + 4), vr == dicom_core::VR::SQ, unit));
        }
        let vr = [self.head[pos + 4], self.head[pos + 5]];
        // an unknown VR is read like UN (2 reserved bytes, 32-bit length), as the parser does
        let (len, header) = if LONG_VRS.contains(&&vr) || !SHORT_VRS.contains(&&vr) {
            if pos + 12 > self.head.len() {
                return None;
            }
            if &vr == b"UN" && self.u32_at(pos + 8) == u32::MAX {
                return None; // implicit-VR content inside: leave it to the parser
            }
            (self.u32_at(pos + 8), 12)
        } else {
            (u32::from(self.u16_at(pos + 6)), 8)
        };
        self.pos += header;
        Some((len, &vr == b"SQ", value_unit(vr)))
    }
}

/// The bytes of one value of a binary VR of fixed size (1 for strings and bytes): dicom-rs reads
/// `length / unit` whole values and leaves the rest of an odd length unread.
fn value_unit(vr: [u8; 2]) -> usize {
    match &vr {
        b"US" | b"SS" | b"OW" => 2,
        b"AT" | b"FL" | b"OF" | b"SL" | b"UL" | b"OL" => 4,
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        _ => 1,
    }
}

pub(super) fn check_file_lengths(path: &Path) -> Result<()> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path).map_err(|e| StudyError::read(path, e))?;
    let total = file
        .metadata()
        .map(|m| m.len())
        .map_err(|e| StudyError::read(path, e))?;
    let mut head = Vec::new();
    (&mut file)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| StudyError::read(path, e))?;
    if let Some(at) = check_declared_lengths(path, &head, total)? {
        file.seek(std::io::SeekFrom::Start(at as u64))
            .map_err(|e| StudyError::read(path, e))?;
        check_deflated(path, file)?;
    }
    Ok(())
}

/// Largest |row · column| of an orientation still taken as orthogonal (about 0.06°).
pub(super) const ORTHOGONAL_TOLERANCE: f64 = 1e-3;
/// The deepest nesting of sequences accepted (real files nest a few levels; the parser has
/// been seen to overflow its stack at 2000).
pub(super) const MAX_SEQUENCE_DEPTH: usize = 128;
/// How much of a file the length walk reads.
pub(super) const HEAD_BYTES: u64 = 64 << 10;
/// Deflated Explicit VR Little Endian.
pub(super) const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
/// The most a deflated data set may inflate to (a 2 GiB image and its header).
pub(super) const MAX_INFLATED: u64 = (2 << 30) + (64 << 20);

/// The length walk of a deflated data set (`deflated`, the file from the data set on): inflated
/// once to learn its size, without keeping more than its head, since the parser inflates it
/// again and would believe the same lengths.
pub(super) fn check_deflated(name: &Path, deflated: impl std::io::Read) -> Result<()> {
    use std::io::Read;
    let mut inflated = flate2::read::DeflateDecoder::new(deflated).take(MAX_INFLATED + 1);
    let mut head = Vec::new();
    (&mut inflated)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| StudyError::read(name, format!("damaged deflated data set ({e})")))?;
    let rest = std::io::copy(&mut inflated, &mut std::io::sink())
        .map_err(|e| StudyError::read(name, format!("damaged deflated data set ({e})")))?;
    let total = head.len() as u64 + rest;
    if total > MAX_INFLATED {
        return Err(StudyError::invalid(
            name,
            format!(
                "the deflated data set inflates to more than {} MiB",
                MAX_INFLATED >> 20
            ),
        ));
    }
    walk_lengths(name, &head, total, 0, false).map(|_| ())
}

/// Run a third-party parser/decoder, turning a panic on damaged input into an error for `path`.
pub(super) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(StudyError::read(
            path,
            "damaged file: the DICOM parser failed",
        ))
    })
}

pub(super) fn open_header(path: &Path) -> Result<DefaultDicomObject> {
    check_file_lengths(path)?;
    guarded(path, || {
        OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
            .map_err(|e| StudyError::read(path, format!("not a readable DICOM file ({e})")))
    })
}

pub(super) fn open_full(path: &Path) -> Result<DefaultDicomObject> {
    check_file_lengths(path)?;
    guarded(path, || {
        OpenFileOptions::new()
            .open_file(path)
            .map_err(|e| StudyError::read(path, format!("not a readable DICOM file ({e})")))
    })
}

/// [`open_full`] for decoding: the pixel data is checked against the header first.
pub(super) fn open_image(path: &Path) -> Result<DefaultDicomObject> {
    let file = open_full(path)?;
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
    check_pixel_data(path, &file, len)?;
    Ok(file)
}

/// Refuses values no scanner writes and that would silently make a wrong image: a rescale
/// slope of 0 (every voxel the intercept), rescaled values beyond f32, a position or pixel
/// size beyond any body. Names the attribute.
pub(super) fn check_values(path: &Path, h: &FrameHeader) -> Result<()> {
    let refuse = |what: String| Err(StudyError::invalid(path, what));
    if !h.slope.is_finite() || h.slope == 0.0 || h.slope.abs() > MAX_RESCALE {
        return refuse(format!("Rescale Slope (0028,1053) {} is unusable", h.slope));
    }
    if !h.intercept.is_finite() || h.intercept.abs() > MAX_RESCALE {
        return refuse(format!(
            "Rescale Intercept (0028,1052) {} is unusable",
            h.intercept
        ));
    }
    if let Some(p) = h.position
        && p.iter()
            .any(|v| !v.is_finite() || v.abs() > MAX_POSITION_MM)
    {
        return refuse(format!(
            "Image Position (Patient) (0020,0032) {p:?} mm is beyond any body"
        ));
    }
    if let Some(s) = h.pixel_spacing
        && s.iter()
            .any(|v| !v.is_finite() || *v <= 0.0 || *v > MAX_PIXEL_MM)
    {
        return refuse(format!(
            "Pixel Spacing (0028,0030) {s:?} mm is not a pixel size"
        ));
    }
    Ok(())
}

/// The largest rescale slope or intercept accepted (PET's are far smaller).
pub(super) const MAX_RESCALE: f64 = 1e6;
/// How far from the scanner's origin a slice may be, in mm (10 m).
pub(super) const MAX_POSITION_MM: f64 = 1e4;
/// The largest pixel accepted, in mm.
pub(super) const MAX_PIXEL_MM: f64 = 1000.0;

/// Refuse headers that declare far more pixels than the file could hold (even compressed), before
/// anything is allocated for them.
pub(super) fn check_plausible_size(
    path: &Path,
    frames: &[FrameHeader],
    file_len: u64,
) -> Result<()> {
    const MAX_RATIO: u64 = 256;
    let Some(f) = frames.first() else {
        return Ok(());
    };
    let pixels = u64::from(f.rows) * u64::from(f.columns) * frames.len() as u64;
    if pixels > MAX_RATIO.saturating_mul(file_len.max(1)) {
        return Err(StudyError::invalid(
            path,
            format!(
                "declares {}×{}×{} pixels, implausible for a file of {file_len} bytes",
                f.columns,
                f.rows,
                frames.len()
            ),
        ));
    }
    Ok(())
}

/// The most pixel data Lumen reads from one file, all frames as stored (2 GiB): far more than any
/// CT or MR file holds, far less than would exhaust a workstation.
pub(super) const MAX_PIXEL_BYTES: u64 = 2 << 30;

/// Refuse pixel data that the header makes absurd, or that contradicts the header, before any
/// decoder allocates for it: Rows × Columns × frames × samples × bits at most [`MAX_PIXEL_BYTES`];
/// native (uncompressed) pixel data at least that long (`file_len` bounds it where the header was
/// read without the pixel data); and every JPEG, JPEG-LS or JPEG 2000 codestream no larger than
/// the header says, since the codecs allocate for the size in their own header (a 6 KiB file can
/// ask for 8 GiB).
pub(super) fn check_pixel_data(
    path: &Path,
    file: &DefaultDicomObject,
    file_len: u64,
) -> Result<()> {
    let obj: &InMemDicomObject = file;
    let dim = |tag, default| {
        get_int(obj, tag)
            .or(default)
            .map(|v| u64::try_from(v).unwrap_or(0))
    };
    let (Some(rows), Some(columns)) = (dim(tags::ROWS, None), dim(tags::COLUMNS, None)) else {
        return Ok(()); // no image: frame_headers says so
    };
    let frames = dim(tags::NUMBER_OF_FRAMES, Some(1)).unwrap_or(1).max(1);
    let samples = dim(tags::SAMPLES_PER_PIXEL, Some(1)).unwrap_or(1).max(1);
    let bits = dim(tags::BITS_ALLOCATED, None);
    let shape = format!(
        "{columns}×{rows} pixels × {frames} frames × {samples} samples × {} bits",
        bits.map_or("?".to_string(), |b| b.to_string())
    );
    let declared = bits.map(|b| {
        rows.saturating_mul(columns)
            .saturating_mul(frames)
            .saturating_mul(samples)
            .saturating_mul(b)
            .div_ceil(8)
    });
    if let Some(declared) = declared
        && declared > MAX_PIXEL_BYTES
    {
        return Err(StudyError::invalid(
            path,
            format!(
                "declares {shape} = {} MiB of pixel data; Lumen reads at most {} MiB from one file",
                declared >> 20,
                MAX_PIXEL_BYTES >> 20
            ),
        ));
    }
    if let (Some(bits), Some(stored)) = (bits, dim(tags::BITS_STORED, None))
        && (stored == 0 || stored > bits)
    {
        // masking to 0 bits blanks the image; more than allocated has no meaning
        return Err(StudyError::invalid(
            path,
            format!(
                "Bits Stored (0028,0101) {stored} is not within Bits Allocated (0028,0100) {bits}"
            ),
        ));
    }
    let ts = file.meta().transfer_syntax().trim_end_matches('\0');
    let native = matches!(
        ts,
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2" | DEFLATED
    );
    let value = obj.get(tags::PIXEL_DATA).map(|e| e.value());
    if let (true, Some(declared)) = (native, declared) {
        let in_element = value.and_then(|v| v.primitive());
        let (held, what) = match in_element {
            Some(p) => (p.calculate_byte_len() as u64, "Pixel Data holds"),
            // read without the pixel data: the file size bounds it (a deflated one inflates)
            None if ts != DEFLATED => (file_len, "the whole file has"),
            None => return Ok(()),
        };
        if held < declared {
            return Err(StudyError::read(
                path,
                format!(
                    "damaged file: {what} {held} bytes, the header declares {shape} = {declared} bytes"
                ),
            ));
        }
        // much more data than the header's size: Rows or Columns are wrong, and the image
        // would be read garbled or in part (an odd length's pad byte is fine)
        if in_element.is_some() && held > declared + declared / 16 + 2 {
            return Err(StudyError::invalid(
                path,
                format!(
                    "Pixel Data holds {held} bytes, but Rows (0028,0010) and Columns (0028,0011) \
                     declare {shape} = {declared} bytes"
                ),
            ));
        }
    }
    for (k, fragment) in value
        .and_then(|v| v.fragments())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if ts == RLE_LOSSLESS {
            check_rle_header(path, k, fragment)?;
        }
        let Some((w, h, components)) = codestream_size(fragment) else {
            continue;
        };
        // JPEG allows a height of 0, given later by a DNL marker
        if u64::from(w) != columns
            || (h != 0 && u64::from(h) != rows)
            || u64::from(components) > samples
        {
            return Err(StudyError::read(
                path,
                format!(
                    "damaged file: the {} codestream in fragment {k} is {w}×{h} × {components} components, the header declares {columns}×{rows} × {samples}",
                    transfer_syntax_name(ts)
                ),
            ));
        }
    }
    Ok(())
}

/// The RLE Lossless transfer syntax.
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// An RLE fragment starts with a 64-byte header: the segment count (at most 15, PS3.5 G.5) and
/// 15 offsets. The decoder reserves room for as many offsets as the count says before reading
/// them, so a damaged count (4 billion) would ask for 16 GiB.
pub(super) fn check_rle_header(path: &Path, k: usize, fragment: &[u8]) -> Result<()> {
    let segments = fragment
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match segments {
        Some(1..=15) if fragment.len() >= 64 => Ok(()),
        Some(n) if fragment.len() >= 64 => Err(StudyError::read(
            path,
            format!("damaged file: RLE fragment {k} declares {n} segments (1 to 15 allowed)"),
        )),
        _ => Err(StudyError::read(
            path,
            format!(
                "damaged file: RLE fragment {k} is {} bytes, shorter than its 64-byte header",
                fragment.len()
            ),
        )),
    }
}

/// Width, height and component count from the header of a JPEG or JPEG-LS (SOFn) or JPEG 2000
/// (SIZ) codestream at the start of `fragment`; None for anything else (a continuation fragment,
/// RLE, a header this reader does not follow).
pub(super) fn codestream_size(fragment: &[u8]) -> Option<(u32, u32, u32)> {
    let u16_at = |i: usize| {
        Some(u16::from_be_bytes([
            *fragment.get(i)?,
            *fragment.get(i + 1)?,
        ]))
    };
    let u32_at = |i: usize| {
        Some(u32::from_be_bytes([
            *fragment.get(i)?,
            *fragment.get(i + 1)?,
            *fragment.get(i + 2)?,
            *fragment.get(i + 3)?,
        ]))
    };
    if fragment.starts_with(&[0xFF, 0xD8]) {
        let mut pos = 2;
        loop {
            while fragment.get(pos + 1) == Some(&0xFF) {
                pos += 1; // fill bytes
            }
            if fragment.get(pos) != Some(&0xFF) {
                return None;
            }
            let marker = *fragment.get(pos + 1)?;
            match marker {
                // SOF0..SOF15 (not DHT, JPG, DAC) and JPEG-LS SOF55: P, Y, X, Nf
                0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {}
                0xF7 => {}
                0xD0..=0xD7 | 0x01 => {
                    pos += 2;
                    continue;
                }
                0xDA | 0xD9 => return None, // scan or end before any frame header
                _ => {
                    pos += 2 + usize::from(u16_at(pos + 2)?);
                    continue;
                }
            }
            let h = u16_at(pos + 5)?;
            let w = u16_at(pos + 7)?;
            let nf = *fragment.get(pos + 9)?;
            return Some((u32::from(w), u32::from(h), u32::from(nf)));
        }
    }
    // a raw codestream, or one in a JP2 file (signature box first)
    let soc = if fragment.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        0
    } else if fragment.starts_with(&[0, 0, 0, 0x0C, b'j', b'P', b' ', b' ']) {
        fragment
            .get(..fragment.len().min(4096))?
            .windows(4)
            .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])?
    } else {
        return None;
    };
    let siz = soc + 4; // Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, 4 tile fields, Csiz
    let (x, y) = (u32_at(siz + 4)?, u32_at(siz + 8)?);
    let (x0, y0) = (u32_at(siz + 12)?, u32_at(siz + 16)?);
    let components = u16_at(siz + 36)?;
    Some((
        x.saturating_sub(x0),
        y.saturating_sub(y0),
        u32::from(components),
    ))
}
