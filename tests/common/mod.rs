//! Shared integration-test support: a private moto server per test (installed by
//! scripts/moto-venv.sh if missing; a failure to install fails the test, never skips it), the
//! real `pipectl` binary pointed at it, and the transform bundle built once per run.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const REGION: &str = "eu-west-1";
/// The caller's address as the domain stand-in sees it (`PIPECTL_SEARCH_CLIENT_IP`).
pub const SEARCH_CLIENT_IP: &str = "203.0.113.10";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv() -> PathBuf {
    std::env::var_os("PIPECTL_VENV").map(PathBuf::from).unwrap_or_else(|| root().join(".venv"))
}

fn ensure_moto_installed() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("scripts/moto-venv.sh"))
            .status()
            .expect("running scripts/moto-venv.sh");
        assert!(
            status.success(),
            "installing moto failed (scripts/moto-venv.sh); the integration tests need it and do not skip"
        );
    });
}

/// A moto server on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Moto {
    /// Plain moto (plus the shim's always-on gap fixes): instant and lenient.
    pub fn start() -> Moto {
        Moto::start_with("")
    }

    /// moto behaving like AWS as documented (scripts/aws_like.py): asynchronous states, busy
    /// resources, IAM propagation delays, API quotas; faults armed with `fault`.
    pub fn aws_like() -> Moto {
        Moto::start_with("all")
    }

    fn start_with(behaviours: &str) -> Moto {
        ensure_moto_installed();
        // A free port is picked by binding port 0 and letting go; another test may take it
        // before moto binds, in which case our moto exits at once: try again on a new port.
        // Readiness counts only while our own child is alive, so we never talk to a neighbour.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let log = std::env::temp_dir().join(format!("pipectl-moto-{port}.log"));
            let child = Command::new(venv().join("bin/python"))
                .arg(root().join("scripts/moto_shim.py"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("PIPECTL_AWS_LIKE", behaviours)
                // The caller's public address as the domain stand-in sees it (instead of
                // 127.0.0.1): inside the documentation range the ES example stack admits, so
                // both example stacks can set up their index templates.
                .env("PIPECTL_SEARCH_CLIENT_IP", SEARCH_CLIENT_IP)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("starting moto");
            let mut m = Moto { child, port, log };
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut up = false;
            while Instant::now() < deadline {
                if m.child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    std::thread::sleep(Duration::from_millis(150));
                    up = m.child.try_wait().unwrap().is_none();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if up {
                return m;
            }
        }
        panic!(
            "moto did not start on a free port after 5 tries; see {}/pipectl-moto-*.log",
            std::env::temp_dir().display()
        );
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The domain REST stand-in of this server (scripts/search_standin.py), as pipectl's
    /// `--search-endpoint-url`.
    pub fn search_endpoint(&self) -> String {
        format!("{}/_pipectl/search", self.endpoint())
    }

    /// What the domain stand-in holds: `{domain: {templates, indices, saved_objects}}`.
    pub fn search_state(&self) -> serde_json::Value {
        let (status, body) = self.http("GET", "/_pipectl/search-state", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Every request the domain stand-in has seen, with its signature verdict.
    pub fn search_log(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.http("GET", "/_pipectl/search-log", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Arms emulator faults (`POST /_pipectl/faults`, see scripts/aws_like.py).
    pub fn fault(&self, json: serde_json::Value) {
        let (status, body) = self.http("POST", "/_pipectl/faults", &json.to_string());
        assert_eq!(status, 200, "arming {json}: {body}");
    }

    /// Clears the armed faults and the call counts (`POST /_pipectl/reset`).
    pub fn reset(&self) {
        let (status, body) = self.http("POST", "/_pipectl/reset", "");
        assert_eq!(status, 200, "{body}");
    }

    /// The calls the emulator has seen, by `service:Action`.
    pub fn calls(&self) -> serde_json::Map<String, serde_json::Value> {
        let (status, body) = self.http("GET", "/_pipectl/calls", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    /// An SDK config for direct checks against this server.
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(aws_sdk_kinesis::config::Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await
    }

    pub async fn aws(&self) -> pipectl::aws::Aws {
        let mut aws = pipectl::aws::Aws::from_config(&self.sdk().await, true);
        aws.search.set_endpoint(Some(self.search_endpoint())).unwrap();
        aws
    }

    /// Runs the real pipectl binary against this server.
    pub fn pipectl(&self, args: &[&str]) -> Run {
        run_bin(env!("CARGO_BIN_EXE_pipectl"), args, &self.endpoint())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(self.status, 0, "pipectl failed:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
    pub fn code(self, want: i32) -> Run {
        assert_eq!(self.status, want, "pipectl exit status:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

pub fn run_bin(bin: &str, args: &[&str], endpoint: &str) -> Run {
    let out: Output = Command::new(bin)
        .args(args)
        .current_dir(root())
        .env("AWS_ENDPOINT_URL", endpoint)
        // moto has no domain data plane: the domain's REST calls go to the stand-in that
        // scripts/search_standin.py mounts on the same server (see Moto::search_endpoint).
        .env("PIPECTL_SEARCH_ENDPOINT_URL", format!("{endpoint}/_pipectl/search"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PIPECTL_POLL_MS", "50")
        .env("PIPECTL_RETRY_BASE_MS", "50")
        // Enough attempts for the emulator's 5 calls/s tag-read quota (1-2 s of backoff).
        .env("PIPECTL_RETRY_ATTEMPTS", "8")
        .stdin(Stdio::null())
        .output()
        .expect("running pipectl");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The transform bundle, built once per test run with the real `pipectl bundle`.
pub fn bundle_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("target/test-dist");
        let out = run_bin(
            env!("CARGO_BIN_EXE_pipectl"),
            &["bundle", "-f", "stacks/crime-data.yaml", "--out", dir.to_str().unwrap()],
            "http://127.0.0.1:9",
        );
        assert_eq!(out.status, 0, "bundle failed:\n{}\n{}", out.stdout, out.stderr);
        dir
    })
    .clone()
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("pipectl-{tag}-{}-{}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn stack_text(name: &str) -> String {
    std::fs::read_to_string(root().join("stacks").join(name)).unwrap()
}

pub fn data_csv() -> PathBuf {
    // The article's 7,584 rows, copied into the repository as a fixture.
    root().join("tests/fixtures/sacramento-crime-2006-01.csv")
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// An S3 client for direct checks (path-style, as moto needs).
pub fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build())
}

/// Creates a bucket in the test region.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) {
    s3.create_bucket()
        .bucket(name)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .unwrap();
}
