//! Editors outside gsmile (#12): command workers and HTTP endpoints through the real CLI.
//!
//! The protocol tests use a rule-based worker (`tests/fixtures/workers/fake_worker.py`,
//! standard library only) and an HTTP server written here; both listen or run on this
//! machine only and stop by themselves. The example workers run as real separate processes
//! in a virtual environment the tests make once in `target/worker-venv`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ndarray::Axis;

use crate::common::{repo, root, stderr};

const IMAGE: &str = "assets/scene-01.png";
const INSTRUCTION: &str = "please make the car red";

/// Runs gsmile with extra environment variables (the worker it starts inherits them).
fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gsmile"));
    c.args(args).current_dir(root());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run gsmile")
}

/// `explain` of the test instruction on pixels (no encoder), with the given editor, output and cache.
fn explain_args(editor: &Path, out: &Path, cache: Option<&Path>, samples: usize) -> Vec<String> {
    let mut a: Vec<String> = [
        "explain",
        "--image",
        IMAGE,
        "--instruction",
        INSTRUCTION,
        "--space",
        "pixels",
        "--samples",
        &samples.to_string(),
        "--editor",
        &editor.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--force",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match cache {
        Some(c) => a.extend(["--cache".to_string(), c.display().to_string()]),
        None => a.push("--no-cache".into()),
    }
    a
}

fn explain(
    editor: &Path,
    out: &Path,
    cache: Option<&Path>,
    samples: usize,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Output {
    let mut args = explain_args(editor, out, cache, samples);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs, envs)
}

fn ok(o: &Output) {
    assert!(o.status.success(), "gsmile failed: {}", stderr(o));
}

/// Fails unless `o` failed cleanly with every needle in its message.
fn fails_with(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "expected a failure, got success: {err}");
    assert!(!err.contains("panicked"), "panic instead of an error: {err}");
    for n in needles {
        assert!(err.contains(n), "error lacks {n:?}: {err}");
    }
    err
}

fn explanation(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("explanation.json")).unwrap()).unwrap()
}

fn attributions(e: &serde_json::Value) -> Vec<(String, f64)> {
    e["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["text"].as_str().unwrap().to_string(), w["attribution"].as_f64().unwrap()))
        .collect()
}

/// A `kind = "command"` bundle in `dir` running `command`.
fn command_bundle(dir: &Path, name: &str, command: &[&str], extra: &str) -> PathBuf {
    let b = dir.join(name);
    std::fs::create_dir_all(&b).unwrap();
    let command: Vec<String> = command.iter().map(|c| format!("{c:?}")).collect();
    std::fs::write(
        b.join("bundle.toml"),
        format!("kind = \"command\"\nname = \"{name}\"\n\n[worker]\ncommand = [{}]\n{extra}", command.join(", ")),
    )
    .unwrap();
    b
}

/// A bundle running the fake worker with `python3`.
fn fake_bundle(dir: &Path, extra: &str) -> PathBuf {
    let script = repo("tests/fixtures/workers/fake_worker.py");
    command_bundle(dir, "fake", &["python3", &script.display().to_string()], extra)
}

/// The instructions of each edit request the fake worker logged.
fn logged(log: &Path) -> Vec<Vec<String>> {
    match std::fs::read_to_string(log) {
        Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_command_worker_explains_and_is_recorded_by_name_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = fake_bundle(dir.path(), "");
    let log = dir.path().join("log");
    let out = dir.path().join("out");
    let o = explain(&bundle, &out, None, 16, &[], &[("FAKE_WORKER_LOG", log.to_str().unwrap())]);
    ok(&o);
    let e = explanation(&out);
    let distinct = e["counts"]["distinct_edits"].as_u64().unwrap() as usize;
    assert!(stderr(&o).contains(&format!("editor calls: {distinct} to make")), "{}", stderr(&o));
    // The worker's rules: "red" paints half the image, "car" halves green, filler darkens a little.
    let ranked: Vec<String> = {
        let mut a = attributions(&e);
        a.sort_by(|x, y| y.1.total_cmp(&x.1));
        a.into_iter().map(|(w, _)| w).collect()
    };
    assert_eq!(&ranked[..2], ["red", "car"], "{ranked:?}");
    assert_eq!(e["editor"]["kind"], "command");
    assert_eq!(e["editor"]["params"]["worker"]["name"], "fake-worker");
    assert_eq!(e["editor"]["params"]["worker"]["version"], "0.3");
    assert_eq!(e["editor"]["params"]["worker"]["params"]["rules"], "red-car-blue");
    // Requests carry at most the worker's max_batch (2) and every distinct instruction once.
    let requests = logged(&log);
    assert!(requests.iter().all(|r| !r.is_empty() && r.len() <= 2), "{requests:?}");
    let mut sent: Vec<String> = requests.concat();
    assert_eq!(sent.len(), distinct);
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), distinct);
}

