//! A provider stream read against two deadlines: one for its first item, one for each next.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};

use crate::PipelineError;

/// How long a stream may keep the caller waiting, and what a miss is called in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// For the first item (`"first token"`, ...).
    pub(crate) first: (Duration, &'static str),
    /// For each item after it (`"next token"`, ...).
    pub(crate) next: (Duration, &'static str),
}

/// One attempt's provider stream.
pub(crate) struct Timed<T> {
    stream: BoxStream<'static, Result<T, PipelineError>>,
    /// Whether the stream has started, which moves it on to the `next` deadline (the stage
    /// decides what counts: any token, audio that is not empty).
    pub(crate) started: bool,
}

impl<T: Send + 'static> Timed<T> {
    pub(crate) fn new(stream: BoxStream<'static, Result<T, PipelineError>>) -> Self {
        Self {
            stream,
            started: false,
        }
    }

    /// The next item, `None` at the end of the stream; a missed deadline is a
    /// [`PipelineError::Timeout`] of `provider`.
    pub(crate) async fn next(
        &mut self,
        deadlines: Deadlines,
        provider: &str,
    ) -> Result<Option<T>, PipelineError> {
        let (limit, what) = if self.started {
            deadlines.next
        } else {
            deadlines.first
        };
        match tokio::time::timeout(limit, self.stream.next()).await {
            Ok(item) => item.transpose(),
            Err(_elapsed) => Err(PipelineError::Timeout {
                provider: provider.to_owned(),
                streamed: self.started,
                what,
                after: limit,
            }),
        }
    }

    /// The stream, taken out (to read it to its end elsewhere).
    pub(crate) fn take(&mut self) -> BoxStream<'static, Result<T, PipelineError>> {
        std::mem::replace(&mut self.stream, stream::empty().boxed())
    }
}
