//! Without its data files espeak-ng refuses to start with an error naming the package to
//! install. (A test binary of its own: espeak-ng is a process-wide singleton.)

use local_voice::Error;
use local_voice::espeak::{Espeak, EspeakConfig};

#[test]
fn a_missing_data_directory_names_the_package_to_install() {
    let config = EspeakConfig {
        data_dir: Some("/nonexistent/espeak".into()),
        ..EspeakConfig::default()
    };
    let err = Espeak::start(config).unwrap_err();
    assert!(matches!(err, Error::EspeakUnavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("espeak-ng-data"), "{err}");

    // The failed start left nothing behind: a correct configuration works afterwards.
    assert!(Espeak::start(EspeakConfig::default()).is_ok());
}