#[test]
fn a_worker_that_exits_mid_run_fails_clearly_and_the_rerun_resumes_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = fake_bundle(dir.path(), "");
    let cache = dir.path().join("cache");
    let out = dir.path().join("out");
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap();
    let crash = [
        ("FAKE_WORKER_MODE", "crash"),
        ("FAKE_WORKER_AFTER", "2"),
        ("FAKE_WORKER_BATCH", "1"),
        ("FAKE_WORKER_LOG", log_s),
    ];
    let o = explain(&bundle, &out, Some(&cache), 12, &[], &crash);
    fails_with(&o, &[&bundle.display().to_string(), "request 3", "exited", "crashing as asked", "run again to resume"]);
    assert!(!out.exists(), "a failed run wrote its output");
    std::fs::remove_file(&log).unwrap();
    let o = explain(&bundle, &out, Some(&cache), 12, &[], &[("FAKE_WORKER_BATCH", "1"), ("FAKE_WORKER_LOG", log_s)]);
    ok(&o);
    let e = explanation(&out);
    let distinct = e["counts"]["distinct_edits"].as_u64().unwrap() as usize;
    assert_eq!(e["counts"]["cached_edits"], 2, "the two edits made before the crash are reused");
    assert_eq!(logged(&log).concat().len(), distinct - 2);
    assert!(stderr(&o).contains(&format!("editor calls: {} to make", distinct - 2)), "{}", stderr(&o));
}

#[test]
fn a_worker_that_hangs_is_stopped_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = fake_bundle(dir.path(), "timeout_s = 1\n");
    let started = Instant::now();
    let o = explain(&bundle, &dir.path().join("out"), None, 8, &[], &[("FAKE_WORKER_MODE", "hang")]);
    fails_with(&o, &["no reply to request 1 (", "within 1 s", "worker.timeout_s"]);
    // Not a speed check: the run must not wait for the worker's hour-long sleep.
    assert!(started.elapsed() < Duration::from_secs(120));
    // A worker that stops reading, sent a request larger than a pipe holds (256² f32 as
    // base64 is 1 MiB): the write blocks in gsmile's writer thread, and the timeout still fires.
    let env = [("FAKE_WORKER_MODE", "deaf"), ("FAKE_WORKER_SIZE", "256")];
    let o = explain(&bundle, &dir.path().join("out"), None, 8, &[], &env);
    fails_with(&o, &["no reply to request 1 (", "within 1 s"]);
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn a_worker_that_floods_stderr_with_bytes_that_are_not_text_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = fake_bundle(dir.path(), "timeout_s = 60\n");
    ok(&explain(&bundle, &dir.path().join("out"), None, 8, &["-q"], &[("FAKE_WORKER_MODE", "noisy")]));
}

#[test]
fn bad_replies_are_errors_naming_the_bundle_and_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = fake_bundle(dir.path(), "");
    let b = bundle.display().to_string();
    for (mode, needle) in [
        ("wrong-size", "an image of 16x8 pixels, expected 16x16"),
        ("not-png", "png_base64 is not a PNG"),
        ("garbage", "is not JSON"),
        ("error", "the worker failed: out of GPU memory (fake)"),
    ] {
        let o = explain(&bundle, &dir.path().join("out"), None, 8, &[], &[("FAKE_WORKER_MODE", mode)]);
        fails_with(&o, &[&b, "request 1 (", needle]);
        assert!(!dir.path().join("out").exists());
    }
    let missing = command_bundle(dir.path(), "missing", &["no-such-program-gsmile"], "");
    fails_with(
        &explain(&missing, &dir.path().join("out"), None, 8, &[], &[]),
        &["cannot start worker.command", "no-such-program-gsmile", "Fix:"],
    );
}

