//! Checks model paths and prepares the language-model and dictionary files a decoder loads.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{DEBIAN_MODEL_DIR, LanguageModel, RecognizerConfig};
use crate::{Error, lm};

const PACKAGE_HINT: &str = "install the Debian package `pocketsphinx-en-us` (scripts/bootstrap does) or set the path in RecognizerConfig";

/// The model files one decoder is started with. Generated files are deleted on drop: the
/// decoder reads them completely while it initialises.
#[derive(Debug)]
pub(super) struct ModelFiles {
    pub(super) acoustic_model: PathBuf,
    pub(super) language_model: PathBuf,
    pub(super) dictionary: PathBuf,
    _generated: Vec<TempFile>,
}

pub(super) fn prepare(config: &RecognizerConfig) -> Result<ModelFiles, Error> {
    let acoustic_model = config.acoustic_model.clone();
    if !acoustic_model.join("mdef").is_file() {
        return Err(Error::ModelMissing {
            what: "acoustic model (directory with `mdef`)",
            path: acoustic_model,
            hint: PACKAGE_HINT,
        });
    }
    require_file("pronunciation dictionary", &config.dictionary)?;
    let corpus = match &config.language_model {
        LanguageModel::Stock => {
            let lm = PathBuf::from(DEBIAN_MODEL_DIR).join("en-us.lm.bin");
            require_file("stock language model", &lm)?;
            return Ok(ModelFiles {
                acoustic_model,
                language_model: lm,
                dictionary: config.dictionary.clone(),
                _generated: Vec::new(),
            });
        }
        LanguageModel::File(lm) => {
            require_file("language model", lm)?;
            return Ok(ModelFiles {
                acoustic_model,
                language_model: lm.clone(),
                dictionary: config.dictionary.clone(),
                _generated: Vec::new(),
            });
        }
        LanguageModel::Companion => lm::COMPANION_CORPUS.to_owned(),
        LanguageModel::Corpus(path) => {
            require_file("language model corpus", path)?;
            read(path, "reading the language model corpus")?
        }
    };
    let sentences = lm::sentences(&corpus);
    let arpa = lm::build_arpa(&sentences, lm::DEFAULT_DISCOUNT)?;
    let full = read(&config.dictionary, "reading the pronunciation dictionary")?;
    let dict = lm::restrict_dictionary(&full, &lm::vocabulary(&sentences))?;
    let arpa_file = TempFile::write("arpa", &arpa)?;
    let dict_file = TempFile::write("dict", &dict)?;
    Ok(ModelFiles {
        acoustic_model,
        language_model: arpa_file.path.clone(),
        dictionary: dict_file.path.clone(),
        _generated: vec![arpa_file, dict_file],
    })
}

fn require_file(what: &'static str, path: &Path) -> Result<(), Error> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Error::ModelMissing {
            what,
            path: path.to_owned(),
            hint: PACKAGE_HINT,
        })
    }
}

fn read(path: &Path, what: &'static str) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Io {
        what,
        path: path.to_owned(),
        source,
    })
}

/// A file in the system temp directory, removed when dropped.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn write(extension: &str, contents: &str) -> Result<Self, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "local-voice-{}-{n}.{extension}",
            std::process::id()
        ));
        let io = |source| Error::Io {
            what: "writing a generated model file",
            path: path.clone(),
            source,
        };
        let mut file = fs::File::create_new(&path).map_err(io)?;
        // From here on the file exists, so a failed write still gets cleaned up.
        let temp = Self { path: path.clone() };
        file.write_all(contents.as_bytes()).map_err(io)?;
        Ok(temp)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
