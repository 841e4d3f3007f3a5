//! Streamed response bodies.
//!
//! Large answers (query results, series, label lists, `/federate`) are serialised on a blocking
//! thread into a [`ChunkWriter`] that hands [`CHUNK`]-sized pieces through a bounded channel to
//! the response body, so the whole text is never held in memory while the result is (at most
//! [`QUEUED`] pieces wait). An answer that fits in one piece is sent as one body with a
//! `content-length`; a larger one goes out with chunked transfer encoding. An error found
//! before the first piece is sent gives an error response with its status code; one found
//! later can only abort the body (the client sees an incomplete chunked response).
//!
//! [`GzipStream`] compresses a body as its pieces arrive (used by the API's gzip layer).

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use futures_core::Stream;
use tokio::sync::mpsc;

/// Size of the pieces a streamed body is sent in (bytes).
pub const CHUNK: usize = 64 * 1024;
/// Pieces that may wait in the channel for the client.
const QUEUED: usize = 4;

/// What the serialising thread sends to the body.
enum Piece {
    /// A piece with more to follow.
    More(Bytes),
    /// The last piece.
    Last(Bytes),
    /// Serialisation failed.
    Failed(io::Error),
}

/// An [`io::Write`] that sends what is written in [`CHUNK`]-sized pieces to a response body.
/// Writes fail with [`io::ErrorKind::BrokenPipe`] once the client has gone.
pub struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Piece>,
}

impl ChunkWriter {
    fn send(&mut self, piece: Piece) -> io::Result<()> {
        self.tx.blocking_send(piece).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "response body closed by the client",
            )
        })
    }

    /// Takes a full piece, leaving room for the next one.
    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK + CHUNK / 4),
        ))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            let b = self.take();
            self.send(Piece::More(b))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The receiving end: the first piece (already taken to decide on the response's form), then
/// the channel.
struct PieceStream {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Piece>,
    done: bool,
}

impl Stream for PieceStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(b) = self.first.take() {
            return Poll::Ready(Some(Ok(b)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Piece::More(b))) => Poll::Ready(Some(Ok(b))),
            Poll::Ready(Some(Piece::Last(b))) => {
                self.done = true;
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Piece::Failed(e))) => {
                self.done = true;
                tracing::warn!(error = %e, "streamed response aborted");
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Some(Err(io::Error::other(
                    "response writer stopped before the end",
                ))))
            }
        }
    }
}

/// Runs `write` on a blocking thread and answers with what it writes, with status 200 and
/// `content_type`: as one body when it fits in one [`CHUNK`], else streamed with chunked
/// transfer encoding. When `write` fails before the first piece is sent the answer is
/// `on_error(message)` instead.
pub async fn respond(
    content_type: &'static str,
    write: impl FnOnce(&mut ChunkWriter) -> io::Result<()> + Send + 'static,
    on_error: impl FnOnce(String) -> HttpResponse,
) -> HttpResponse {
    let (tx, mut rx) = mpsc::channel(QUEUED);
    tokio::task::spawn_blocking(move || {
        // Grows as written: small answers do not allocate a whole piece.
        let mut w = ChunkWriter {
            buf: Vec::new(),
            tx,
        };
        let piece = match write(&mut w) {
            Ok(()) => Piece::Last(Bytes::from(std::mem::take(&mut w.buf))),
            Err(e) => Piece::Failed(e),
        };
        // A closed channel means the client has gone: nothing to tell.
        let _ = w.send(piece);
    });
    let first = match rx.recv().await {
        Some(Piece::Last(b)) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
                b,
            )
                .into_response();
        }
        Some(Piece::More(b)) => b,
        Some(Piece::Failed(e)) => return on_error(e.to_string()),
        None => return on_error("response writer stopped before the end".into()),
    };
    let body = Body::from_stream(PieceStream {
        first: Some(first),
        rx,
        done: false,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// A body compressed with gzip as its pieces arrive.
pub struct GzipStream {
    inner: BodyDataStream,
    enc: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl GzipStream {
    /// Compresses `body` (fast compression, as for whole bodies).
    pub fn new(body: Body) -> Self {
        Self {
            inner: body.into_data_stream(),
            enc: Some(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            )),
        }
    }
}

impl Stream for GzipStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.enc.is_none() {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) => {
                    let Some(enc) = self.enc.as_mut() else {
                        return Poll::Ready(None);
                    };
                    if let Err(e) = enc.write_all(&data) {
                        self.enc = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                    let out = std::mem::take(enc.get_mut());
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(out))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.enc = None;
                    return Poll::Ready(Some(Err(io::Error::other(e))));
                }
                Poll::Ready(None) => {
                    let Some(enc) = self.enc.take() else {
                        return Poll::Ready(None);
                    };
                    return Poll::Ready(Some(enc.finish().map(Bytes::from)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(
        write: impl FnOnce(&mut ChunkWriter) -> io::Result<()> + Send + 'static,
    ) -> HttpResponse {
        respond("text/plain", write, |e| {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("failed: {e}")).into_response()
        })
        .await
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn small_answers_are_one_body() {
        let r = run(|w| w.write_all(b"hello")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(axum::body::HttpBody::size_hint(r.body()).exact(), Some(5));
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&b[..], b"hello");
    }

    #[tokio::test]
    async fn large_answers_stream_in_pieces() {
        let data = pattern(5 * CHUNK + 123);
        let d = data.clone();
        let r = run(move |w| {
            for c in d.chunks(1000) {
                w.write_all(c)?;
            }
            Ok(())
        })
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(axum::body::HttpBody::size_hint(r.body()).exact(), None);
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(b[..] == data[..]);
    }

    #[tokio::test]
    async fn errors_before_the_first_piece_give_an_error_response() {
        let r = run(|w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        })
        .await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&b[..], b"failed: boom");
    }

    #[tokio::test]
    async fn errors_after_the_first_piece_abort_the_body() {
        let r = run(|w| {
            w.write_all(&pattern(2 * CHUNK))?;
            Err(io::Error::other("late"))
        })
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_gone_client_stops_the_writer() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let r = run(move |w| {
            let mut res = Ok(());
            for _ in 0..1000 {
                res = w.write_all(&pattern(CHUNK));
                if res.is_err() {
                    break;
                }
            }
            let _ = done_tx.send(res.as_ref().map_err(|e| e.kind()).err());
            res
        })
        .await;
        drop(r);
        let got = tokio::task::spawn_blocking(move || done_rx.recv().unwrap())
            .await
            .unwrap();
        assert_eq!(got, Some(io::ErrorKind::BrokenPipe));
    }

    #[tokio::test]
    async fn gzip_compresses_piece_by_piece() {
        for n in [0, 10, 3 * CHUNK + 5] {
            let data = pattern(n);
            let d = data.clone();
            let r = run(move |w| w.write_all(&d)).await;
            let z = Body::from_stream(GzipStream::new(r.into_body()));
            let z = axum::body::to_bytes(z, usize::MAX).await.unwrap();
            let mut plain = Vec::new();
            io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z[..]), &mut plain).unwrap();
            assert!(plain == data, "{n} bytes");
        }
    }
}