#[test]
fn dry_runs_and_call_budgets_make_no_edit_and_count_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = fake_bundle(dir.path(), "");
    let cache = dir.path().join("cache");
    let out = dir.path().join("out");
    let log = dir.path().join("log");
    let env = [("FAKE_WORKER_LOG", log.to_str().unwrap())];
    let o = explain(&bundle, &out, Some(&cache), 10, &["--dry-run"], &env);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let calls: Vec<&str> = text.lines().filter(|l| l.starts_with("call\t")).collect();
    assert_eq!(calls.len(), 10, "{text}");
    assert_eq!(calls[0], format!("call\t{INSTRUCTION}"), "the full instruction comes first");
    assert!(
        text.contains("10 editor calls (10 distinct perturbed instructions, 0 cached); dry run, none made"),
        "{text}"
    );
    assert!(logged(&log).is_empty(), "a dry run sent an edit");
    assert!(!out.exists(), "a dry run wrote its output");

    let o = explain(&bundle, &out, Some(&cache), 10, &["--max-calls", "9"], &env);
    fails_with(&o, &["needs 10 editor calls", "more than --max-calls 9", "Fix:"]);
    assert!(logged(&log).is_empty() && !out.exists());

    ok(&explain(&bundle, &out, Some(&cache), 10, &["--max-calls", "10"], &env));
    assert_eq!(logged(&log).concat().len(), 10);
    // Served from the cache, the same run needs no call at all.
    let o = explain(&bundle, &out, Some(&cache), 10, &["--dry-run"], &env);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("0 editor calls (10 distinct perturbed instructions, 10 cached)")
    );
    ok(&explain(&bundle, &out, Some(&cache), 10, &["--max-calls", "0"], &env));
    assert_eq!(logged(&log).concat().len(), 10, "the cached rerun called the worker");
    // An auto budget plans every round and says the count is a bound.
    let mut args = explain_args(&bundle, &out, Some(&cache), 10);
    let at = args.iter().position(|a| a == "10").unwrap();
    args[at] = "auto".into();
    args.push("--dry-run".into());
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("at most ") && text.contains("10 cached"), "{text}");
}

#[test]
fn worker_bundles_are_checked_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("kind = \"command\"\nname = \"w\"\n", "worker"),
        ("kind = \"command\"\nname = \"w\"\n[worker]\ncommand = []\n", "worker.command"),
        ("kind = \"command\"\nname = \"w\"\n[worker]\ncommand = [\"x\"]\ntimeout_s = -1\n", "worker.timeout_s"),
        ("kind = \"http\"\nname = \"h\"\n[http]\nurl = \"http://127.0.0.1:/edit\"\n", "http.url"),
        ("kind = \"http\"\nname = \"h\"\n[http]\nurl = \"ftp://x/edit\"\n", "http.url"),
        ("kind = \"http\"\nname = \"h\"\n[http]\nurl = \"http://x/\"\nconcurrency = 0\n", "http.concurrency"),
        ("kind = \"http\"\nname = \"h\"\n[http]\nurl = \"http://x/\"\npreset = \"openai-images-edit\"\n", "http.size"),
    ];
    for (k, (manifest, field)) in cases.iter().enumerate() {
        let b = dir.path().join(format!("b{k}"));
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("bundle.toml"), manifest).unwrap();
        fails_with(&explain(&b, &dir.path().join("out"), None, 8, &[], &[]), &[field, "bundle.toml"]);
    }
}

// ---------------------------------------------------------------------------------------
// HTTP: a protocol server written here.

