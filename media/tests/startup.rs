//! An operator starts the service on a machine where the bootstrap never ran: start-up fails
//! with a message that says what is missing and what to run. Nothing is downloaded.

use media::{MediaError, RuntimePaths, SileroModel};

#[test]
fn a_missing_model_or_runtime_says_to_run_the_bootstrap() {
    let nowhere = std::env::temp_dir().join("media-test-no-deps-here");
    let err = SileroModel::load(&RuntimePaths::in_dir(&nowhere)).expect_err("nothing to load");
    assert!(
        matches!(
            err,
            MediaError::MissingRuntimeFile {
                what: "ONNX Runtime library",
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("run scripts/bootstrap"), "{message}");
    assert!(message.contains("libonnxruntime.so"), "{message}");

    // The runtime present but the model missing names the model.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut paths = RuntimePaths::from_env_or(root);
    paths.model = nowhere.join("silero_vad.onnx");
    let err = SileroModel::load(&paths).expect_err("no model");
    assert!(
        matches!(
            err,
            MediaError::MissingRuntimeFile {
                what: "Silero VAD model",
                ..
            }
        ),
        "{err}"
    );
}
