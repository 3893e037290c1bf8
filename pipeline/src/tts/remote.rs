//! What the two HTTP speech vendors share: the warm client and key, the request set-up, and
//! the loop that turns a streamed response body into [`TtsChunk`]s.
//!
//! Each vendor keeps only what is its own: the URL and JSON of its request, where its key
//! goes, and a sans-IO [`AudioBody`] decoder for its body format.

use std::future::Future;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};

use crate::PipelineError;
use crate::config::{HttpConfig, Secret};
use crate::http;
use crate::provider::{TtsChunk, TtsRequest, TtsStream};

/// Where a vendor wants its API key.
#[derive(Debug, Clone, Copy)]
pub(super) enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key alone in the named header.
    Header(&'static str),
}

/// One vendor's configured name, warm client and key.
#[derive(Debug, Clone)]
pub(super) struct Vendor {
    name: String,
    client: reqwest::Client,
    key: Secret,
    auth: Auth,
}

impl Vendor {
    pub(super) fn new(name: String, key: Secret, auth: Auth, http_config: &HttpConfig) -> Self {
        Self {
            name,
            client: http::build_client(http_config),
            key,
            auth,
        }
    }

    /// The provider's configured name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn authed(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.auth {
            Auth::Bearer => builder.bearer_auth(self.key.expose()),
            Auth::Header(name) => builder.header(name, self.key.expose()),
        }
    }

    /// Posts `body` to `url` and streams the answer through `decoder`. Text with nothing to
    /// say is refused before anything is sent.
    pub(super) fn synthesize<D: AudioBody>(
        &self,
        request: &TtsRequest,
        url: String,
        body: &serde_json::Value,
        decoder: D,
    ) -> TtsStream {
        if request.text.trim().is_empty() {
            return stream::once(async {
                Err(PipelineError::InvalidRequest("nothing to say".into()))
            })
            .boxed();
        }
        let builder = self.authed(self.client.post(url)).json(body);
        let name = self.name.clone();
        audio_stream(
            self.name.clone(),
            async move { http::send(&name, builder).await },
            decoder,
        )
    }

    /// Opens the connection with a cheap authenticated `GET url`.
    pub(super) fn warm_up(&self, url: String) -> BoxFuture<'_, Result<(), PipelineError>> {
        let builder = self.authed(self.client.get(url));
        Box::pin(async move { http::warm_up(&self.name, builder).await })
    }
}

/// A vendor's response body format, decoded as it arrives (sans-IO).
pub(super) trait AudioBody: Send + 'static {
    /// Takes the next piece of the body.
    fn feed(&mut self, bytes: Bytes) -> Result<(), PipelineError>;
    /// The body ended: decode whatever it still holds.
    fn finish(&mut self) -> Result<(), PipelineError>;
    /// The next decoded chunk, if one is ready.
    fn next_chunk(&mut self) -> Option<TtsChunk>;
    /// Whether any audio was decoded so far.
    fn streamed(&self) -> bool;
}

struct Body<D> {
    provider: String,
    bytes: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: D,
    /// The body ended (well); only decoded chunks are left.
    ended: bool,
}

impl<D: AudioBody> Body<D> {
    /// The next chunk, reading the body as far as needed. `Ok(None)`: the body ended well.
    async fn next(&mut self) -> Result<Option<TtsChunk>, PipelineError> {
        loop {
            if let Some(chunk) = self.decoder.next_chunk() {
                return Ok(Some(chunk));
            }
            if self.ended {
                return Ok(None);
            }
            match self.bytes.next().await {
                Some(Ok(bytes)) => self.decoder.feed(bytes)?,
                Some(Err(e)) => {
                    return Err(PipelineError::StreamCut {
                        provider: self.provider.clone(),
                        streamed: self.decoder.streamed(),
                        message: http::error_chain(&e),
                    });
                }
                None => {
                    self.decoder.finish()?;
                    if !self.decoder.streamed() {
                        return Err(PipelineError::Protocol {
                            provider: self.provider.clone(),
                            streamed: false,
                            message: "response had no audio".into(),
                        });
                    }
                    self.ended = true;
                }
            }
        }
    }
}

/// The response body as [`TtsChunk`]s: a body that breaks off is a `StreamCut`, and one that
/// ends without any audio a `Protocol` error.
fn audio_stream<D, F>(provider: String, open: F, decoder: D) -> TtsStream
where
    D: AudioBody,
    F: Future<Output = Result<reqwest::Response, PipelineError>> + Send + 'static,
{
    enum Phase<F, D> {
        Open(String, F, D),
        Body(Body<D>),
        Done,
    }
    stream::unfold(Phase::Open(provider, open, decoder), |phase| async move {
        let mut body = match phase {
            Phase::Done => return None,
            Phase::Body(body) => body,
            Phase::Open(provider, open, decoder) => match open.await {
                Err(e) => return Some((Err(e), Phase::Done)),
                Ok(response) => Body {
                    provider,
                    bytes: response.bytes_stream().boxed(),
                    decoder,
                    ended: false,
                },
            },
        };
        match body.next().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Phase::Body(body))),
            Ok(None) => None,
            Err(e) => Some((Err(e), Phase::Done)),
        }
    })
    .boxed()
}
