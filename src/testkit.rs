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

/// What a PutRecords proxy does before forwarding a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// Forward it, after this delay.
    Forward(std::time::Duration),
    /// Drop the connection: nothing is stored, the client cannot tell.
    Drop,
}

/// What a PutRecords proxy does once moto stored the forwarded records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Reply,
    /// Stored, but the client never hears it (its outcome is unknown).
    DropReply,
    /// Stored, and the reply never comes: only a client timeout ends the call.
    Stall,
}

/// The decisions of a PutRecords proxy (`put_records_proxy`). `call` numbers PutRecords calls
/// from 1 in arrival order; other requests pass through untouched.
pub trait PutRecordsHooks: Send + Sync + 'static {
    fn before(&self, _call: u64) -> Before {
        Before::Forward(std::time::Duration::ZERO)
    }
    /// `false`: the record is not forwarded and is answered ProvisionedThroughputExceeded in
    /// its slot (Kinesis does not store a failed record).
    fn admit(&self, record: &serde_json::Value) -> bool;
    fn after(&self, _call: u64) -> After {
        After::Reply
    }
}

/// A Kinesis proxy in front of `upstream` (host:port) that applies `hooks` to every PutRecords:
/// records it does not admit are failed in their slots (a call with none admitted is answered
/// without forwarding), the others are forwarded and the answer is merged back in request
/// order. Returns the proxy's endpoint URL.
pub async fn put_records_proxy<H: PutRecordsHooks>(upstream: String, hooks: Arc<H>) -> String {
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the proxy");
    let addr = listener.local_addr().expect("proxy address");
    let calls = Arc::new(AtomicU64::new(0));
    let throttled =
        || json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"});
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let (up, hooks, calls) = (upstream.clone(), hooks.clone(), calls.clone());
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                while let Ok(Some(mut req)) = read_message(&mut rd).await {
                    let is_put = req.header("x-amz-target").unwrap_or("").ends_with("PutRecords");
                    let mut call = 0;
                    let mut failed = Vec::new();
                    if is_put {
                        call = calls.fetch_add(1, Ordering::SeqCst) + 1;
                        match hooks.before(call) {
                            Before::Drop => return,
                            Before::Forward(d) if !d.is_zero() => tokio::time::sleep(d).await,
                            Before::Forward(_) => {}
                        }
                        let mut body: Value = serde_json::from_slice(&req.body).expect("PutRecords JSON");
                        let records = body["Records"].as_array().cloned().unwrap_or_default();
                        let mut keep = Vec::new();
                        for (i, r) in records.into_iter().enumerate() {
                            if hooks.admit(&r) {
                                keep.push(r);
                            } else {
                                failed.push(i);
                            }
                        }
                        if keep.is_empty() && !failed.is_empty() {
                            let recs: Vec<Value> = failed.iter().map(|_| throttled()).collect();
                            let answer = json!({"FailedRecordCount": recs.len(), "Records": recs}).to_string();
                            let resp = Message::response(200, "application/x-amz-json-1.1", answer);
                            if write_message(&mut wr, &resp).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        body["Records"] = Value::Array(keep);
                        req.body = body.to_string().into_bytes();
                    }
                    let Ok(conn) = tokio::net::TcpStream::connect(&up).await else { return };
                    let (urd, mut uwr) = conn.into_split();
                    if write_message(&mut uwr, &req).await.is_err() {
                        return;
                    }
                    let Ok(Some(mut resp)) = read_message(&mut BufReader::new(urd)).await else { return };
                    if is_put {
                        match hooks.after(call) {
                            After::Reply => {}
                            After::DropReply => return,
                            After::Stall => {
                                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                                return;
                            }
                        }
                    }
                    if is_put && resp.status() == 200 && !failed.is_empty() {
                        let body: Value = serde_json::from_slice(&resp.body).expect("PutRecords answer JSON");
                        let mut stored = body["Records"].as_array().cloned().unwrap_or_default().into_iter();
                        let total = stored.len() + failed.len();
                        let recs: Vec<Value> =
                            (0..total)
                                .map(|i| {
                                    if failed.contains(&i) {
                                        throttled()
                                    } else {
                                        stored.next().unwrap_or(Value::Null)
                                    }
                                })
                                .collect();
                        resp.body =
                            json!({"FailedRecordCount": failed.len(), "Records": recs}).to_string().into_bytes();
                    }
                    if write_message(&mut wr, &resp).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Every record in a stream, per shard id, read back with GetRecords from TRIM_HORIZON (the
/// producer's tests and benchmark check what was stored).
pub async fn read_stream(
    k: &aws_sdk_kinesis::Client,
    stream: &str,
) -> std::collections::BTreeMap<String, Vec<Vec<u8>>> {
    let shards = k.list_shards().stream_name(stream).send().await.expect("ListShards");
    let mut out = std::collections::BTreeMap::new();
    for s in shards.shards() {
        let mut it = k
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(s.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator()
            .map(str::to_string);
        let mut recs = Vec::new();
        while let Some(i) = it {
            let r = k.get_records().shard_iterator(i).limit(10_000).send().await.expect("GetRecords");
            if r.records().is_empty() {
                break;
            }
            recs.extend(r.records().iter().map(|x| x.data().as_ref().to_vec()));
            it = r.next_shard_iterator().map(str::to_string);
        }
        out.insert(s.shard_id().to_string(), recs);
    }
    out
}