/// What the test server does with edit requests.
#[derive(Clone)]
enum Behaviour {
    /// Answers the first edits with these statuses (and an optional `Retry-After`), then edits.
    FailFirst(Vec<(u16, Option<&'static str>)>),
    /// Answers every edit with this status.
    Always(u16),
    /// Edits after a pause, so requests overlap.
    Slow(Duration),
    /// An OpenAI-style image edit endpoint: multipart in, `data[0].b64_json` out.
    OpenAi,
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    edits: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Time and status of each edit request.
    log: Mutex<Vec<(Instant, u16)>>,
    auth: Mutex<Vec<String>>,
}

/// An HTTP server on a loopback port that stops when dropped or after a minute without requests.
struct Server {
    url: String,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Server {
    fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/edit", listener.local_addr().unwrap());
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while !st.load(Ordering::Relaxed) && last.elapsed() < Duration::from_secs(60) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        last = Instant::now();
                        let (s, b) = (Arc::clone(&s), behaviour.clone());
                        std::thread::spawn(move || serve(stream, &b, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { url, seen, stop }
    }

    fn edits(&self) -> usize {
        self.seen.edits.load(Ordering::SeqCst)
    }
}

/// One request on `stream`: read, answered per `behaviour`, closed.
fn serve(mut stream: TcpStream, behaviour: &Behaviour, seen: &Seen) {
    stream.set_nonblocking(false).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (mut length, mut auth, mut content_type) = (0usize, String::new(), String::new());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or(("", ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "authorization" => auth = value.trim().to_string(),
            "content-type" => content_type = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    seen.auth.lock().unwrap().push(auth.clone());
    let (status, extra, mut reply) = answer(&body, &content_type, behaviour, seen);
    if status == 401 {
        // A careless service that echoes the credential in its error.
        reply = format!("{{\"error\": \"bad key {auth}\"}}").into_bytes();
    }
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        reply.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&reply));
}

fn answer(body: &[u8], content_type: &str, behaviour: &Behaviour, seen: &Seen) -> (u16, String, Vec<u8>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Behaviour::OpenAi = behaviour {
        seen.edits.fetch_add(1, Ordering::SeqCst);
        let text = String::from_utf8_lossy(body);
        assert!(content_type.starts_with("multipart/form-data; boundary="), "{content_type}");
        assert!(text.contains("name=\"prompt\"") && text.contains("name=\"image\"; filename=\"image.png\""));
        assert!(text.contains("name=\"model\"\r\n\r\ntest-model\r\n") && text.contains("16x16"));
        let red = text.contains("red");
        let img = image::RgbImage::from_fn(16, 16, |x, _| {
            if red && x < 8 { image::Rgb([255, 0, 0]) } else { image::Rgb([90, 90, 90]) }
        });
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let reply = serde_json::json!({"created": 0, "data": [{"b64_json": b64.encode(png)}]});
        return (200, String::new(), reply.to_string().into_bytes());
    }
    let request: serde_json::Value = serde_json::from_slice(body).unwrap();
    if request["type"] == "hello" {
        let hello = serde_json::json!({"type": "hello", "protocol": 1, "name": "test-server", "version": "1",
            "height": 16, "width": 16, "stochastic": false, "max_batch": 1, "accepts": ["f32"]});
        return (200, String::new(), hello.to_string().into_bytes());
    }
    let index = seen.edits.fetch_add(1, Ordering::SeqCst);
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let (status, extra) = match behaviour {
        Behaviour::FailFirst(fails) if index < fails.len() => {
            (fails[index].0, fails[index].1.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default())
        }
        Behaviour::Always(status) => (*status, String::new()),
        Behaviour::Slow(pause) => {
            std::thread::sleep(*pause);
            (200, String::new())
        }
        _ => (200, String::new()),
    };
    seen.log.lock().unwrap().push((Instant::now(), status));
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    if status != 200 {
        return (status, extra, b"{\"error\": \"busy\"}".to_vec());
    }
    // The edit: darken by the number of words, paint the left half red for "red".
    let values: Vec<f32> = b64
        .decode(request["image"]["f32_base64"].as_str().unwrap())
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let images: Vec<serde_json::Value> = request["instructions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let t = t.as_str().unwrap();
            let dark = 1.0 - 0.01 * t.split_whitespace().count() as f32;
            let out: Vec<u8> = values
                .iter()
                .enumerate()
                .map(
                    |(i, v)| if t.contains("red") && (i % 16) < 8 { if i < 256 { 1.0 } else { 0.0 } } else { v * dark },
                )
                .flat_map(|v: f32| v.to_le_bytes())
                .collect();
            serde_json::json!({"f32_base64": b64.encode(out), "shape": [3, 16, 16]})
        })
        .collect();
    let reply = serde_json::json!({"type": "edited", "id": request["id"], "images": images});
    (200, extra, reply.to_string().into_bytes())
}

fn http_bundle(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let b = dir.join("http-editor");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("bundle.toml"),
        format!("kind = \"http\"\nname = \"http-editor\"\n\n[http]\nurl = \"{url}\"\n{extra}"),
    )
    .unwrap();
    b
}

#[test]
fn http_429_with_retry_after_is_retried_after_the_wait_it_asks() {
    let server = Server::start(Behaviour::FailFirst(vec![(429, Some("1"))]));
    let dir = tempfile::tempdir().unwrap();
    let bundle = http_bundle(dir.path(), &server.url, "concurrency = 1\n");
    let out = dir.path().join("out");
    ok(&explain(&bundle, &out, None, 8, &["-q"], &[]));
    let distinct = explanation(&out)["counts"]["distinct_edits"].as_u64().unwrap() as usize;
    assert_eq!(server.edits(), distinct + 1, "one retry");
    let log = server.seen.log.lock().unwrap();
    assert_eq!(log[0].1, 429);
    assert!(log[1].0 - log[0].0 >= Duration::from_millis(900), "the retry did not wait for Retry-After");
}

#[test]
fn http_500_again_and_again_fails_after_the_retries_with_a_clear_error() {
    let server = Server::start(Behaviour::Always(500));
    let dir = tempfile::tempdir().unwrap();
    let bundle = http_bundle(dir.path(), &server.url, "concurrency = 1\nretries = 2\n");
    let out = dir.path().join("out");
    let o = explain(&bundle, &out, None, 8, &["-q"], &[]);
    fails_with(
        &o,
        &[&bundle.display().to_string(), "HTTP 500", "after 3 attempts", "request 1 (", "run again to resume"],
    );
    assert_eq!(server.edits(), 3);
    assert!(!out.exists());
}

#[test]
fn http_requests_in_flight_never_exceed_the_concurrency() {
    let server = Server::start(Behaviour::Slow(Duration::from_millis(150)));
    let dir = tempfile::tempdir().unwrap();
    let bundle = http_bundle(dir.path(), &server.url, "concurrency = 8\n");
    let out = dir.path().join("out");
    ok(&explain(&bundle, &out, None, 12, &["-q", "--concurrency", "3"], &[]));
    let most = server.seen.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&most), "{most} requests in flight with --concurrency 3");
    assert_eq!(server.edits(), 12);
}

