//! Editors behind an HTTP endpoint (`kind = "http"`): gsmile's protocol as JSON POSTs
//! ([`HttpTransport`]), or an OpenAI-compatible image edit API ([`OpenAiEditor`]).
//!
//! Both retry a request that failed with 429, a 5xx status or a broken connection, with
//! exponential backoff and jitter, waiting as long as a `Retry-After` header asks; other
//! statuses fail at once with the body's first lines. The credential is read from the
//! environment variable the bundle names and sent in a header; it appears nowhere else.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use ndarray::{Array4, ArrayView3, ArrayView4, Axis};
use rand::Rng;

use super::{DiffusionSettings, Editor, check_batch, clip, in_waves, instruction_seed, worker_error};
use crate::bundle::{Bundle, Description, HttpSection};
use crate::{Result, imaging};

/// Longest reply body read.
const MAX_BODY: u64 = 1 << 30;

/// Longest wait between retries, whatever `Retry-After` says.
const MAX_WAIT: Duration = Duration::from_secs(120);

/// The HTTP side both presets share: an agent, the credential, retries.
struct Client {
    bundle: PathBuf,
    url: String,
    agent: ureq::Agent,
    auth: Option<(String, String)>,
    /// The variable the credential came from, for error messages.
    auth_env: Option<String>,
    retries: u32,
    concurrency: usize,
}

/// A body to POST.
enum Body<'a> {
    Json(&'a serde_json::Value),
    Multipart { boundary: &'a str, bytes: &'a [u8] },
}

impl std::fmt::Debug for Client {
    /// Everything but the credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("auth_env", &self.auth_env)
            .field("retries", &self.retries)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `text` with the credential, should an endpoint echo it, replaced by `***`.
    fn redact(&self, text: &str) -> String {
        match &self.auth {
            Some((_, value)) => {
                let secret = value.rsplit(' ').next().unwrap_or(value);
                if secret.len() >= 4 { text.replace(secret, "***") } else { text.to_string() }
            }
            None => text.to_string(),
        }
    }

