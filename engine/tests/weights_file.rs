//! The weights loader refuses every malformed file with an error that names the problem.

mod common;

use std::collections::HashMap;

use isola_engine::config::ModelConfig;
use isola_engine::weights::{Provenance, Weights, WeightsError, random_weights};

fn sample() -> Weights {
    let stft = common::grid_1024();
    let model = ModelConfig { hidden: 16, gru_layers: 2, ..ModelConfig::light(&stft) };
    random_weights(model, stft, 11)
}

/// Re-serialises `tensors` with `meta` using the raw safetensors API, so tests can build
/// files the engine itself would never write.
fn raw_file(tensors: &HashMap<String, (Vec<usize>, Vec<f32>)>, meta: HashMap<String, String>) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, (s, d))| (n.clone(), s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views = bytes.iter().map(|(n, s, b)| {
        (n.as_str(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
    });
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn parts(w: &Weights) -> (HashMap<String, (Vec<usize>, Vec<f32>)>, HashMap<String, String>) {
    let bytes = w.to_bytes();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let tensors = w.tensors().iter().map(|(n, t)| (n.clone(), (t.shape.clone(), t.data.clone()))).collect();
    (tensors, meta)
}

#[test]
fn round_trip_keeps_tensors_and_metadata() {
    let mut w = sample();
    w.meta.provenance = Provenance {
        name: "test".into(),
        datasets: vec!["synthetic".into()],
        steps: 1234,
        validation_sdr_db: Some(5.5),
        git_commit: Some("abc123".into()),
        notes: "n".into(),
    };
    let back = Weights::from_bytes(&w.to_bytes()).unwrap();
    assert_eq!(back.meta, w.meta);
    assert_eq!(back.tensors(), w.tensors());

    let dir = std::env::temp_dir().join(format!("isola-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    w.save(&path).unwrap();
    assert_eq!(Weights::load(&path).unwrap().meta, w.meta);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_shape_is_named() {
    let (mut t, meta) = parts(&sample());
    t.insert("fc2.bias".into(), (vec![17], vec![0.0; 17]));
    match Weights::from_bytes(&raw_file(&t, meta)) {
        Err(WeightsError::WrongShape { name, expected, found }) => {
            assert_eq!(name, "fc2.bias");
            assert_eq!(expected, vec![16]);
            assert_eq!(found, vec![17]);
        }
        other => panic!("expected WrongShape, got {other:?}"),
    }
}

#[test]
fn missing_tensor_is_named() {
    let (mut t, meta) = parts(&sample());
    t.remove("gru.1.bias_hh");
    let err = Weights::from_bytes(&raw_file(&t, meta)).unwrap_err();
    assert!(matches!(&err, WeightsError::MissingTensor(n) if n == "gru.1.bias_hh"), "{err:?}");
    assert!(err.to_string().contains("gru.1.bias_hh"));
}

#[test]
fn unknown_tensor_is_named() {
    let (mut t, meta) = parts(&sample());
    t.insert("gru.7.weight_ih".into(), (vec![1], vec![0.0]));
    let err = Weights::from_bytes(&raw_file(&t, meta)).unwrap_err();
    assert!(matches!(&err, WeightsError::UnknownTensor(n) if n == "gru.7.weight_ih"), "{err:?}");
}

#[test]
fn unknown_version_is_refused() {
    let (t, mut meta) = parts(&sample());
    meta.insert("format_version".into(), "99".into());
    let err = Weights::from_bytes(&raw_file(&t, meta)).unwrap_err();
    assert!(matches!(&err, WeightsError::UnsupportedVersion { found, .. } if found == "99"), "{err:?}");
}

#[test]
fn foreign_safetensors_is_refused() {
    let (t, mut meta) = parts(&sample());
    meta.remove("format");
    assert!(matches!(Weights::from_bytes(&raw_file(&t, meta.clone())), Err(WeightsError::MissingMetadata("format"))));
    meta.insert("format".into(), "pytorch".into());
    assert!(matches!(Weights::from_bytes(&raw_file(&t, meta)), Err(WeightsError::WrongFormat(f)) if f == "pytorch"));
}

#[test]
fn nan_in_weights_is_refused() {
    let (mut t, meta) = parts(&sample());
    t.get_mut("fc1.weight").unwrap().1[42] = f32::NAN;
    let err = Weights::from_bytes(&raw_file(&t, meta)).unwrap_err();
    assert!(matches!(&err, WeightsError::NonFinite { name, index: 42 } if name == "fc1.weight"), "{err:?}");
}

#[test]
fn truncated_files_are_refused_at_every_length() {
    let bytes = sample().to_bytes();
    // Every prefix of the header region, and a spread of cuts through the data.
    let cuts: Vec<usize> = (0..200).chain((200..bytes.len()).step_by(997)).collect();
    for cut in cuts {
        let err = Weights::from_bytes(&bytes[..cut]).expect_err("truncated file must not load");
        assert!(matches!(err, WeightsError::Container(_) | WeightsError::MissingMetadata(_)), "cut {cut}: {err:?}");
    }
    assert!(matches!(Weights::from_bytes(b"garbage, not safetensors"), Err(WeightsError::Container(_))));
}

#[test]
fn bad_metadata_and_configs_are_refused() {
    let (t, mut meta) = parts(&sample());
    meta.insert("model_config".into(), "{not json".into());
    assert!(matches!(
        Weights::from_bytes(&raw_file(&t, meta.clone())),
        Err(WeightsError::BadMetadata { key: "model_config", .. })
    ));
    // A config the tensors do not fit: stft says fft 2048 → 1025 bins, model says 513.
    let (t, mut meta) = parts(&sample());
    meta.insert("stft_config".into(), r#"{"sample_rate":44100,"fft_size":2048,"hop":512,"window":"sqrt-hann"}"#.into());
    assert!(matches!(Weights::from_bytes(&raw_file(&t, meta)), Err(WeightsError::Config(_))));
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = Weights::load("/definitely/not/here.safetensors").unwrap_err();
    assert!(err.to_string().contains("/definitely/not/here.safetensors"));
}
