//! Where the native runtime files come from. Nothing is downloaded at run time: the bootstrap
//! script installs the `onnxruntime` wheel and `silero-vad --no-deps` from PyPI and links
//! `libonnxruntime.so` and `silero_vad.onnx` under `<workspace>/.deps/`.

use std::path::{Path, PathBuf};

use crate::error::{MediaError, Result};

/// Environment variable naming the folder that holds the runtime files.
pub const DEPS_DIR_ENV: &str = "COMPANION_DEPS_DIR";
/// File name of the ONNX Runtime library inside the deps folder.
pub const ONNX_RUNTIME_FILE: &str = "libonnxruntime.so";
/// File name of the Silero VAD model inside the deps folder.
pub const SILERO_MODEL_FILE: &str = "silero_vad.onnx";

/// Paths to the files the VAD needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimePaths {
    /// The ONNX Runtime shared library. Default `.deps/libonnxruntime.so` (or
    /// `$COMPANION_DEPS_DIR/libonnxruntime.so` when that variable is set).
    pub onnx_runtime: PathBuf,
    /// The Silero VAD v5 model. Default `.deps/silero_vad.onnx` (or under
    /// `$COMPANION_DEPS_DIR`).
    pub model: PathBuf,
}

impl Default for RuntimePaths {
    fn default() -> Self {
        let dir =
            std::env::var_os(DEPS_DIR_ENV).map_or_else(|| PathBuf::from(".deps"), PathBuf::from);
        Self::in_dir(&dir)
    }
}

impl RuntimePaths {
    /// The standard file names inside `dir`.
    #[must_use]
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            onnx_runtime: dir.join(ONNX_RUNTIME_FILE),
            model: dir.join(SILERO_MODEL_FILE),
        }
    }

    /// `$COMPANION_DEPS_DIR` if set, else `<workspace_root>/.deps`.
    #[must_use]
    pub fn from_env_or(workspace_root: &Path) -> Self {
        match std::env::var_os(DEPS_DIR_ENV) {
            Some(dir) => Self::in_dir(Path::new(&dir)),
            None => Self::in_dir(&workspace_root.join(".deps")),
        }
    }

    /// Fails with an error naming the missing file and what to install.
    pub fn check(&self) -> Result<()> {
        if !self.onnx_runtime.exists() {
            return Err(MediaError::MissingRuntimeFile {
                what: "ONNX Runtime library",
                path: self.onnx_runtime.clone(),
            });
        }
        if !self.model.exists() {
            return Err(MediaError::MissingRuntimeFile {
                what: "Silero VAD model",
                path: self.model.clone(),
            });
        }
        Ok(())
    }
}
