//! Entry point of the fuzz target (`app/datasets/fuzz/`) and of its regression replay
//! (`tests/tests/fuzz_regressions.rs`). Built only with the `fuzzing` feature.

use crate::npy::NpyData;
use crate::npz::Npz;
use lumen_study::fuzzing::{names, scratch};

/// The bytes as an `.npz` archive: opened, and every array in it read; each must hold as many
/// values as its shape says, or give an error naming the file.
pub fn npz_file(data: &[u8]) -> Result<(), String> {
    let dir = scratch();
    let path = dir.path().join("fuzz.npz");
    std::fs::write(&path, data).map_err(|e| e.to_string())?;
    let mut npz = match Npz::open(&path) {
        Ok(npz) => npz,
        Err(e) => return names(&path, &e.to_string()),
    };
    for name in npz.names() {
        let array = match npz.array(&name) {
            Ok(array) => array,
            Err(e) => {
                names(&path, &e.to_string())?;
                continue;
            }
        };
        let held = match &array.data {
            NpyData::U8(v) => v.len(),
            NpyData::Int(v) => v.len(),
            NpyData::Float(v) => v.len(),
            NpyData::Str(v) => v.len(),
        };
        if Some(held)
            != array
                .shape
                .iter()
                .try_fold(1usize, |n, d| n.checked_mul(*d))
        {
            return Err(format!("{name}: {held} values for shape {:?}", array.shape));
        }
    }
    Ok(())
}
