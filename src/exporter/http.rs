//! The HTTP side: `/metrics` answered from the latest figures, at once. The lock is held only
//! while the exposition is built from them (no reading of any target on this path).

use super::encode::Format;
use super::scheduler::Shared;
use std::sync::Mutex;
use std::time::Instant;

pub fn serve(server: tiny_http::Server, shared: &Mutex<Shared>, top_types: usize) {
    let started = Instant::now();
    let mut scrapes = 0u64;
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or("");
        let response = match (req.method(), path) {
            (tiny_http::Method::Get, "/metrics") => {
                scrapes += 1;
                let accept = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Accept"))
                    .map(|h| h.value.as_str().to_string());
                let format = Format::from_accept(accept.as_deref());
                let body = {
                    let s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    super::metrics::exposition(&s, top_types, scrapes, started, format)
                };
                tiny_http::Response::from_string(body).with_header(header(format.content_type()))
            }
            (tiny_http::Method::Get, "/") => tiny_http::Response::from_string(
                "<html><body><a href=\"/metrics\">/metrics</a></body></html>\n",
            )
            .with_header(header("text/html; charset=utf-8")),
            _ => {
                tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404)
            }
        };
        // A scraper that hung up is its own problem, not the exporter's.
        let _ = req.respond(response);
    }
}

fn header(content_type: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
        .expect("a valid header")
}
