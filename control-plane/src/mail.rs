//! Outgoing mail. The control plane sends one kind today: the e-mail verification link.
//!
//! [`Mailer`] is the seam: the embedded default, [`Outbox`], writes each mail as an `.eml` file
//! into a folder (`email.outbox_dir`), which is enough for development and for a relay that
//! picks the files up; an SMTP mailer would implement the same trait.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// One plain-text mail.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) to: String,
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// Sends mail. Errors are strings for the log; callers decide whether a failed send fails
/// the request.
pub(crate) trait Mailer: Send + Sync + std::fmt::Debug {
    fn send<'a>(
        &'a self,
        mail: &'a Mail,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Writes each mail to `{dir}/{unix ms}-{random}.eml`.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

/// Header values come from our own code and a normalised address, but a line break in one
/// would start a new header: drop them.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| *c != '\r' && *c != '\n').collect()
}

impl Mailer for Outbox {
    fn send<'a>(
        &'a self,
        mail: &'a Mail,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
            let name = format!(
                "{}-{}.eml",
                crate::clock::unix_now_ms(),
                crate::db::new_id()
            );
            let text = format!(
                "To: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
                one_line(&mail.to),
                one_line(&mail.subject),
                mail.body
            );
            // Write under a temporary name and rename, so a reader never sees half a mail.
            let tmp = self.dir.join(format!(".{name}.tmp"));
            tokio::fs::write(&tmp, text)
                .await
                .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
            tokio::fs::rename(&tmp, self.dir.join(&name))
                .await
                .map_err(|e| format!("renaming {}: {e}", tmp.display()))
        })
    }
}
