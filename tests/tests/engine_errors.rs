//! Broken model bundles give clear errors naming the file and the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_engine::model::{ModelError, SamModel, sha256_file};
use lumen_engine::runtime::SessionConfig;
use lumen_tests::starter_model_dir;
use std::path::{Path, PathBuf};

/// A writable copy of the bundled model.
fn bundle_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["model.toml", "encoder.onnx", "decoder.onnx"] {
        std::fs::copy(starter_model_dir().join(name), dir.path().join(name)).unwrap();
    }
    let path = dir.path().to_path_buf();
    (dir, path)
}

fn edit_manifest(dir: &Path, edit: impl Fn(String) -> String) {
    let path = dir.join("model.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
}

fn load(dir: &Path) -> Result<SamModel, ModelError> {
    SamModel::load(dir, &SessionConfig::default())
}

#[test]
fn a_missing_file_is_named() {
    let (_keep, dir) = bundle_copy();
    std::fs::remove_file(dir.join("decoder.onnx")).unwrap();
    let err = load(&dir).err().unwrap();
    assert!(matches!(err, ModelError::MissingFile { .. }));
    assert!(err.to_string().contains("decoder.onnx is missing"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = load(empty.path()).err().unwrap();
    assert!(err.to_string().contains("model.toml is missing"), "{err}");
}

#[test]
fn a_damaged_file_fails_its_checksum() {
    let (_keep, dir) = bundle_copy();
    let mut bytes = std::fs::read(dir.join("encoder.onnx")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(dir.join("encoder.onnx"), bytes).unwrap();
    let err = load(&dir).err().unwrap();
    assert!(matches!(err, ModelError::Checksum { .. }));
    assert!(err.to_string().contains("encoder.onnx is corrupt"), "{err}");
}

#[test]
fn a_file_that_is_not_onnx_is_refused_by_the_runtime_with_its_name() {
    let (_keep, dir) = bundle_copy();
    std::fs::write(dir.join("decoder.onnx"), b"this is not a protobuf model").unwrap();
    let sha = sha256_file(&dir.join("decoder.onnx")).unwrap();
    let old = lumen_engine::model::read_manifest(&dir)
        .unwrap()
        .files
        .decoder
        .sha256;
    edit_manifest(&dir, |text| text.replace(&old, &sha));
    let err = load(&dir).err().unwrap();
    let message = err.to_string();
    assert!(
        message.contains("could not load model") && message.contains("decoder.onnx"),
        "{message}"
    );
}

#[test]
fn swapped_files_break_the_contract_and_say_which_tensor() {
    let (_keep, dir) = bundle_copy();
    edit_manifest(&dir, |text| {
        text.replace("\"encoder.onnx\"", "\"SWAP\"")
            .replace("\"decoder.onnx\"", "\"encoder.onnx\"")
            .replace("\"SWAP\"", "\"decoder.onnx\"")
    });
    // The checksums now point at the other file too, so swap them as well.
    let manifest = lumen_engine::model::read_manifest(&dir).unwrap();
    let (enc, dec) = (
        manifest.files.encoder.sha256.clone(),
        manifest.files.decoder.sha256.clone(),
    );
    edit_manifest(&dir, |text| {
        text.replace(&enc, "SWAP")
            .replace(&dec, &enc)
            .replace("SWAP", &dec)
    });
    let err = load(&dir).err().unwrap();
    assert!(matches!(err, ModelError::Contract { .. }), "{err}");
    assert!(err.to_string().contains("has no input `image`"), "{err}");
}

#[test]
fn a_manifest_that_disagrees_with_the_encoder_input_is_refused() {
    let (_keep, dir) = bundle_copy();
    edit_manifest(&dir, |text| {
        text.replace("input_size = 256", "input_size = 1024")
    });
    let err = load(&dir).err().unwrap();
    assert!(
        err.to_string().contains("input_size needs [1,3,1024,1024]"),
        "{err}"
    );
}

#[test]
fn an_unreadable_manifest_names_the_file_and_the_key() {
    let (_keep, dir) = bundle_copy();
    edit_manifest(&dir, |text| {
        text.replace("input_size = 256", "input_size = \"big\"")
    });
    let err = load(&dir).err().unwrap();
    let message = err.to_string();
    assert!(
        message.contains("model.toml") && message.contains("input_size"),
        "{message}"
    );
}

#[test]
fn a_nan_std_is_refused_naming_normalize_std() {
    let (_keep, dir) = bundle_copy();
    edit_manifest(&dir, |text| {
        text.replace(
            "std = [58.395, 57.12, 57.375]",
            "std = [nan, 57.12, 57.375]",
        )
    });
    let err = load(&dir).err().unwrap();
    assert!(matches!(err, ModelError::Manifest { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&dir.join("model.toml").display().to_string())
            && message.contains("normalize.std[0] must be a finite number > 0, found NaN"),
        "{message}"
    );
}

#[test]
fn a_folder_named_like_the_encoder_is_not_a_missing_file() {
    let (_keep, dir) = bundle_copy();
    std::fs::remove_file(dir.join("encoder.onnx")).unwrap();
    std::fs::create_dir(dir.join("encoder.onnx")).unwrap();
    let err = load(&dir).err().unwrap();
    assert!(matches!(err, ModelError::NotAFile { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("encoder.onnx is not a regular file: it is a folder"),
        "{err}"
    );
}
