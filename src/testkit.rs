//! Test support shared by unit and integration tests (not used by the tool itself): a minimal
//! HTTP/1.1 reader/writer for local stand-ins (a capture server at the SDK boundary, the Lambda
//! Runtime API, a fault-injecting proxy in front of moto). Content-Length bodies only, which is
//! what the SDK's JSON protocols and moto use.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Default)]
pub struct Message {
    /// `METHOD PATH HTTP/1.1` or `HTTP/1.1 STATUS REASON`.
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }
    pub fn status(&self) -> u16 {
        self.start.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
    pub fn response(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Message {
        Message {
            start: format!("HTTP/1.1 {status} X"),
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }
}

/// Reads one message; `None` at a clean end of stream.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> io::Result<Option<Message>> {
    let mut start = String::new();
    if r.read_line(&mut start).await? == 0 {
        return Ok(None);
    }
    let mut msg = Message { start: start.trim_end().to_string(), ..Default::default() };
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof in headers"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            msg.headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = msg.header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    msg.body = vec![0; len];
    r.read_exact(&mut msg.body).await?;
    Ok(Some(msg))
}

/// Writes a message with a correct Content-Length (replacing any given one).
pub async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, msg: &Message) -> io::Result<()> {
    let mut out = format!("{}\r\n", msg.start);
    for (k, v) in &msg.headers {
        if !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("transfer-encoding") {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", msg.body.len()));
    w.write_all(out.as_bytes()).await?;
    w.write_all(&msg.body).await?;
    w.flush().await
}

/// Serves every connection on `listener`, answering each request with `handler`.
pub async fn serve<F>(listener: TcpListener, handler: F)
where
    F: Fn(Message) -> Message + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let Ok((sock, _)) = listener.accept().await else { return };
        let h = handler.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = sock.into_split();
            let mut rd = BufReader::new(rd);
            while let Ok(Some(req)) = read_message(&mut rd).await {
                let resp = h(req);
                if write_message(&mut wr, &resp).await.is_err() {
                    break;
                }
            }
        });
    }
}