    fn new(bundle: &Bundle, section: &HttpSection, concurrency: Option<usize>) -> Result<Self> {
        let dir = bundle.dir().to_path_buf();
        let auth = match &section.auth_env {
            None => None,
            Some(var) => {
                let secret = std::env::var(var).map_err(|_| {
                    worker_error(
                        &dir,
                        format!("http.auth_env names {var}, which is not set. Fix: export {var}=<your key> before running gsmile"),
                    )
                })?;
                let value =
                    if section.auth_scheme.is_empty() { secret } else { format!("{} {secret}", section.auth_scheme) };
                if ureq::http::HeaderValue::from_str(&value).is_err() || value.ends_with(['\n', '\r', ' ']) {
                    return Err(worker_error(
                        &dir,
                        format!(
                            "the credential in {var} is not a valid header value (a stray newline or control character?). Fix: export {var} with the key alone"
                        ),
                    ));
                }
                if ureq::http::HeaderName::from_bytes(section.auth_header.as_bytes()).is_err() {
                    return Err(worker_error(
                        &dir,
                        format!("http.auth_header {:?} is not a header name", section.auth_header),
                    ));
                }
                Some((section.auth_header.clone(), value))
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs_f64(section.timeout_s)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Client {
            bundle: dir,
            url: section.url.clone(),
            agent,
            auth,
            auth_env: section.auth_env.clone(),
            retries: section.retries,
            concurrency: concurrency.unwrap_or(section.concurrency).clamp(1, 256),
        })
    }

    /// POSTs `body`, retrying what may succeed later; returns the reply body.
    fn post(&self, body: Body<'_>, what: &str) -> Result<Vec<u8>> {
        let mut attempt = 0;
        loop {
            let mut request = self.agent.post(&self.url);
            if let Some((header, value)) = &self.auth {
                request = request.header(header.as_str(), value.as_str());
            }
            let sent = match &body {
                Body::Json(v) => {
                    request.header("Content-Type", "application/json").send(serde_json::to_vec(v).unwrap_or_default())
                }
                Body::Multipart { boundary, bytes } => {
                    request.header("Content-Type", format!("multipart/form-data; boundary={boundary}")).send(*bytes)
                }
            };
            let mut status = None;
            let (retry, why, wait) = match sent {
                Ok(mut response) => {
                    let code = response.status().as_u16();
                    status = Some(code);
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        // Clamped before the conversion, which panics on huge values.
                        .map(|s| Duration::from_secs_f64(s.min(MAX_WAIT.as_secs_f64())));
                    let bytes = response.body_mut().with_config().limit(MAX_BODY).read_to_vec();
                    if (200..300).contains(&code) {
                        return bytes
                            .map_err(|e| worker_error(&self.bundle, format!("{what}: cannot read the reply ({e})")));
                    }
                    let text = String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned();
                    let why = format!("{} answered HTTP {code}: {}", self.url, self.redact(&clip(text.trim())));
                    (code == 429 || code >= 500, why, retry_after)
                }
                // A timeout is not retried: the endpoint is slow or hung, and a paid request
                // that timed out may still have been carried out.
                Err(e @ ureq::Error::Timeout(_)) => (false, format!("no reply from {} in time ({e})", self.url), None),
                Err(
                    e @ (ureq::Error::Io(_)
                    | ureq::Error::ConnectionFailed
                    | ureq::Error::HostNotFound
                    | ureq::Error::Protocol(_)
                    | ureq::Error::BodyStalled),
                ) => (true, format!("cannot reach {} ({e})", self.url), None),
                Err(e) => (false, format!("cannot send to {} ({})", self.url, self.redact(&e.to_string())), None),
            };
            if !retry || attempt >= self.retries {
                let tries = if retry { format!(" after {} attempts", attempt + 1) } else { String::new() };
                let fix = match (&status, &self.auth_env) {
                    (None, _) if !retry => ". Fix: check http.url and http.timeout_s in bundle.toml".to_string(),
                    (Some(401 | 403), Some(var)) => format!(". Fix: check the credential in {var}"),
                    (Some(401 | 403), None) => {
                        ". Fix: name the variable holding the credential in http.auth_env".to_string()
                    }
                    _ => ". Edits made so far are cached; run again to resume".to_string(),
                };
                return Err(worker_error(&self.bundle, format!("{what}: {why}{tries}{fix}")));
            }
            // Exponential backoff from 0.5 s with ±25 % jitter, so parallel requests that
            // failed together do not retry together; a Retry-After header wins.
            let backoff = 0.5 * 2f64.powi(attempt as i32).min(60.0) * rand::rng().random_range(0.75..1.25);
            std::thread::sleep(wait.unwrap_or_else(|| Duration::from_secs_f64(backoff).min(MAX_WAIT)));
            attempt += 1;
        }
    }
}

/// gsmile's protocol over HTTP: each request (`hello` included) is one JSON POST to the URL.
#[derive(Debug)]
pub struct HttpTransport {
    client: Client,
}

impl HttpTransport {
    /// A transport for `bundle`'s `[http]` section; `concurrency` overrides its own.
    pub fn new(bundle: &Bundle, section: &HttpSection, concurrency: Option<usize>) -> Result<Self> {
        Ok(HttpTransport { client: Client::new(bundle, section, concurrency)? })
    }
}

impl super::Transport for HttpTransport {
    fn call(&self, request: &serde_json::Value, what: &str) -> Result<serde_json::Value> {
        let bytes = self.client.post(Body::Json(request), what)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            worker_error(
                &self.client.bundle,
                format!("{what}: the reply is not JSON ({e}): {}", clip(&String::from_utf8_lossy(&bytes))),
            )
        })
    }

    fn concurrency(&self) -> usize {
        self.client.concurrency
    }
}

/// An OpenAI-compatible image edit endpoint (`preset = "openai-images-edit"`): one
/// multipart request per instruction (`image`, `prompt`, `model`, `size`, `n = 1`), the
/// edit read from `data[0].b64_json`.
#[derive(Debug)]
pub struct OpenAiEditor {
    name: String,
    client: Client,
    model: Option<String>,
    size: (u32, u32),
    params: serde_json::Value,
    seed: u64,
}