#[test]
fn http_dry_runs_and_budgets_send_no_edit() {
    let server = Server::start(Behaviour::FailFirst(Vec::new()));
    let dir = tempfile::tempdir().unwrap();
    let bundle = http_bundle(dir.path(), &server.url, "");
    let out = dir.path().join("out");
    let o = explain(&bundle, &out, None, 8, &["--dry-run"], &[]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("8 editor calls"));
    fails_with(&explain(&bundle, &out, None, 8, &["--max-calls", "7"], &[]), &["more than --max-calls 7"]);
    assert_eq!(server.edits(), 0, "the server got edit requests");
    assert!(!out.exists());
}

#[test]
fn the_credential_comes_from_the_environment_and_is_written_nowhere() {
    const SECRET: &str = "sk-test-3f9a1c";
    let server = Server::start(Behaviour::FailFirst(Vec::new()));
    let dir = tempfile::tempdir().unwrap();
    let bundle = http_bundle(dir.path(), &server.url, "auth_env = \"GSMILE_TEST_KEY\"\n");
    let out = dir.path().join("out");
    let cache = dir.path().join("cache");
    fails_with(&explain(&bundle, &out, Some(&cache), 8, &[], &[]), &["GSMILE_TEST_KEY", "not set", "Fix: export"]);
    ok(&explain(&bundle, &out, Some(&cache), 8, &["-q"], &[("GSMILE_TEST_KEY", SECRET)]));
    let auth = server.seen.auth.lock().unwrap().clone();
    assert!(!auth.is_empty() && auth.iter().all(|a| a == &format!("Bearer {SECRET}")), "{auth:?}");
    // An endpoint that echoes the key in its error: the message names the variable, not the key.
    let refusing = Server::start(Behaviour::Always(401));
    let echo = http_bundle(&dir.path().join("echo"), &refusing.url, "auth_env = \"GSMILE_TEST_KEY\"\n");
    let o = explain(&echo, &dir.path().join("x"), None, 8, &[], &[("GSMILE_TEST_KEY", SECRET)]);
    let err = fails_with(&o, &["HTTP 401", "***", "check the credential in GSMILE_TEST_KEY"]);
    assert!(!err.contains(SECRET), "{err}");
    for root in [&out, &cache, &bundle] {
        for entry in walk(root) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "the secret is in {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            files.extend(walk(&e.path()));
        } else {
            files.push(e.path());
        }
    }
    files
}

