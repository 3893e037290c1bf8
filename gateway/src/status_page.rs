//! The page a person sees at `/`: what this node is and where to look next.

use axum::response::Html;

pub(crate) async fn page() -> Html<&'static str> {
    Html(include_str!("status_page.html"))
}
