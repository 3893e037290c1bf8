//! On a machine without the offline speech packages, building the default pipeline fails
//! with an error that names the config key and the package to install, instead of a panic.
//! (A test binary of its own: espeak-ng is a process-wide singleton, and only a process that
//! has not started it yet can be pointed at a missing data directory.)

use pipeline::PipelineError;
use pipeline::config::PipelineConfig;
use pipeline::failover::{build_stt, build_tts};

#[test]
fn a_machine_without_espeak_data_gets_an_error_naming_the_package() {
    let mut cfg = PipelineConfig::default();
    cfg.tts.local.engine.data_dir = Some("/nonexistent/espeak".into());

    let Err(err) = build_tts(&cfg) else {
        panic!("built a local voice without its data files")
    };

    assert!(matches!(err, PipelineError::Config { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("tts.local.engine"), "{message}");
    assert!(message.contains("espeak-ng-data"), "{message}");
}

#[test]
fn a_machine_without_the_pocketsphinx_model_gets_an_error_naming_the_package() {
    let mut cfg = PipelineConfig::default();
    cfg.stt.local.recognizer.acoustic_model = "/nonexistent/en-us".into();

    let Err(err) = build_stt(&cfg) else {
        panic!("built a local recogniser without its model")
    };

    let message = err.to_string();
    assert!(message.contains("stt.local.recognizer"), "{message}");
    assert!(message.contains("pocketsphinx-en-us"), "{message}");
}

#[test]
fn turning_the_local_engines_off_leaves_them_out() {
    let mut cfg = PipelineConfig::default();
    cfg.tts.local.enabled = false;
    cfg.stt.local.enabled = false;
    cfg.tts.local.engine.data_dir = Some("/nonexistent/espeak".into());

    let tts = build_tts(&cfg).unwrap();
    let stt = build_stt(&cfg).unwrap();

    assert!(!tts.provider_names().iter().any(|n| n.starts_with("local")));
    assert!(!stt.provider_names().iter().any(|n| n.starts_with("local")));
}
