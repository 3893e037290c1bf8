//! A native QUIC client for the gateway's `companion/1` endpoint, as an app would write one:
//! quinn, the certificate pinned by the SHA-256 hash the gateway publishes, frames encoded
//! and decoded with the `protocol` crate.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod service;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use gateway::{AuthError, Caller, CallerVerifier};
use protocol::{ClientEvent, Frame, FrameDecoder, QUIC_ALPN, ServerEvent};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};

/// Tokens: `alice-token`, `bob-token`; `banned-token` is forbidden; anything else invalid.
pub struct Tokens;

impl CallerVerifier for Tokens {
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let user = match token {
            "alice-token" => "alice",
            "bob-token" => "bob",
            "banned-token" => return Err(AuthError::Forbidden("account suspended".into())),
            _ => return Err(AuthError::Invalid("unknown test token".into())),
        };
        Ok(Caller {
            user_id: user.to_owned(),
            tier: "test".to_owned(),
            max_concurrent_calls: 1,
        })
    }
}

/// Accepts exactly the certificate whose SHA-256 is `hash`, as a browser does with
/// `serverCertificateHashes` (the signature of the handshake is still checked).
#[derive(Debug)]
struct Pinned {
    hash: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end_entity);
        if digest.as_ref() == self.hash {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client endpoint on 127.0.0.1 offering `alpn`, trusting only the certificate `hash`.
pub fn client(hash: [u8; 32], alpn: &[u8]) -> (quinn::Endpoint, quinn::ClientConfig) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { hash, provider }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = QuicClientConfig::try_from(tls).expect("QUIC TLS config");
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(Duration::from_secs(10).try_into().unwrap()));
    config.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("client UDP");
    (endpoint, config)
}

/// Connects with ALPN `companion/1`.
pub async fn connect(server: SocketAddr, hash: [u8; 32]) -> quinn::Connection {
    let (endpoint, config) = client(hash, QUIC_ALPN);
    endpoint
        .connect_with(config, server, "localhost")
        .expect("connect")
        .await
        .expect("QUIC handshake")
}

/// The encoded event frame of a raw JSON payload.
pub fn event_frame(json: &str, sequence: u32) -> Bytes {
    Frame {
        frame_type: protocol::FrameType::Event,
        flags: protocol::FrameFlags::NONE,
        sequence,
        media_time_us: 0,
        payload: Bytes::copy_from_slice(json.as_bytes()),
    }
    .encode()
    .expect("frame")
}

pub fn auth_frame(token: &str) -> Bytes {
    event_frame(&format!(r#"{{"type":"auth","token":"{token}"}}"#), 0)
}

pub fn client_frame(event: &ClientEvent, sequence: u32) -> Bytes {
    event.to_frame(sequence).unwrap().encode().unwrap()
}

pub fn send_message(request_id: &str, content: &str) -> ClientEvent {
    send_message_to("conv-1", request_id, content)
}

pub fn send_message_to(conversation: &str, request_id: &str, content: &str) -> ClientEvent {
    ClientEvent::SendMessage(protocol::chat::SendMessage {
        request_id: request_id.to_owned(),
        conversation_id: conversation.to_owned(),
        content: content.to_owned(),
        content_type: protocol::chat::ContentType::Text,
    })
}

/// Reads a server stream frame by frame.
pub struct Reader {
    pub recv: quinn::RecvStream,
    decoder: FrameDecoder,
    pub finished: bool,
}

impl Reader {
    pub fn new(recv: quinn::RecvStream) -> Self {
        Self {
            recv,
            decoder: FrameDecoder::new(),
            finished: false,
        }
    }

    /// The next frame, or `None` at the end of the stream. Panics on a reset or bad frame.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("server frames decode") {
                return Some(frame);
            }
            if self.finished {
                self.decoder.finish().expect("no partial frame at the end");
                return None;
            }
            let chunk = tokio::time::timeout(
                Duration::from_secs(20),
                self.recv.read_chunk(usize::MAX, true),
            )
            .await
            .expect("the server writes within 20 s")
            .expect("the stream is not reset");
            match chunk {
                Some(chunk) => self.decoder.push_bytes(chunk.bytes),
                None => self.finished = true,
            }
        }
    }

    pub async fn next_event(&mut self) -> Option<(u32, ServerEvent)> {
        let frame = self.next_frame().await?;
        let event = ServerEvent::from_frame(&frame).expect("a server event");
        Some((frame.sequence, event))
    }

    /// Every remaining event, checking they are numbered from `first` on.
    pub async fn rest(&mut self, first: u32) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        let mut expected = first;
        while let Some((sequence, event)) = self.next_event().await {
            assert_eq!(sequence, expected, "frames are numbered in order");
            expected += 1;
            events.push(event);
        }
        events
    }
}

/// Opens a request stream and sends `auth` + `send_message` (leaving the send side open).
pub async fn request(
    conn: &quinn::Connection,
    token: &str,
    event: &ClientEvent,
) -> (quinn::SendStream, Reader) {
    let (mut send, recv) = conn.open_bi().await.expect("open a stream");
    send.write_all(&auth_frame(token))
        .await
        .expect("write auth");
    send.write_all(&client_frame(event, 1))
        .await
        .expect("write request");
    (send, Reader::new(recv))
}

/// The type names of `events`, for compact assertions.
pub fn kinds(events: &[ServerEvent]) -> Vec<&'static str> {
    events.iter().map(ServerEvent::type_name).collect()
}