#[test]
fn an_openai_style_image_edit_endpoint_is_explained_through_its_preset() {
    let server = Server::start(Behaviour::OpenAi);
    let dir = tempfile::tempdir().unwrap();
    let extra = "preset = \"openai-images-edit\"\nmodel = \"test-model\"\nsize = [16, 16]\nauth_env = \"GSMILE_TEST_KEY\"\nconcurrency = 2\n";
    let bundle = http_bundle(dir.path(), &server.url, extra);
    let out = dir.path().join("out");
    ok(&explain(&bundle, &out, None, 10, &["-q"], &[("GSMILE_TEST_KEY", "k")]));
    let e = explanation(&out);
    assert_eq!(e["editor"]["kind"], "http");
    assert_eq!(e["editor"]["params"]["preset"], "openai-images-edit");
    assert_eq!(e["editor"]["params"]["model"], "test-model");
    let top = attributions(&e).into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_eq!(top.0, "red");
    assert_eq!(server.edits(), 10);
}

// ---------------------------------------------------------------------------------------
// The example workers, as real separate processes.

/// A Python with what `examples/workers/requirements.txt` lists, made once in
/// `target/worker-venv` (from PyPI, like the ONNX Runtime the build fetches).
fn worker_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = repo("target/worker-venv");
            let python = venv.join("bin/python");
            let requirements = repo("examples/workers/requirements.txt");
            let stamp = venv.join("requirements.txt");
            if std::fs::read(&stamp).ok() == std::fs::read(&requirements).ok() && python.is_file() {
                return python;
            }
            let _ = std::fs::remove_dir_all(&venv);
            let status = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("run python3 -m venv");
            assert!(status.success(), "python3 -m venv {} failed", venv.display());
            let status = Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements)
                .status()
                .expect("run pip");
            assert!(status.success(), "pip install -r {} failed", requirements.display());
            std::fs::copy(&requirements, &stamp).unwrap();
            python
        })
        .clone()
}

fn onnx_worker_bundle(dir: &Path, max_batch: usize) -> PathBuf {
    let python = worker_python();
    let script = repo("examples/workers/onnx_worker.py");
    let editor = repo("onnx/tiny-editor");
    let batch = max_batch.to_string();
    let command = [
        python.to_str().unwrap(),
        script.to_str().unwrap(),
        "--bundle",
        editor.to_str().unwrap(),
        "--max-batch",
        &batch,
    ];
    command_bundle(dir, &format!("onnx-worker-{max_batch}"), &command, "startup_timeout_s = 120\n")
}

#[test]
fn the_onnx_worker_edits_exactly_as_the_in_process_editor() {
    use gsmile::bundle::Bundle;
    use gsmile::editor::{self, DiffusionSettings};
    let dir = tempfile::tempdir().unwrap();
    let worker_bundle = Bundle::open(onnx_worker_bundle(dir.path(), 3)).unwrap();
    let runtime = gsmile::runtime::RuntimeOptions::default();
    let worker = editor::load(&worker_bundle, &runtime, DiffusionSettings::default(), 32, None).unwrap();
    let local = editor::load(
        &Bundle::open(repo("onnx/tiny-editor")).unwrap(),
        &runtime,
        DiffusionSettings::default(),
        32,
        None,
    )
    .unwrap();
    assert_eq!(worker.size(), local.size());
    let (h, w) = local.size();
    let image = gsmile::imaging::load_rgb_limited(&repo(IMAGE), gsmile::imaging::DEFAULT_MAX_PIXELS).unwrap();
    let input = gsmile::imaging::resize_tensor(gsmile::imaging::to_tensor(&image).view(), h, w);
    let texts =
        ["make the car red", "make the sky orange", "", "please make the car", "red", "turn the house blue", "car"];
    let a = worker.edit_shared(input.view(), &texts).unwrap();
    let b = local.edit_shared(input.view(), &texts).unwrap();
    let most = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(most <= 1e-5, "max abs pixel difference {most}");
    // The edits really differ by instruction, so the comparison means something.
    let change = (&a.index_axis(Axis(0), 0) - &a.index_axis(Axis(0), 2)).mapv(f32::abs).sum();
    assert!(change > 1.0, "{change}");
}