impl OpenAiEditor {
    /// An editor for `bundle`'s `[http]` section.
    pub fn new(
        bundle: &Bundle,
        section: &HttpSection,
        concurrency: Option<usize>,
        settings: DiffusionSettings,
    ) -> Result<Self> {
        if let Some(field) = settings.first_field() {
            let message = format!(
                "`{field}` applies to diffusion editors gsmile runs; an image edit API takes its settings from [http] params in bundle.toml. Fix: drop `{field}`"
            );
            return Err(crate::error::ConfigError::new(field, message).into());
        }
        let [h, w] = section.size.ok_or_else(|| worker_error(bundle.dir(), "http.size is missing"))?;
        Ok(OpenAiEditor {
            name: bundle.manifest().name.clone(),
            client: Client::new(bundle, section, concurrency)?,
            model: section.model.clone(),
            size: (h, w),
            params: serde_json::to_value(&section.params).unwrap_or_default(),
            seed: settings.seed.unwrap_or(0),
        })
    }

    /// One edit: the image as a PNG and the instruction as the prompt.
    fn request(&self, image: ArrayView3<f32>, instruction: &str, what: &str) -> Result<ndarray::Array3<f32>> {
        let png = imaging::png_bytes(&imaging::from_tensor(image));
        let boundary = format!("gsmile-{:016x}", instruction_seed(self.seed, instruction));
        let (h, w) = self.size;
        let mut fields: Vec<(String, String)> =
            vec![("prompt".into(), instruction.into()), ("n".into(), "1".into()), ("size".into(), format!("{w}x{h}"))];
        if let Some(model) = &self.model {
            fields.push(("model".into(), model.clone()));
        }
        if let Some(extra) = self.params.as_object() {
            for (k, v) in extra {
                // A bundle's params replace the preset's fields of the same name, never repeat them.
                let k: String = k.chars().filter(|c| !matches!(c, '"' | '\r' | '\n')).collect();
                fields.retain(|(name, _)| *name != k);
                fields.push((k, v.as_str().map_or_else(|| v.to_string(), str::to_string)));
            }
        }
        let body = multipart(&boundary, &fields, &png);
        let bytes = self.client.post(Body::Multipart { boundary: &boundary, bytes: &body }, what)?;
        let fail = |m: String| worker_error(&self.client.bundle, format!("{what}: {m}"));
        let reply: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| fail(format!("the reply is not JSON ({e}): {}", clip(&String::from_utf8_lossy(&bytes)))))?;
        let data = reply
            .pointer("/data/0/b64_json")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| fail(format!("the reply has no data[0].b64_json: {}", clip(&reply.to_string()))))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| fail(format!("data[0].b64_json is not base64 ({e})")))?;
        let img =
            image::load_from_memory(&png).map_err(|e| fail(format!("the image is not readable ({e})")))?.to_rgb8();
        if img.dimensions() != (w, h) {
            return Err(fail(format!(
                "an image of {}x{} pixels, expected {w}x{h} (http.size)",
                img.width(),
                img.height()
            )));
        }
        Ok(imaging::to_tensor(&img))
    }
}

/// A `multipart/form-data` body: text `fields`, then `image.png` as the `image` part. Written
/// by hand (a few lines) so the body is plain bytes that every retry resends unchanged.
fn multipart(boundary: &str, fields: &[(String, String)], png: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(png.len() + 512);
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"image.png\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

impl Editor for OpenAiEditor {
    fn name(&self) -> &str {
        &self.name
    }

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn params(&self) -> String {
        serde_json::json!({"kind": "http", "preset": "openai-images-edit", "model": self.model, "params": self.params})
            .to_string()
    }

    fn check_instruction(&self, _instruction: &str) -> Result<()> {
        Ok(())
    }

    /// One wave of requests, one instruction each.
    fn batch_hint(&self) -> Option<usize> {
        Some(self.client.concurrency)
    }

    fn edit(&self, images: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        check_batch(self, images.dim(), instructions.len())?;
        let (b, c, h, w) = images.dim();
        let mut out = Array4::zeros((b, c, h, w));
        let indices: Vec<usize> = (0..b).collect();
        let request = |&k: &usize| {
            self.request(images.index_axis(Axis(0), k), instructions[k], &format!("the edit {:?}", instructions[k]))
        };
        in_waves(&indices, self.client.concurrency, request, |&k, edited| {
            out.index_axis_mut(Axis(0), k).assign(&edited)
        })?;
        Ok(out)
    }

    fn describe(&self) -> Result<Description> {
        Ok(Description {
            image: format!("{}x{} (http.size)", self.size.0, self.size.1),
            signature: vec![format!("openai-images-edit at {}", self.client.url)],
        })
    }
}
