//! The chat WebSocket client (`/v1/chat/ws`): the handshake a client makes (subprotocol
//! `companion.v1` and `Authorization: Bearer`) and the `hello` the server sends first.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        handshake::client::{Request, Response},
        http::HeaderValue,
    },
};

/// A client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The subprotocol of the chat WebSocket.
pub const SUBPROTOCOL: &str = "companion.v1";

/// `ws://HOST:PORT/v1/chat/ws` of a server at `http://HOST:PORT`.
pub fn chat_url(http_base: &str) -> String {
    format!("{}/v1/chat/ws", http_base.replacen("http", "ws", 1))
}

/// The handshake request to `ws_url`: subprotocol [`SUBPROTOCOL`], bearer `token`.
pub fn request(ws_url: &str, token: &str) -> Request {
    let mut request = ws_url.into_client_request().expect("a WebSocket URL");
    let h = request.headers_mut();
    h.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a header-safe token"),
    );
    request
}

/// Opens a connection to `ws_url` with bearer `token`; the handshake must succeed. Returns
/// the connection and the server's handshake answer; nothing is read yet.
pub async fn connect(ws_url: &str, token: &str) -> (Ws, Response) {
    tokio_tungstenite::connect_async(request(ws_url, token))
        .await
        .expect("the WebSocket opens")
}

/// Reads the first text message within `limit` (pings and pongs skipped, anything else
/// fails the test), asserts it is `{"type": "hello", ...}`, and returns it.
pub async fn hello(ws: &mut Ws, limit: Duration) -> serde_json::Value {
    let hello = loop {
        let message = tokio::time::timeout(limit, ws.next())
            .await
            .unwrap_or_else(|_| panic!("hello within {limit:?}"))
            .expect("the connection is open")
            .expect("a message");
        match message {
            Message::Text(text) => {
                break serde_json::from_str::<serde_json::Value>(&text).expect("JSON event");
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message before hello: {other:?}"),
        }
    };
    assert_eq!(hello["type"], "hello", "{hello}");
    hello
}

/// [`connect`], then [`hello`] within `limit`.
pub async fn connect_past_hello(ws_url: &str, token: &str, limit: Duration) -> Ws {
    let (mut ws, _) = connect(ws_url, token).await;
    hello(&mut ws, limit).await;
    ws
}