#[test]
fn explaining_through_the_onnx_worker_or_its_http_server_gives_the_in_process_attributions() {
    let dir = tempfile::tempdir().unwrap();
    let local_out = dir.path().join("local");
    ok(&explain(&repo("onnx/tiny-editor"), &local_out, None, 24, &["-q", "--seed", "5"], &[]));
    let local = attributions(&explanation(&local_out));

    let worker_out = dir.path().join("worker");
    ok(&explain(&onnx_worker_bundle(dir.path(), 4), &worker_out, None, 24, &["-q", "--seed", "5"], &[]));
    let through_worker = explanation(&worker_out);
    assert_eq!(through_worker["editor"]["params"]["worker"]["name"], "gsmile-onnx-worker");

    // The same worker behind examples/workers/http_server.py.
    let python = worker_python();
    let mut server = Command::new(&python)
        .arg(repo("examples/workers/http_server.py"))
        .args(["--port", "0", "--idle-exit", "60", "--"])
        .arg(&python)
        .arg(repo("examples/workers/onnx_worker.py"))
        .arg("--bundle")
        .arg(repo("onnx/tiny-editor"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.trim().strip_prefix("listening on ").expect("the server's first line").to_string();
    let http_out = dir.path().join("http");
    let result = explain(&http_bundle(dir.path(), &url, ""), &http_out, None, 24, &["-q", "--seed", "5"], &[]);
    let _ = server.kill();
    let _ = server.wait();
    ok(&result);

    for other in [attributions(&through_worker), attributions(&explanation(&http_out))] {
        assert_eq!(other.len(), local.len());
        for ((w1, a1), (w2, a2)) in local.iter().zip(&other) {
            assert_eq!(w1, w2);
            assert!((a1 - a2).abs() <= 1e-6 * a1.abs().max(1e-3), "{w1}: {a1} in process, {a2} through the worker");
        }
    }
}

#[test]
fn the_diffusers_worker_edits_each_sample_independently_of_its_batch() {
    // torch and diffusers are large; CI's default run does not install them. A Python that
    // has them (GSMILE_TORCH_PYTHON, else python3) runs this test for real.
    let python = std::env::var("GSMILE_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python).args(["-c", "import torch, diffusers, transformers, numpy"]).output();
    if !has.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "skipped: {python} lacks torch, diffusers or transformers (set GSMILE_TORCH_PYTHON to a Python that has them)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("tiny-ip2p");
    let made = Command::new(&python)
        .arg(repo("onnx/make_tiny_ip2p.py"))
        .args(["--seed", "0", "--out"])
        .arg(&checkpoint)
        .status()
        .unwrap();
    assert!(made.success(), "onnx/make_tiny_ip2p.py failed");
    let script = repo("examples/workers/diffusers_ip2p_worker.py");
    let outputs: Vec<serde_json::Value> = [1usize, 3]
        .iter()
        .map(|batch| {
            let b = batch.to_string();
            let command = [
                python.as_str(),
                script.to_str().unwrap(),
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--device",
                "cpu",
                "--max-batch",
                &b,
            ];
            let bundle = command_bundle(dir.path(), &format!("ip2p-{batch}"), &command, "startup_timeout_s = 600\n");
            let out = dir.path().join(format!("out-{batch}"));
            ok(&explain(&bundle, &out, None, 8, &["-q", "--steps", "3", "--seed", "2"], &[]));
            explanation(&out)
        })
        .collect();
    assert_eq!(outputs[0]["editor"]["params"]["worker"]["stochastic"], true);
    let (a, b) = (attributions(&outputs[0]), attributions(&outputs[1]));
    for ((w, x), (_, y)) in a.iter().zip(&b) {
        // float32 kernels may round differently for other batch sizes; the noise is what must not differ.
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1e-3), "{w}: {x} with batches of 1, {y} with batches of 3");
    }
}
